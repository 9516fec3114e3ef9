"""Procedural humanoid motions on the SMPL-like skeleton, with English descriptions.

Each motion is 1..n segments of composable actions (walk/run forward, backward, sideways, in
circles, turn, jump, wave, raise arms, kick, sit, stand) at several speeds and directions.
Actions set smooth per-frame control signals (body-frame velocity, yaw rate, gait period,
pelvis offsets, arm angles, foot offsets); a gait model plants each foot on the ground during
stance (anchored at the hip's mid-stance ground point) and swings it to the next anchor, and
an analytic two-bone IK turns the ankle targets into hip/knee rotations with flat feet. So the
ground-truth motions have (almost) no foot skating, which is what the metrics then test.
Output is AMASS-style (``poses`` axis-angle with the Z-up global orient, ``trans``,
``mocap_framerate``) plus TMR/HumanML3D-style text annotations with start/end seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.spatial.transform import Rotation

from stmc_keyframe.representation.skeleton import OFFSETS, PELVIS_REST

SIGNALS = (
    "v_fwd", "v_lat", "yaw_rate", "period", "duty", "lift", "gait_on", "pelvis_h", "pelvis_back",
    "jump_z", "spine_pitch", "l_down", "r_down", "arm_swing", "l_elbow", "r_elbow", "r_elbow_up", "wave",
    "kick_l_fwd", "kick_l_up", "kick_r_fwd", "kick_r_up",
)  # fmt: skip
SPEEDS = {"slowly": 0.6, "": 1.1, "quickly": 1.6}
STAND_H, WALK_H = 0.88, 0.84
ANKLE_H = -OFFSETS[10][1]  # ankle height that puts the foot joint on the floor


@dataclass
class Segment:
    action: str
    text: str
    start: float
    end: float


def _defaults(n: int) -> dict[str, np.ndarray]:
    s = {k: np.zeros(n) for k in SIGNALS}
    s["period"][:] = 1.0
    s["duty"][:] = 0.6
    s["gait_on"][:] = 1.0
    s["pelvis_h"][:] = STAND_H
    s["l_down"][:] = s["r_down"][:] = 1.25
    s["l_elbow"][:] = s["r_elbow"][:] = 0.15
    return s


def _bump(tau: np.ndarray, a: float, b: float) -> np.ndarray:
    """Smooth 0 -> 1 -> 0 bump on [a, b]."""
    x = np.clip((tau - a) / (b - a), 0, 1)
    return np.sin(np.pi * x) ** 2


def _ramp(tau: np.ndarray, a: float, b: float) -> np.ndarray:
    x = np.clip((tau - a) / (b - a), 0, 1)
    return x * x * (3 - 2 * x)


def sample_action(rng: np.random.Generator) -> tuple[str, dict, str]:
    """(action, parameters, description) drawn uniformly over the action vocabulary."""
    kind = rng.choice(
        ["walk", "walk", "walk_back", "side", "run", "circle", "turn", "jump", "wave", "raise",
         "kick", "sit", "stand"]
    )  # fmt: skip
    if kind == "walk":
        speed = str(rng.choice(list(SPEEDS)))
        return kind, {"speed": SPEEDS[speed]}, f"walks forward {speed}".strip()
    if kind == "walk_back":
        speed = str(rng.choice(["slowly", ""]))
        return kind, {"speed": SPEEDS[speed] * 0.8}, f"walks backward {speed}".strip()
    if kind == "side":
        side = str(rng.choice(["left", "right"]))
        return kind, {"dir": 1.0 if side == "left" else -1.0}, f"side steps to the {side}"
    if kind == "run":
        quick = bool(rng.integers(2))
        return (
            kind,
            {"speed": 3.0 if quick else 2.4},
            "runs forward quickly" if quick else "runs forward",
        )
    if kind == "circle":
        side = str(rng.choice(["left", "right"]))
        return kind, {"dir": 1.0 if side == "left" else -1.0}, f"walks in a circle to the {side}"
    if kind == "turn":
        side = str(rng.choice(["left", "right"]))
        around = bool(rng.integers(2))
        angle = math.pi if around else math.pi / 2
        sign = 1.0 if side == "left" else -1.0
        text = f"turns around to the {side}" if around else f"turns {side}"
        return kind, {"angle": sign * angle}, text
    if kind == "jump":
        fwd = bool(rng.integers(2))
        return kind, {"fwd": 1.2 if fwd else 0.0}, "jumps forward" if fwd else "jumps in place"
    if kind == "wave":
        return kind, {}, "waves with the right hand"
    if kind == "raise":
        return kind, {}, "raises both arms"
    if kind == "kick":
        side = str(rng.choice(["left", "right"]))
        return kind, {"side": side}, f"kicks with the {side} leg"
    if kind == "sit":
        return kind, {}, "sits down"
    return kind, {}, "stands still"


def _fill(s: dict[str, np.ndarray], sl: slice, tau: np.ndarray, kind: str, p: dict) -> None:
    """Write one segment's control signals into ``s[...][sl]`` (tau = seconds into it)."""
    if kind in ("walk", "walk_back", "circle"):
        v = p.get("speed", 1.0)
        s["v_fwd"][sl] = -v if kind == "walk_back" else v
        s["period"][sl] = np.clip(1.3 - 0.25 * v, 0.8, 1.2)
        s["lift"][sl] = 0.09
        s["pelvis_h"][sl] = WALK_H
        s["arm_swing"][sl] = 0.25 + 0.15 * v
        if kind == "circle":
            s["yaw_rate"][sl] = p["dir"] * v / 1.5
    elif kind == "side":
        s["v_lat"][sl] = 0.6 * p["dir"]
        s["period"][sl] = 1.0
        s["lift"][sl] = 0.07
        s["pelvis_h"][sl] = WALK_H
    elif kind == "run":
        v = p["speed"]
        s["v_fwd"][sl] = v
        s["period"][sl] = 0.7
        s["duty"][sl] = 0.3
        s["lift"][sl] = 0.18
        s["pelvis_h"][sl] = WALK_H
        s["spine_pitch"][sl] = 0.2
        s["arm_swing"][sl] = 0.6
        s["l_elbow"][sl] = s["r_elbow"][sl] = 1.3
    elif kind == "turn":
        dur = p["seconds"]
        s["yaw_rate"][sl] = p["angle"] * _bump(tau, 0.0, dur) / (dur / 2)  # integral = angle
        s["period"][sl] = 0.9
        s["lift"][sl] = 0.06
    elif kind == "jump":
        s["pelvis_h"][sl] = STAND_H - 0.15 * (_bump(tau, 0.2, 0.7) + _bump(tau, 1.0, 1.5))
        flight = _bump(tau, 0.6, 1.1)
        s["jump_z"][sl] = 0.3 * flight
        s["v_fwd"][sl] = p["fwd"] * flight * 2.0
        s["gait_on"][sl] = 1.0 - _bump(tau, 0.3, 1.4) ** 0.25
        s["l_down"][sl] = s["r_down"][sl] = 1.25 - 1.2 * flight
    elif kind == "wave":
        s["r_down"][sl] = -0.2
        s["r_elbow_up"][sl] = 1.3
        s["wave"][sl] = 0.45 * np.sin(2 * np.pi * 1.4 * tau)
    elif kind == "raise":
        up = _ramp(tau, 0.2, 1.0)
        s["l_down"][sl] = s["r_down"][sl] = 1.25 - 2.55 * up
    elif kind == "kick":
        k = _bump(tau, 0.4, 1.2)
        s[f"kick_{p['side'][0]}_fwd"][sl] = 0.45 * k
        s[f"kick_{p['side'][0]}_up"][sl] = 0.35 * k
        s["lift"][sl] = 0.0
    elif kind == "sit":
        down = _ramp(tau, 0.2, 1.4)
        s["pelvis_h"][sl] = STAND_H - 0.42 * down
        s["pelvis_back"][sl] = 0.3 * down
        s["spine_pitch"][sl] = 0.35 * down
        s["l_down"][sl] = s["r_down"][sl] = 1.25 - 0.3 * down


