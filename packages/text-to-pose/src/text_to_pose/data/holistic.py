"""The MediaPipe Holistic skeleton used by the model: body 33 + left hand 21 + right hand 21.

pose-format builds this header in ``pose_format.utils.holistic``, but that module imports
``mediapipe`` at import time (a heavy, optional dependency that is not installed here), so the
point names and limbs, which are MediaPipe's published landmark tables, are listed here.
"""

from __future__ import annotations

from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

BODY = "POSE_LANDMARKS"
LEFT_HAND = "LEFT_HAND_LANDMARKS"
RIGHT_HAND = "RIGHT_HAND_LANDMARKS"
COMPONENTS = (BODY, LEFT_HAND, RIGHT_HAND)

BODY_POINTS = [
    "NOSE", "LEFT_EYE_INNER", "LEFT_EYE", "LEFT_EYE_OUTER", "RIGHT_EYE_INNER", "RIGHT_EYE",
    "RIGHT_EYE_OUTER", "LEFT_EAR", "RIGHT_EAR", "MOUTH_LEFT", "MOUTH_RIGHT", "LEFT_SHOULDER",
    "RIGHT_SHOULDER", "LEFT_ELBOW", "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST", "LEFT_PINKY",
    "RIGHT_PINKY", "LEFT_INDEX", "RIGHT_INDEX", "LEFT_THUMB", "RIGHT_THUMB", "LEFT_HIP",
    "RIGHT_HIP", "LEFT_KNEE", "RIGHT_KNEE", "LEFT_ANKLE", "RIGHT_ANKLE", "LEFT_HEEL",
    "RIGHT_HEEL", "LEFT_FOOT_INDEX", "RIGHT_FOOT_INDEX",
]  # fmt: skip
BODY_LIMBS = [
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12),
    (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18),
    (16, 20), (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27),
    (26, 28), (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
]  # fmt: skip
HAND_POINTS = [
    "WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP", "INDEX_FINGER_MCP",
    "INDEX_FINGER_PIP", "INDEX_FINGER_DIP", "INDEX_FINGER_TIP", "MIDDLE_FINGER_MCP",
    "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP", "MIDDLE_FINGER_TIP", "RING_FINGER_MCP",
    "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP", "PINKY_MCP", "PINKY_PIP",
    "PINKY_DIP", "PINKY_TIP",
]  # fmt: skip
HAND_LIMBS = [
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11),
    (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19),
    (19, 20),
]  # fmt: skip

N_BODY, N_HAND = len(BODY_POINTS), len(HAND_POINTS)
N_KEYPOINTS = N_BODY + 2 * N_HAND  # 75
LEFT_HAND_OFFSET, RIGHT_HAND_OFFSET = N_BODY, N_BODY + N_HAND
# Indices into the 75 keypoints.
LEFT_SHOULDER, RIGHT_SHOULDER = (
    BODY_POINTS.index("LEFT_SHOULDER"),
    BODY_POINTS.index("RIGHT_SHOULDER"),
)
# What pose-format's ``pose_hide_legs`` hides for holistic poses (hips included).
LEG_POINTS = [
    i
    for i, name in enumerate(BODY_POINTS)
    if any(part in name for part in ("KNEE", "ANKLE", "HEEL", "FOOT_INDEX", "HIP"))
]


def limbs() -> list[tuple[int, int]]:
    """All limbs as pairs of indices into the 75 keypoints (for drawing)."""
    out = list(BODY_LIMBS)
    for offset in (LEFT_HAND_OFFSET, RIGHT_HAND_OFFSET):
        out += [(a + offset, b + offset) for a, b in HAND_LIMBS]
    return out


def holistic_header(width: int = 512, height: int = 512, depth: int = 512) -> PoseHeader:
    """pose-format header of the three components, XYZ + confidence per point."""
    colors = [(255, 0, 0)] + [(0, 128, 255), (0, 200, 0)]
    components = [
        PoseHeaderComponent(BODY, list(BODY_POINTS), list(BODY_LIMBS), [colors[0]], "XYZC"),
        PoseHeaderComponent(LEFT_HAND, list(HAND_POINTS), list(HAND_LIMBS), [colors[1]], "XYZC"),
        PoseHeaderComponent(RIGHT_HAND, list(HAND_POINTS), list(HAND_LIMBS), [colors[2]], "XYZC"),
    ]
    return PoseHeader(0.2, PoseHeaderDimensions(width, height, depth), components)
