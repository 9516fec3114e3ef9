"""A procedural signer: turns a :class:`SignSpec` into MediaPipe Holistic keypoints.

The right hand is dominant. It rests by the hip, travels to the written location while taking
the written handshape and orientation, performs the movement (straight, circle, finger play,
twisting; size, speed and repetition modifiers), holds and returns to rest; with ``hamsymmlr``
the left hand mirrors it, otherwise the left hand stays at rest. The elbows follow from a
two-bone inverse kinematics solve. Each call draws a signer style (size, position on the
canvas, proportions, speed, keypoint noise, confidences, short hand-detection drop-outs).

Geometry is in body units (shoulder width 1, origin at the mid-shoulder, x = signer's left,
y = up, z = forward), then mapped to pixels of a 512 x 512 image (y down) as MediaPipe writes
them. Nothing here is learned; it only has to make the text determine the motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from text_to_pose.data.holistic import (
    BODY_POINTS,
    LEFT_HAND_OFFSET,
    LEG_POINTS,
    N_HAND,
    N_KEYPOINTS,
    RIGHT_HAND_OFFSET,
)
from text_to_pose.data.notation import SignSpec, direction

FORWARD, UP = np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])
MIRROR = np.array([-1.0, 1.0, 1.0])

# Handshape = (finger flexion [4 fingers, 3 joints] rad, spread 0..1, thumb abduction rad,
# thumb flexion [3] rad). Index order: index, middle, ring, pinky.
_CURLED, _STRAIGHT = (1.5, 1.6, 0.9), (0.0, 0.0, 0.0)
_THUMB_ACROSS = (0.5, (0.6, 0.8, 0.3))
HANDSHAPES = {
    "hamfist": ((_CURLED,) * 4, 0.0, *_THUMB_ACROSS),
    "hamflathand": ((_STRAIGHT,) * 4, 0.05, 0.35, (0.1, 0.05, 0.05)),
    "hamfinger2": ((_STRAIGHT, _CURLED, _CURLED, _CURLED), 0.0, *_THUMB_ACROSS),
    "hamfinger23": ((_STRAIGHT, _STRAIGHT, _CURLED, _CURLED), 0.0, *_THUMB_ACROSS),
    "hamfinger23spread": ((_STRAIGHT, _STRAIGHT, _CURLED, _CURLED), 1.0, *_THUMB_ACROSS),
    "hamfinger2345": ((_STRAIGHT,) * 4, 1.0, 0.4, (0.5, 0.6, 0.2)),
    "hampinchall": (((0.6, 0.7, 0.4),) * 4, 0.0, 1.0, (0.5, 0.3, 0.2)),
    "hamceeall": (((0.5, 0.6, 0.3),) * 4, 0.1, 1.1, (0.3, 0.2, 0.1)),
    "relaxed": (((0.3, 0.4, 0.2),) * 4, 0.2, 0.6, (0.2, 0.2, 0.1)),
}
THUMB_OUT = (1.2, (0.0, 0.0, 0.0))
# Finger geometry in shoulder widths: knuckle offsets (along the hand axis, toward the thumb),
# segment lengths, spread angle at full spread.
KNUCKLES = np.array([[0.25, 0.07], [0.26, 0.02], [0.25, -0.03], [0.23, -0.075]])
SEGMENTS = np.array([[0.1, 0.06, 0.05], [0.11, 0.07, 0.05], [0.1, 0.065, 0.05], [0.08, 0.05, 0.04]])
SPREAD = np.array([0.2, 0.0, -0.18, -0.35])
THUMB_BASE, THUMB_SEGMENTS = np.array([0.05, 0.06]), np.array([0.09, 0.07, 0.06])
PALM_CENTRE = 0.15  # wrist -> palm centre along the hand axis

# Where the dominant (right) hand's palm centre goes, body units.
LOCATIONS = {
    "hamforehead": (0.0, 0.95, 0.22),
    "hamnose": (0.0, 0.75, 0.3),
    "hamchin": (0.0, 0.55, 0.25),
    "hamshoulders": (-0.45, 0.0, 0.22),
    "hamchest": (0.0, -0.35, 0.25),
    "hamstomach": (0.0, -0.85, 0.25),
    "hamneutralspace": (-0.2, -0.45, 0.55),
}
REST = {"centre": np.array([-0.4, -1.45, 0.22]), "finger": "d", "palm": "l"}
BODY_REST = {
    "NOSE": (0.0, 0.75, 0.2), "LEFT_EYE_INNER": (0.05, 0.85, 0.17), "LEFT_EYE": (0.09, 0.86, 0.15),
    "LEFT_EYE_OUTER": (0.13, 0.86, 0.13), "LEFT_EAR": (0.2, 0.8, 0.0),
    "MOUTH_LEFT": (0.06, 0.6, 0.16), "LEFT_SHOULDER": (0.5, 0.0, 0.0),
    "LEFT_HIP": (0.32, -1.6, 0.0), "LEFT_KNEE": (0.3, -2.4, 0.05), "LEFT_ANKLE": (0.3, -3.2, 0.0),
    "LEFT_HEEL": (0.3, -3.3, -0.05), "LEFT_FOOT_INDEX": (0.3, -3.3, 0.15),
}  # fmt: skip
# Frames at 25 fps for a signer of speed 1.
TRANSIT, HOLD_START, HOLD_END = 11, 2, 3
MOVE_FRAMES = {"move": 12, "circle": 18, "fingerplay": 18, "twisting": 16, "nomotion": 6}


@dataclass
class SignerStyle:
    """Per-recording variation of the signer and the pose estimator."""

    scale_px: float
    centre_px: tuple[float, float]
    arm: float
    hand: float
    head: float
    speed: float
    noise_px: float
    fps: float = 25.0

    @staticmethod
    def sample(rng: np.random.Generator, fps: float = 25.0) -> SignerStyle:
        return SignerStyle(
            scale_px=120 * rng.uniform(0.85, 1.15),
            centre_px=(256 + rng.uniform(-30, 30), 190 + rng.uniform(-20, 20)),
            arm=rng.uniform(0.93, 1.07),
            hand=rng.uniform(0.9, 1.1),
            head=rng.uniform(0.92, 1.08),
            speed=rng.uniform(0.8, 1.25),
            noise_px=rng.uniform(0.3, 1.5),
            fps=fps,
        )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True).clip(min=1e-8)


def _ease(u: np.ndarray | float) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.asarray(u, dtype=float))


def _orthonormal(a: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit hand axis ``a`` and palm normal ``n`` made perpendicular to it."""
    a = _unit(a)
    n = n - (n * a).sum(-1, keepdims=True) * a
    degenerate = np.linalg.norm(n, axis=-1, keepdims=True) < 1e-4
    fallback = np.cross(a, UP) + 1e-3 * FORWARD
    return a, _unit(np.where(degenerate, fallback, n))


