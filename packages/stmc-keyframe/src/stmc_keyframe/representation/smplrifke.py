"""SMPL-RIFKE: STMC's 205-d per-frame motion features (Z up, 20 fps).

| slice      | dim | meaning                                                              |
|------------|-----|----------------------------------------------------------------------|
| [0]        | 1   | pelvis height above the floor (min joint Z of the encoded sequence)  |
| [1:3]      | 2   | pelvis XY velocity in the current heading frame (metres / frame)     |
| [3]        | 1   | heading angular velocity (rad / frame)                               |
| [4:136]    | 132 | 22 x 6D rotations; joint 0 is the global orient with its heading removed |
| [136:205]  | 69  | 23 non-pelvis joints: XY pelvis-relative in the heading frame, Z - pelvis Z |

The root is relative, so a decoded motion starts at ``origin`` with ``first_heading``; the last
frame's velocities are extrapolated with constant acceleration. Heading is the Z angle of the
Euler ZYX decomposition of the global orient and, when decoding, comes only from integrating
``[3]`` (any Z rotation left in the 6D global orient is discarded, as upstream).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from stmc_keyframe.representation.rotations import (
    heading_of,
    matrix_to_6d,
    rot_z,
    rotate_xy,
    sixd_to_matrix,
)
from stmc_keyframe.representation.skeleton import N_BODY_JOINTS, N_JOINTS

N_FEATS = 205
HEIGHT = slice(0, 1)
VEL_XY = slice(1, 3)
VEL_ANGLE = slice(3, 4)
ROOT = slice(0, 4)
POSES = slice(4, 136)
JOINTS_LOCAL = slice(136, 205)

BODY_PARTS = {
    "legs": (0, 1, 2, 4, 5, 7, 8, 10, 11),
    "spine": (3, 6, 9),
    "head": (12, 15),
    "left arm": (13, 16, 18, 20, 22),
    "right arm": (14, 17, 19, 21, 23),
}
PART_ALIASES = {
    "torso": "spine",
    "neck": "head",
    "left hand": "left arm",
    "right hand": "right arm",
    "left leg": "legs",
    "right leg": "legs",
}


def rotation_slice(joint: int) -> slice:
    return slice(POSES.start + 6 * joint, POSES.start + 6 * joint + 6)


def position_slice(joint: int) -> slice:
    """joints_local slot of a non-pelvis joint (1..23)."""
    if joint < 1:
        raise ValueError("the pelvis has no joints_local slot; its height is feature 0")
    return slice(JOINTS_LOCAL.start + 3 * (joint - 1), JOINTS_LOCAL.start + 3 * joint)


def _idx(s: slice) -> list[int]:
    return list(range(s.start, s.stop))


def body_part_features(part: str) -> list[int]:
    """Feature indices of a body part (STMC's per-part slices; legs own the root features)."""
    part = PART_ALIASES.get(part, part)
    if part not in BODY_PARTS:
        raise ValueError(
            f"unknown body part {part!r}; use one of {sorted(BODY_PARTS)} or aliases "
            f"{sorted(PART_ALIASES)}"
        )
    feats = _idx(ROOT) if part == "legs" else []
    for j in BODY_PARTS[part]:
        if j < N_BODY_JOINTS:
            feats += _idx(rotation_slice(j))
        if j > 0:
            feats += _idx(position_slice(j))
    return sorted(feats)


KEYFRAME_FEATURE_MODES = ("positions", "pos_rot_vel")


def joint_feature_table(mode: str = "positions") -> list[list[int]]:
    """Per body joint (22) the features it observes, for ``motioncore.masking.expand_to_features``.

    ``positions``: what global joint positions determine (pelvis height; joints_local of the
    joint, and of its hand end point for the wrists). ``pos_rot_vel`` (CondMDI's default)
    adds the joint's 6D rotation and, for the pelvis, the root velocities.
    """
    if mode not in KEYFRAME_FEATURE_MODES:
        raise ValueError(f"keyframe feature mode {mode!r} is unknown; use {KEYFRAME_FEATURE_MODES}")
    table = []
    for j in range(N_BODY_JOINTS):
        if j == 0:
            feats = _idx(ROOT) if mode == "pos_rot_vel" else _idx(HEIGHT)
        else:
            feats = _idx(position_slice(j))
            if j in (20, 21):  # wrists carry the hand end points (22, 23)
                feats += _idx(position_slice(j + 2))
        if mode == "pos_rot_vel":
            feats += _idx(rotation_slice(j))
        table.append(feats)
    return table


def _extrapolate_last(d: torch.Tensor) -> torch.Tensor:
    """Append a last frame to per-frame differences [..., T-1, D] by constant acceleration."""
    if d.shape[-2] >= 2:
        last = 2 * d[..., -1:, :] - d[..., -2:-1, :]
    else:
        last = d[..., -1:, :]
    return torch.cat([d, last], -2)


def _wrap(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def encode(joints: torch.Tensor, local_rotmats: torch.Tensor) -> torch.Tensor:
    """Global joints [..., T, 24, 3] (Z up) and local rotations [..., T, 22, 3, 3] -> [..., T, 205].

    The floor is the minimum joint Z of the whole sequence (upstream's convention).
    """
    if joints.shape[-2:] != (N_JOINTS, 3):
        raise ValueError(f"expected joints [..., T, 24, 3], got {tuple(joints.shape)}")
    if local_rotmats.shape[-3:] != (N_BODY_JOINTS, 3, 3):
        raise ValueError(f"expected rotations [..., T, 22, 3, 3], got {tuple(local_rotmats.shape)}")
    if joints.shape[-3] < 2:
        raise ValueError("SMPL-RIFKE needs at least 2 frames (velocities)")
    floor = joints[..., 2].amin(dim=(-1, -2), keepdim=True)
    joints = torch.cat([joints[..., :2], (joints[..., 2] - floor)[..., None]], -1)
    root = joints[..., 0, :]
    heading = heading_of(local_rotmats[..., 0, :, :])
    vel = _extrapolate_last(root[..., 1:, :2] - root[..., :-1, :2])
    vel_local = rotate_xy(vel, -heading)
    dh = _wrap(heading[..., 1:] - heading[..., :-1])[..., None]
    vel_angle = _extrapolate_last(dh)
    orient = rot_z(-heading) @ local_rotmats[..., 0, :, :]
    rots = torch.cat([orient[..., None, :, :], local_rotmats[..., 1:, :, :]], -3)
    rel = joints[..., 1:, :] - root[..., None, :]
    rel_xy = rotate_xy(rel[..., :2], -heading[..., None])
    joints_local = torch.cat([rel_xy, rel[..., 2:]], -1)
    return torch.cat(
        [
            root[..., 2:3],
            vel_local,
            vel_angle,
            matrix_to_6d(rots).flatten(-2),
            joints_local.flatten(-2),
        ],
        -1,
    )


@dataclass
class Decoded:
    joints: torch.Tensor  # [..., T, 24, 3]
    local_rotmats: torch.Tensor  # [..., T, 22, 3, 3], joint 0 with the heading re-inserted
    heading: torch.Tensor  # [..., T]
    root: torch.Tensor  # [..., T, 3]


def decode(
    feats: torch.Tensor,
    first_heading: torch.Tensor | float = 0.0,
    origin: torch.Tensor | None = None,
) -> Decoded:
    """[..., T, 205] -> joints and rotations; differentiable (used for reconstruction guidance).

    ``first_heading`` [...] and ``origin`` [..., 2] place the first frame in the world.
    """
    if feats.shape[-1] != N_FEATS:
        raise ValueError(f"expected {N_FEATS} SMPL-RIFKE features, got {feats.shape[-1]}")
    first_heading = torch.as_tensor(first_heading, dtype=feats.dtype, device=feats.device)
    dh = feats[..., VEL_ANGLE][..., 0]
    heading = torch.cumsum(torch.cat([torch.zeros_like(dh[..., :1]), dh[..., :-1]], -1), -1)
    heading = heading + first_heading[..., None]
    step = rotate_xy(feats[..., VEL_XY], heading)
    xy = torch.cumsum(torch.cat([torch.zeros_like(step[..., :1, :]), step[..., :-1, :]], -2), -2)
    if origin is not None:
        xy = xy + origin[..., None, :]
    root = torch.cat([xy, feats[..., HEIGHT]], -1)
    local = feats[..., JOINTS_LOCAL].reshape(*feats.shape[:-1], N_JOINTS - 1, 3)
    rel_xy = rotate_xy(local[..., :2], heading[..., None])
    others = root[..., None, :] + torch.cat([rel_xy, local[..., 2:]], -1)
    joints = torch.cat([root[..., None, :], others], -2)
    rots = sixd_to_matrix(feats[..., POSES].reshape(*feats.shape[:-1], N_BODY_JOINTS, 6))
    orient = rot_z(heading) @ rots[..., 0, :, :]
    rots = torch.cat([orient[..., None, :, :], rots[..., 1:, :, :]], -3)
    return Decoded(joints=joints, local_rotmats=rots, heading=heading, root=root)


def heading_from_joints(joints: torch.Tensor) -> torch.Tensor:
    """Heading [..., T] estimated from the hips (left_hip - right_hip points along +X at 0)."""
    across = joints[..., 1, :2] - joints[..., 2, :2]
    return torch.atan2(across[..., 1], across[..., 0])


def features_from_positions(joints: torch.Tensor) -> torch.Tensor:
    """Global joints [..., K, 22 or 24, 3] (floor at Z = 0) -> the position features at those
    frames ([..., K, 205]; height and joints_local filled, everything else 0). Used to turn
    user keyframes into observed features; the heading comes from :func:`heading_from_joints`.
    """
    n = joints.shape[-2]
    if n not in (N_BODY_JOINTS, N_JOINTS) or joints.shape[-1] != 3:
        raise ValueError(f"keyframe joints must be [..., 22 or 24, 3], got {tuple(joints.shape)}")
    heading = heading_from_joints(joints)
    root = joints[..., 0, :]
    rel = joints[..., 1:, :] - root[..., None, :]
    rel_xy = rotate_xy(rel[..., :2], -heading[..., None])
    local = torch.cat([rel_xy, rel[..., 2:]], -1)
    out = joints.new_zeros(*joints.shape[:-2], N_FEATS)
    out[..., 0] = root[..., 2]
    out[..., JOINTS_LOCAL.start : JOINTS_LOCAL.start + 3 * (n - 1)] = local.flatten(-2)
    return out