def _integrate_phase(period: np.ndarray, dt: float) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(dt / period[:-1])])


def _gait_ankles(
    base_xy: np.ndarray,
    yaw: np.ndarray,
    phase: np.ndarray,
    duty: np.ndarray,
    lift: np.ndarray,
    lateral: float,
    offset: float,
) -> np.ndarray:
    """World ankle targets [N, 3] for one foot: planted at mid-stance anchors, swung between."""
    n = len(phase)
    ph = phase + offset
    k = np.floor(ph)
    frac = ph - k
    idx = np.arange(n, dtype=float)

    def anchor(cycle: np.ndarray) -> np.ndarray:
        # time of mid-stance of each cycle, by inverting the monotonic phase
        t_mid = np.interp(cycle + duty_mean / 2, ph, idx)
        i = np.clip(np.round(t_mid).astype(int), 0, n - 1)
        side = np.stack([np.cos(yaw[i]), np.sin(yaw[i])], -1) * lateral
        return base_xy[i] + side

    duty_mean = float(np.mean(duty))
    stance = frac < duty
    a_now = anchor(k)
    a_next = anchor(k + 1)
    s = np.clip((frac - duty) / (1 - duty), 0, 1)
    # the foot travels only while it is high (s in [0.2, 0.8]), so it lifts and lands in place
    h = np.clip((s - 0.2) / 0.6, 0, 1)
    h = h * h * (3 - 2 * h)
    xy = np.where(stance[:, None], a_now, a_now + (a_next - a_now) * h[:, None])
    z = np.where(stance, 0.0, lift * np.sqrt(np.sin(np.pi * s)))
    return np.concatenate([xy, (z + ANKLE_H)[:, None]], -1)