@dataclass
class HandState:
    """Pose of one hand: palm centre, hand axis, palm normal and handshape."""

    centre: np.ndarray
    axis: np.ndarray
    normal: np.ndarray
    flex: np.ndarray  # [4, 3]
    spread: float
    thumb_abduction: float
    thumb_flex: np.ndarray  # [3]

    @staticmethod
    def make(centre, finger: str, palm: str, shape: str, thumb_out: bool = False) -> HandState:
        flex, spread, thumb_abd, thumb_flex = HANDSHAPES[shape]
        if thumb_out:
            thumb_abd, thumb_flex = THUMB_OUT
        axis, normal = _orthonormal(direction(finger), direction(palm))
        return HandState(np.asarray(centre, float), axis, normal, np.array(flex, float), spread,
                         thumb_abd, np.array(thumb_flex, float))  # fmt: skip

    def blend(self, other: HandState, w: float) -> HandState:
        """Interpolate toward ``other``; orientations swing through the front so that opposite
        axes (resting fingers down, raised fingers up) do not pass through zero."""
        bias = np.sin(np.pi * w) * 0.5
        axis = (1 - w) * self.axis + w * other.axis + bias * FORWARD
        normal = (1 - w) * self.normal + w * other.normal + bias * UP
        axis, normal = _orthonormal(axis, normal)
        mix = lambda a, b: (1 - w) * a + w * b  # noqa: E731
        return HandState(mix(self.centre, other.centre), axis, normal, mix(self.flex, other.flex),
                         mix(self.spread, other.spread), mix(self.thumb_abduction,
                         other.thumb_abduction), mix(self.thumb_flex, other.thumb_flex))  # fmt: skip

    def mirrored(self) -> HandState:
        return HandState(self.centre * MIRROR, self.axis * MIRROR, self.normal * MIRROR, self.flex,
                         self.spread, self.thumb_abduction, self.thumb_flex)  # fmt: skip


def _moved(start: HandState, spec: SignSpec, u: float) -> HandState:
    """The dominant hand at phase ``u`` in [0, 1] of one repetition of the movement."""
    state = HandState(**vars(start))
    e = float(_ease(u))
    if spec.movement == "move":
        state.centre = start.centre + 0.45 * spec.size * direction(spec.movement_axis) * e
    elif spec.movement == "circle":
        k = direction(spec.movement_axis)
        ref = UP if abs(k @ UP) < 0.9 else FORWARD
        e1 = _unit(np.cross(k, ref))
        e2 = np.cross(k, e1)
        theta = 2 * np.pi * e
        radius = 0.2 * spec.size
        state.centre = start.centre + radius * ((np.cos(theta) - 1) * e1 + np.sin(theta) * e2)
    elif spec.movement == "fingerplay":
        phase = 2 * np.pi * (3 * u + np.arange(4)[:, None] * 0.25)
        state.flex = start.flex + 0.45 * spec.size * np.sin(phase) * np.array([1.0, 0.8, 0.4])
    elif spec.movement == "twisting":
        angle = 0.9 * spec.size * np.sin(2 * np.pi * 2 * u)
        side = np.cross(start.axis, start.normal)
        state.normal = np.cos(angle) * start.normal + np.sin(angle) * side
    return state


