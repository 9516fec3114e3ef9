"""A 22-joint SMPL-like kinematic tree (plus the two SMPL-H hand end points STMC keeps).

Offsets approximate the SMPL neutral template with betas = 0, in SMPL's native frame (Y up,
facing +Z, left = +X); as in AMASS, the global orient carries the rotation to the Z-up world.
Forward kinematics follows SMPL: ``pelvis = trans + PELVIS_REST`` and every joint is its
parent's position plus the parent's global rotation applied to the rest offset.
"""

from __future__ import annotations

import torch

from stmc_keyframe.representation.rotations import axis_angle_to_matrix

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
N_BODY_JOINTS = 22  # joints with a rotation (AMASS poses[:, :66]); metrics use these
N_JOINTS = 24  # + left_hand, right_hand end points (SMPL-RIFKE's 23 non-pelvis joints)
FOOT_JOINTS = (10, 11)
PELVIS_REST = (0.0022, -0.2408, 0.0286)

# Rest offsets from the parent joint, metres, SMPL native frame.
OFFSETS = (
    (0.0, 0.0, 0.0),
    (0.0695, -0.0914, -0.0042), (-0.0677, -0.0905, -0.0043), (-0.0025, 0.1089, -0.0267),
    (0.0343, -0.3752, -0.0045), (-0.0383, -0.3826, -0.0089), (0.0055, 0.1352, 0.0011),
    (-0.0136, -0.3980, -0.0437), (0.0158, -0.3984, -0.0423), (0.0015, 0.0529, 0.0254),
    (0.0264, -0.0558, 0.1193), (-0.0254, -0.0481, 0.1233), (-0.0028, 0.2139, -0.0429),
    (0.0789, 0.1217, -0.0341), (-0.0818, 0.1188, -0.0386), (0.0051, 0.0650, 0.0513),
    (0.0910, 0.0305, -0.0089), (-0.0960, 0.0326, -0.0091), (0.2596, -0.0128, -0.0275),
    (-0.2537, -0.0134, -0.0215), (0.2492, 0.0090, -0.0012), (-0.2553, 0.0078, -0.0056),
    (0.0840, -0.0061, -0.0149), (-0.0846, -0.0062, -0.0103),
)  # fmt: skip


def offsets_tensor(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(OFFSETS, dtype=dtype)


def forward_kinematics(
    local_rotmats: torch.Tensor, trans: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local rotations [..., 22, 3, 3] and translation [..., 3] -> (joints [..., 24, 3],
    global rotations [..., 22, 3, 3]). The hand end points take their wrist's rotation."""
    if local_rotmats.shape[-3:] != (N_BODY_JOINTS, 3, 3):
        raise ValueError(f"expected [..., 22, 3, 3] rotations, got {tuple(local_rotmats.shape)}")
    offsets = offsets_tensor(local_rotmats.dtype).to(local_rotmats.device)
    pelvis = trans + torch.tensor(PELVIS_REST, dtype=trans.dtype, device=trans.device)
    glob: list[torch.Tensor] = [local_rotmats[..., 0, :, :]]
    pos: list[torch.Tensor] = [pelvis]
    for j in range(1, N_JOINTS):
        p = PARENTS[j]
        pos.append(pos[p] + (glob[p] @ offsets[j][:, None])[..., 0])
        if j < N_BODY_JOINTS:
            glob.append(glob[p] @ local_rotmats[..., j, :, :])
    return torch.stack(pos, -2), torch.stack(glob, -3)


def fk_axis_angle(poses: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """AMASS-style ``poses`` [..., 66] (22 x axis-angle) and ``trans`` [..., 3] -> joints."""
    if poses.shape[-1] != 3 * N_BODY_JOINTS:
        raise ValueError(f"expected poses with 66 values per frame, got {poses.shape[-1]}")
    rot = axis_angle_to_matrix(poses.reshape(*poses.shape[:-1], N_BODY_JOINTS, 3))
    return forward_kinematics(rot, trans)[0]