def _knee_angle(o1: np.ndarray, o2: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Knee flexion about X that makes |o1 + Rx(k) o2| = d (law of cosines, solved exactly)."""
    b = o1[1] * o2[1] + o1[2] * o2[2]
    c = o1[2] * o2[1] - o1[1] * o2[2]
    k_ = (d**2 - o1 @ o1 - o2 @ o2) / 2 - o1[0] * o2[0]
    r = math.hypot(b, c)
    return math.atan2(c, b) + np.arccos(np.clip(k_ / r, -1.0, 1.0))


def _about(axis: str, angle: np.ndarray | float) -> Rotation:
    """Rotations about a coordinate axis by per-frame angles (vectorised)."""
    angle = np.asarray(angle, dtype=float)
    vec = np.zeros(angle.shape + (3,))
    vec[..., "xyz".index(axis)] = angle
    return Rotation.from_rotvec(vec)


def _align(v: np.ndarray, u: np.ndarray) -> Rotation:
    """Minimal rotations taking directions v [N,3] onto u [N,3]."""
    vn = v / np.linalg.norm(v, axis=-1, keepdims=True)
    un = u / np.linalg.norm(u, axis=-1, keepdims=True)
    axis = np.cross(vn, un)
    sin = np.linalg.norm(axis, axis=-1, keepdims=True)
    cos = (vn * un).sum(-1, keepdims=True)
    angle = np.arctan2(sin, cos)
    return Rotation.from_rotvec(np.where(sin > 1e-9, axis / np.maximum(sin, 1e-12) * angle, 0.0))


def synthesize(
    segments: list[tuple[str, dict, float]], fps: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``(action, params, seconds)`` segments -> AMASS ``poses`` [N, 66], ``trans`` [N, 3]."""
    dt = 1.0 / fps
    pad = int(2 * fps)  # simulate margins so gait anchors exist past both ends
    lengths = [max(2, int(round(d * fps))) for _, _, d in segments]
    n = sum(lengths) + 2 * pad
    s = _defaults(n)
    start = pad
    for k, ((kind, params, _), length) in enumerate(zip(segments, lengths, strict=True)):
        # the first and last actions also run through the margins, so no edge blends to rest
        lo = 0 if k == 0 else start
        hi = n if k == len(segments) - 1 else start + length
        _fill(
            s,
            slice(lo, hi),
            (np.arange(lo, hi) - start) * dt,
            kind,
            {**params, "seconds": length * dt},
        )
        start += length
    for key in SIGNALS:  # blend across segment boundaries (~0.4 s)
        if key != "wave":
            s[key] = uniform_filter1d(s[key], size=max(1, int(0.4 * fps)), mode="nearest")

    yaw = rng.uniform(-np.pi, np.pi) + np.concatenate([[0], np.cumsum(s["yaw_rate"][:-1] * dt)])
    # body frame at yaw 0: forward = -Y, left = +X (SMPL native +Z / +X after Rx(90))
    fwd = np.stack([np.sin(yaw), -np.cos(yaw)], -1)
    left = np.stack([np.cos(yaw), np.sin(yaw)], -1)
    vel = s["v_fwd"][:, None] * fwd + s["v_lat"][:, None] * left
    base = rng.uniform(-2, 2, size=2) + np.concatenate([[[0, 0]], np.cumsum(vel[:-1] * dt, 0)])

    phase = _integrate_phase(s["period"], dt)
    lift = s["lift"] * s["gait_on"]
    lat_l = OFFSETS[1][0] + OFFSETS[4][0] + OFFSETS[7][0]
    lat_r = OFFSETS[2][0] + OFFSETS[5][0] + OFFSETS[8][0]
    ankles = []
    for lateral, offset, side in ((lat_l, 0.0, "l"), (lat_r, 0.5, "r")):
        gait = _gait_ankles(base, yaw, phase, s["duty"], lift, lateral, offset)
        rigid = np.concatenate([base + left * lateral, np.full((n, 1), ANKLE_H)], -1)
        w = s["gait_on"][:, None]
        a = w * gait + (1 - w) * rigid
        a[:, :2] += fwd * s[f"kick_{side}_fwd"][:, None]
        a[:, 2] += s[f"kick_{side}_up"] + s["jump_z"]
        ankles.append(a)

    pelvis = np.concatenate(
        [base - fwd * s["pelvis_back"][:, None], (s["pelvis_h"] + s["jump_z"])[:, None]], -1
    )
    orient = _about("z", yaw) * _about("x", np.pi / 2)
    rots = [Rotation.identity(n)] * 22
    rots[0] = orient
    offs = np.asarray(OFFSETS)
    for hip, knee, ankle, target in ((1, 4, 7, ankles[0]), (2, 5, 8, ankles[1])):
        hip_world = pelvis + orient.apply(offs[hip])
        u = orient.inv().apply(target - hip_world)
        kappa = _knee_angle(offs[knee], offs[ankle], np.linalg.norm(u, axis=-1))
        r_knee = _about("x", kappa)
        v = offs[knee] + r_knee.apply(offs[ankle])
        r_hip = _align(v, u)
        rots[hip], rots[knee], rots[ankle] = r_hip, r_knee, (r_hip * r_knee).inv()
    rots[3] = _about("x", 0.5 * s["spine_pitch"])
    rots[6] = _about("x", 0.5 * s["spine_pitch"])
    swing = s["arm_swing"] * np.sin(2 * np.pi * phase)
    rots[16] = _about("x", swing) * _about("z", -s["l_down"])
    rots[17] = _about("x", -swing) * _about("z", s["r_down"])
    rots[18] = _about("y", -s["l_elbow"])
    rots[19] = _about("y", s["r_elbow"]) * _about("z", -(s["r_elbow_up"] + s["wave"]))
    poses = np.stack([r.as_rotvec() for r in rots], 1)[pad:-pad].reshape(-1, 66)
    trans = pelvis[pad:-pad] - np.asarray(PELVIS_REST)
    return poses.astype(np.float32), trans.astype(np.float32)


def random_motion(
    rng: np.random.Generator, fps: float, n_segments: tuple[int, int], seconds: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, list[Segment]]:
    """One composed motion with its per-segment annotations."""
    count = int(rng.integers(n_segments[0], n_segments[1] + 1))
    specs, segs, t = [], [], 0.0
    for _ in range(count):
        kind, params, text = sample_action(rng)
        dur = float(np.round(rng.uniform(*seconds), 2))
        specs.append((kind, params, dur))
        segs.append(Segment(kind, f"a person {text}", t, t + dur))
        t += dur
    poses, trans = synthesize(specs, fps, rng)
    return poses, trans, segs


def describe(segments: list[Segment]) -> str:
    """'a person walks forward, then turns left' for a composed motion."""
    parts = [segments[0].text] + [s.text.removeprefix("a person ") for s in segments[1:]]
    return ", then ".join(parts)