def timeline(spec: SignSpec, style: SignerStyle, rng: np.random.Generator) -> list[HandState]:
    """Per-frame states of the dominant hand: rest, transit, hold, movement x repeats, hold,
    return, rest."""
    rest = HandState.make(REST["centre"], REST["finger"], REST["palm"], "relaxed")
    centre = np.array(LOCATIONS[spec.location])
    if spec.symmetric and abs(centre[0]) < 0.1:
        centre = centre + np.array([-0.2, 0.0, 0.0])  # two hands side by side, not inside
    start = HandState.make(centre, spec.finger_direction, spec.palm_direction, spec.handshape,
                           spec.thumb_out)  # fmt: skip
    rate = style.fps / 25.0  # the frame counts above are at 25 fps
    frames = lambda n: max(2, int(round(n * rate / style.speed)))  # noqa: E731
    n_transit, n_move = frames(TRANSIT), frames(MOVE_FRAMES[spec.movement] * spec.duration)
    states = [rest] * int(rng.integers(1, 4))
    states += [rest.blend(start, float(_ease((i + 1) / n_transit))) for i in range(n_transit)]
    states += [start] * frames(HOLD_START)
    for repeat in range(spec.repeats):
        states += [_moved(start, spec, (i + 1) / n_move) for i in range(n_move)]
        if repeat < spec.repeats - 1:
            end, n_back = _moved(start, spec, 1.0), max(2, n_move // 2)
            states += [end.blend(start, float(_ease((i + 1) / n_back))) for i in range(n_back)]
    end = states[-1]
    states += [end] * frames(HOLD_END)
    states += [end.blend(rest, float(_ease((i + 1) / n_transit))) for i in range(n_transit)]
    states += [rest] * int(rng.integers(1, 4))
    return states


def hand_keypoints(states: list[HandState], hand_scale: float, left: bool) -> np.ndarray:
    """``[T, 21, 3]`` MediaPipe hand landmarks (body units) of a sequence of hand states."""
    centre = np.stack([s.centre for s in states])
    a = np.stack([s.axis for s in states])
    n = np.stack([s.normal for s in states])
    flex = np.stack([s.flex for s in states])  # [T, 4, 3]
    spread = np.array([s.spread for s in states])[:, None, None]
    thumb_abd = np.array([s.thumb_abduction for s in states])[:, None]
    thumb_flex = np.stack([s.thumb_flex for s in states])  # [T, 3]
    side = np.cross(n, a) if left else np.cross(a, n)  # toward the thumb
    h = hand_scale
    wrist = centre - PALM_CENTRE * h * a
    out = np.zeros((len(states), N_HAND, 3))
    out[:, 0] = wrist
    # Thumb: abducted from the hand axis toward the thumb side, flexed toward the palm.
    base = wrist + h * (THUMB_BASE[0] * a + THUMB_BASE[1] * side)
    plane = np.cos(thumb_abd) * a + np.sin(thumb_abd) * side
    out[:, 1], angle = base, np.zeros((len(states), 1))
    for joint in range(3):
        angle = angle + thumb_flex[:, joint : joint + 1]
        base = base + h * THUMB_SEGMENTS[joint] * (np.cos(angle) * plane + np.sin(angle) * n)
        out[:, 2 + joint] = base
    # Fingers: knuckle, then three segments curling toward the palm normal (Eq. of a planar
    # kinematic chain with cumulative joint angles).
    phi = SPREAD[None, :, None] * (0.15 + 0.85 * spread)  # [T, 4, 1]
    a4, s4, n4 = a[:, None], side[:, None], n[:, None]
    finger_axis = np.cos(phi) * a4 + np.sin(phi) * s4  # [T, 4, 3]
    point = wrist[:, None] + h * (KNUCKLES[None, :, :1] * a4 + KNUCKLES[None, :, 1:] * s4)
    out[:, 5::4], angle = point, np.zeros((len(states), 4, 1))
    for joint in range(3):
        angle = angle + flex[:, :, joint : joint + 1]
        step = np.cos(angle) * finger_axis + np.sin(angle) * n4
        point = point + h * SEGMENTS[None, :, joint : joint + 1] * step
        out[:, 6 + joint :: 4] = point
    return out


def _elbows(shoulder: np.ndarray, wrist: np.ndarray, arm: float, outward: float) -> np.ndarray:
    """Two-bone inverse kinematics: the elbow of an upper arm/forearm pair reaching ``wrist``,
    bent down and outward. Out-of-reach wrists are pulled in (the arm straightens)."""
    upper, fore = 0.8 * arm, 0.75 * arm
    delta = wrist - shoulder
    dist = np.linalg.norm(delta, axis=-1, keepdims=True).clip(1e-6, 0.995 * (upper + fore))
    u = _unit(delta)
    along = (upper**2 - fore**2 + dist**2) / (2 * dist)
    height = np.sqrt(np.clip(upper**2 - along**2, 0.0, None))
    pole = np.array([0.35 * outward, -1.0, -0.3])
    pole = _unit(pole - (u @ pole)[:, None] * u)
    return shoulder + along * u + height * pole


def perform(
    spec: SignSpec, style: SignerStyle, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel keypoints ``[T, 75, 3]`` and confidences ``[T, 75]`` of one recording."""
    right_states = timeline(spec, style, rng)
    rest = right_states[0]
    if spec.symmetric:
        left_states = [s.mirrored() for s in right_states]
    else:
        left_states = [rest.mirrored()] * len(right_states)
    t = len(right_states)
    right = hand_keypoints(right_states, style.hand, left=False)
    left = hand_keypoints(left_states, style.hand, left=True)

    body = np.zeros((t, len(BODY_POINTS), 3))
    for name, xyz in BODY_REST.items():
        xyz = np.array(xyz)
        if name in ("NOSE", "MOUTH_LEFT") or "EYE" in name or "EAR" in name:
            xyz = xyz * np.array([style.head, 1.0, 1.0]) + np.array([0, (style.head - 1) * 0.5, 0])
        body[:, BODY_POINTS.index(name)] = xyz
        mirror = name.replace("LEFT", "RIGHT") if "LEFT" in name else None
        if mirror is not None:
            body[:, BODY_POINTS.index(mirror)] = xyz * MIRROR
    body[:, BODY_POINTS.index("MOUTH_RIGHT")] = body[:, BODY_POINTS.index("MOUTH_LEFT")] * MIRROR
    # Idle sway of the whole upper body.
    sway = 0.02 * np.sin(2 * np.pi * (np.arange(t) / (2 * style.fps) + rng.uniform()))[:, None]
    upper = [i for i in range(len(BODY_POINTS)) if i not in LEG_POINTS]
    body[:, upper, 0] += sway
    right += sway[:, None] * np.array([1.0, 0.0, 0.0])
    left += sway[:, None] * np.array([1.0, 0.0, 0.0])
    for side_name, hand, outward in (("RIGHT", right, -1.0), ("LEFT", left, 1.0)):
        shoulder = body[:, BODY_POINTS.index(f"{side_name}_SHOULDER")]
        body[:, BODY_POINTS.index(f"{side_name}_WRIST")] = hand[:, 0]
        body[:, BODY_POINTS.index(f"{side_name}_ELBOW")] = _elbows(
            shoulder, hand[:, 0], style.arm, outward
        )
        for point, landmark in (("PINKY", 17), ("INDEX", 5), ("THUMB", 4)):
            body[:, BODY_POINTS.index(f"{side_name}_{point}")] = hand[:, landmark]

    xyz = np.concatenate([body, np.zeros((t, 2 * N_HAND, 3))], axis=1)
    xyz[:, LEFT_HAND_OFFSET : LEFT_HAND_OFFSET + N_HAND] = left
    xyz[:, RIGHT_HAND_OFFSET : RIGHT_HAND_OFFSET + N_HAND] = right
    pixels = np.empty_like(xyz)
    pixels[..., 0] = style.centre_px[0] + style.scale_px * xyz[..., 0]
    pixels[..., 1] = style.centre_px[1] - style.scale_px * xyz[..., 1]
    pixels[..., 2] = -style.scale_px * xyz[..., 2]
    pixels += rng.normal(0.0, style.noise_px, pixels.shape)

    confidence = rng.uniform(0.85, 1.0, (t, N_KEYPOINTS))
    confidence[:, LEG_POINTS] = rng.uniform(0.2, 0.6, (t, len(LEG_POINTS)))
    for offset in (LEFT_HAND_OFFSET, RIGHT_HAND_OFFSET):  # short hand-detection drop-outs
        for frame in np.flatnonzero(rng.random(t) < 0.01):
            confidence[frame : frame + int(rng.integers(1, 4)), offset : offset + N_HAND] = 0
    pixels[confidence == 0] = 0
    return pixels.astype(np.float32), confidence.astype(np.float32)
