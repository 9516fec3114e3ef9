"""A 2-D articulated dancer: joint angles -> COCO-WholeBody keypoints (133) -> rendered frame.

Written by hand because no library draws a parametric stick figure with whole-body keypoints;
drawing itself is PIL's. Keypoint order follows COCO-WholeBody (Jin et al. 2020): 17 body,
6 feet, 68 face, 21 left hand, 21 right hand. Coordinates are pixels, y pointing down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

NUM_BODY, NUM_FEET, NUM_FACE, NUM_HAND = 17, 6, 68, 21
NUM_KEYPOINTS = NUM_BODY + NUM_FEET + NUM_FACE + 2 * NUM_HAND  # 133
POSE_TYPE = "coco_wholebody"

# COCO body indices.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SH, R_SH, L_EL, R_EL, L_WR, R_WR = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KN, R_KN, L_AN, R_AN = 11, 12, 13, 14, 15, 16

# Pose parameters (radians, angles measured from "straight down"), in this order.
POSE_PARAMS = (
    "lean",
    "l_shoulder",
    "l_elbow",
    "r_shoulder",
    "r_elbow",
    "l_hip",
    "l_knee",
    "r_hip",
    "r_knee",
    "bounce",
    "sway",
)
REST_POSE = np.array([0.0, 0.25, 0.1, -0.25, -0.1, 0.08, 0.0, -0.08, 0.0, 0.0, 0.0])
# Range of each parameter for random dance key poses: (low, high).
POSE_RANGES = np.array(
    [
        (-0.35, 0.35),
        (0.1, 2.9),
        (-1.6, 1.6),
        (-2.9, -0.1),
        (-1.6, 1.6),
        (-0.1, 0.7),
        (-1.2, 0.0),
        (-0.7, 0.1),
        (0.0, 1.2),
        (0.0, 1.0),
        (-1.0, 1.0),
    ]
)


def _dir(angle: np.ndarray | float) -> np.ndarray:
    """Unit vector at ``angle`` from straight down (image coordinates)."""
    return np.array([np.sin(angle), np.cos(angle)])


@dataclass
class FigureStyle:
    """Colours and proportions of one dancer and its backdrop."""

    skin: tuple[int, int, int]
    shirt: tuple[int, int, int]
    pants: tuple[int, int, int]
    hair: tuple[int, int, int]
    bg_top: tuple[int, int, int]
    bg_bottom: tuple[int, int, int]
    stripe: tuple[int, int, int]
    stripe_period: float
    scale: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> FigureStyle:
        def colour(lo: int, hi: int) -> tuple[int, int, int]:
            return tuple(int(c) for c in rng.integers(lo, hi, 3))

        return cls(
            skin=colour(150, 256),
            shirt=colour(30, 256),
            pants=colour(0, 160),
            hair=colour(0, 90),
            bg_top=colour(0, 120),
            bg_bottom=colour(60, 200),
            stripe=colour(0, 256),
            stripe_period=float(rng.uniform(0.15, 0.35)),
            scale=float(rng.uniform(0.85, 1.0)),
        )


def pose_to_keypoints(pose: np.ndarray, size: int, scale: float = 1.0) -> np.ndarray:
    """Forward kinematics: a pose vector (see ``POSE_PARAMS``) -> ``[133, 2]`` pixel coordinates."""
    p = dict(zip(POSE_PARAMS, pose, strict=True))
    u = size * scale  # body height unit
    root = np.array([size / 2 + 0.08 * u * p["sway"], size * 0.58 + 0.05 * u * p["bounce"]])
    up = -_dir(p["lean"])
    neck = root + 0.25 * u * up
    side = np.array([-up[1], up[0]])  # perpendicular to the spine, pointing to image right
    head = neck + 0.09 * u * up
    kp = np.zeros((NUM_KEYPOINTS, 2))
    r_head = 0.065 * u
    kp[NOSE] = head + 0.02 * u * up
    kp[L_EYE], kp[R_EYE] = head + 0.03 * u * (up + side), head + 0.03 * u * (up - side)
    kp[L_EAR], kp[R_EAR] = head + r_head * side, head - r_head * side
    kp[L_SH], kp[R_SH] = neck + 0.09 * u * side, neck - 0.09 * u * side
    kp[L_HIP], kp[R_HIP] = root + 0.05 * u * side, root - 0.05 * u * side
    arm, fore, thigh, shin = 0.13 * u, 0.12 * u, 0.15 * u, 0.15 * u
    for sh, el, wr, a_sh, a_el in (
        (L_SH, L_EL, L_WR, "l_shoulder", "l_elbow"),
        (R_SH, R_EL, R_WR, "r_shoulder", "r_elbow"),
    ):
        kp[el] = kp[sh] + arm * _dir(p["lean"] + p[a_sh])
        kp[wr] = kp[el] + fore * _dir(p["lean"] + p[a_sh] + p[a_el])
    for hip, kn, an, a_hip, a_kn in (
        (L_HIP, L_KN, L_AN, "l_hip", "l_knee"),
        (R_HIP, R_KN, R_AN, "r_hip", "r_knee"),
    ):
        kp[kn] = kp[hip] + thigh * _dir(p[a_hip])
        kp[an] = kp[kn] + shin * _dir(p[a_hip] + p[a_kn])
    # Feet: big toe, small toe, heel for left then right.
    for i, (an, toe_dir) in enumerate(((L_AN, 1.0), (R_AN, -1.0))):
        base = NUM_BODY + 3 * i
        kp[base] = kp[an] + 0.04 * u * np.array([toe_dir, 0.2])
        kp[base + 1] = kp[an] + 0.03 * u * np.array([toe_dir, 0.3])
        kp[base + 2] = kp[an] + 0.015 * u * np.array([-toe_dir, 0.2])
    # Face: 68 points on nested ellipses around the head centre (jaw, brows, nose, eyes, mouth).
    angles = np.linspace(0.15 * np.pi, 0.85 * np.pi, 17)
    face = [head + r_head * (np.cos(a) * side - np.sin(a) * up * -1.0) for a in angles]
    for n, radius, height in ((10, 0.6, 0.45), (9, 0.15, 0.1), (12, 0.35, 0.25), (20, 0.35, -0.45)):
        for a in np.linspace(0, 2 * np.pi, n, endpoint=False):
            face.append(
                head + r_head * (radius * np.cos(a) * side + (height + 0.1 * np.sin(a)) * up)
            )
    kp[NUM_BODY + NUM_FEET : NUM_BODY + NUM_FEET + NUM_FACE] = np.array(face)
    # Hands: wrist + 5 fingers x 4 joints fanned along the forearm direction.
    for h, (el, wr) in enumerate(((L_EL, L_WR), (R_EL, R_WR))):
        base = NUM_BODY + NUM_FEET + NUM_FACE + h * NUM_HAND
        along = kp[wr] - kp[el]
        along = along / (np.linalg.norm(along) + 1e-8)
        across = np.array([-along[1], along[0]])
        kp[base] = kp[wr]
        for f in range(5):
            spread = (f - 2) * 0.35
            finger = np.cos(spread) * along + np.sin(spread) * across
            for j in range(4):
                kp[base + 1 + 4 * f + j] = kp[wr] + 0.012 * u * (j + 1) * finger
    return kp


def render_frame(
    keypoints: np.ndarray, size: int, style: FigureStyle, supersample: int = 4
) -> np.ndarray:
    """Draw the figure given by ``keypoints`` over its textured backdrop: ``[size, size, 3]`` uint8."""
    big = size * supersample
    y = np.linspace(0, 1, big)[:, None, None]
    x = np.linspace(0, 1, big)[None, :, None]
    bg = (1 - y) * np.array(style.bg_top) + y * np.array(style.bg_bottom)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (x + 0.5 * y) / style.stripe_period)
    bg = bg * (1 - 0.35 * stripes) + 0.35 * stripes * np.array(style.stripe)
    image = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    k = keypoints * supersample
    w = max(1, int(round(0.05 * big * style.scale)))

    def limb(a: int, b: int, colour: tuple[int, int, int], width: int) -> None:
        draw.line([tuple(k[a]), tuple(k[b])], fill=colour, width=width)
        r = width / 2
        for p in (k[a], k[b]):
            draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=colour)

    for hip, kn, an in ((L_HIP, L_KN, L_AN), (R_HIP, R_KN, R_AN)):
        limb(hip, kn, style.pants, int(w * 1.2))
        limb(kn, an, style.pants, w)
    torso = [tuple(k[L_SH]), tuple(k[R_SH]), tuple(k[R_HIP]), tuple(k[L_HIP])]
    draw.polygon(torso, fill=style.shirt)
    for sh, el, wr in ((L_SH, L_EL, L_WR), (R_SH, R_EL, R_WR)):
        limb(sh, el, style.shirt, w)
        limb(el, wr, style.skin, int(w * 0.8))
    head = (k[L_EAR] + k[R_EAR]) / 2
    r = np.linalg.norm(k[L_EAR] - k[R_EAR]) / 2
    draw.ellipse([head[0] - r, head[1] - r, head[0] + r, head[1] + r], fill=style.skin)
    top = (
        head
        + (head - (k[L_SH] + k[R_SH]) / 2)
        / np.linalg.norm(head - (k[L_SH] + k[R_SH]) / 2)
        * r
        * 0.5
    )
    draw.ellipse(
        [top[0] - r * 0.8, top[1] - r * 0.6, top[0] + r * 0.8, top[1] + r * 0.6], fill=style.hair
    )
    return np.asarray(image.resize((size, size), Image.Resampling.LANCZOS))


def dance(
    beat_times: np.ndarray, fps: float, num_frames: int, rng: np.random.Generator
) -> np.ndarray:
    """Pose parameters ``[num_frames, len(POSE_PARAMS)]`` that hit a new key pose on every beat.

    Between consecutive beats the pose moves along a half-cosine ease, so joint velocity is zero
    exactly on the beats: the kinematic beats (velocity minima, Li et al. 2021) coincide with the
    music beats.
    """
    lo, hi = POSE_RANGES[:, 0], POSE_RANGES[:, 1]
    knots = np.concatenate(
        [[0.0], beat_times, [max(beat_times[-1] if len(beat_times) else 0, 0) + 1e3]]
    )
    keys = [REST_POSE] + [rng.uniform(lo, hi) for _ in range(len(knots) - 1)]
    t = np.arange(num_frames) / fps
    seg = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, len(knots) - 2)
    u = (t - knots[seg]) / (knots[seg + 1] - knots[seg])
    ease = (1 - np.cos(np.pi * np.clip(u, 0, 1))) / 2
    start, end = np.stack(keys)[seg], np.stack(keys)[seg + 1]
    return start + ease[:, None] * (end - start)
