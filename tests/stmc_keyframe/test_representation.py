"""SMPL-RIFKE round trips, the body-part and joint->feature tables, and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stmc_keyframe.data.procedural import synthesize
from stmc_keyframe.representation import smplrifke
from stmc_keyframe.representation.rotations import (
    axis_angle_to_matrix,
    matrix_to_6d,
    sixd_to_matrix,
)
from stmc_keyframe.representation.skeleton import forward_kinematics


def _motion(kind="circle", params=None, seconds=2.0):
    poses, trans = synthesize(
        [(kind, params or {"dir": 1.0}, seconds)], 20.0, np.random.default_rng(1)
    )
    rot = axis_angle_to_matrix(torch.tensor(poses).reshape(-1, 22, 3))
    joints = forward_kinematics(rot, torch.tensor(trans))[0]
    return joints, rot


def test_features_to_joints_to_features_round_trip():
    joints, rot = _motion()
    feats = smplrifke.encode(joints, rot)
    assert feats.shape == (len(joints), 205)
    dec = smplrifke.decode(feats, first_heading=1.3, origin=torch.tensor([2.0, -1.0]))
    again = smplrifke.encode(dec.joints, dec.local_rotmats)
    torch.testing.assert_close(again, feats, atol=2e-5, rtol=1e-4)


def test_decode_recovers_the_motion_up_to_its_start_pose():
    joints, rot = _motion("walk", {"speed": 1.1})
    feats = smplrifke.encode(joints, rot)
    heading0 = math.atan2(rot[0, 0, 1, 0], rot[0, 0, 0, 0])
    origin = joints[0, 0, :2]
    dec = smplrifke.decode(feats, first_heading=heading0, origin=origin)
    floor = joints[..., 2].min()
    expected = joints.clone()
    expected[..., 2] -= floor
    torch.testing.assert_close(dec.joints, expected, atol=1e-4, rtol=1e-4)


def test_decoded_heading_ignores_z_rotation_in_the_6d_orient():
    joints, rot = _motion()
    feats = smplrifke.encode(joints, rot)
    spun = feats.clone()
    twist = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.7])).expand(len(feats), 3, 3)
    orient = sixd_to_matrix(feats[:, 4:10])
    spun[:, 4:10] = matrix_to_6d(twist @ orient)
    # joints come from the joints_local features and the integrated heading only
    torch.testing.assert_close(smplrifke.decode(spun).joints, smplrifke.decode(feats).joints)


def test_body_part_tables_partition_all_features():
    seen = []
    for part in smplrifke.BODY_PARTS:
        seen += smplrifke.body_part_features(part)
    assert sorted(seen) == list(range(205))
    assert smplrifke.body_part_features("left leg") == smplrifke.body_part_features("legs")
    assert set(range(4)) <= set(smplrifke.body_part_features("legs"))
    with pytest.raises(ValueError, match="unknown body part"):
        smplrifke.body_part_features("tail")


def test_joint_feature_table_modes():
    pos = smplrifke.joint_feature_table("positions")
    full = smplrifke.joint_feature_table("pos_rot_vel")
    assert len(pos) == len(full) == 22
    assert pos[0] == [0] and full[0][:4] == [0, 1, 2, 3]
    assert set(pos[21]) == set(range(136 + 60, 136 + 63)) | set(range(136 + 66, 136 + 69))
    assert {f for row in full for f in row} == set(range(205))
    with pytest.raises(ValueError, match="unknown"):
        smplrifke.joint_feature_table("everything")


def test_features_from_positions_match_encoded_positions():
    joints, rot = _motion("turn", {"angle": 1.5})
    feats = smplrifke.encode(joints, rot)
    floor = joints[..., 2].min()
    world = joints.clone()
    world[..., 2] -= floor
    pos = smplrifke.features_from_positions(world)
    torch.testing.assert_close(pos[:, 0], feats[:, 0])
    torch.testing.assert_close(pos[:, 136:], feats[:, 136:], atol=2e-3, rtol=0)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="205"):
        smplrifke.decode(torch.zeros(4, 200))
    with pytest.raises(ValueError, match="24, 3"):
        smplrifke.encode(torch.zeros(4, 22, 3), torch.eye(3).expand(4, 22, 3, 3))
    with pytest.raises(ValueError, match="2 frames"):
        smplrifke.encode(torch.zeros(1, 24, 3), torch.eye(3).expand(1, 22, 3, 3))


def test_axis_angle_round_trip_without_a_rotation_library():
    from stmc_keyframe.representation.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    quarter = axis_angle_to_matrix(torch.tensor([0.0, 0.0, torch.pi / 2]))
    torch.testing.assert_close(
        quarter @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    )
    aa = torch.randn(2000, 3, generator=torch.Generator().manual_seed(0)) * 1.5
    aa = torch.cat(
        [aa, torch.tensor([[0.0, 0.0, 0.0], [1e-7, 0, 0], [0, 3.1415, 0], [2.2, -2.2, 0]])]
    )
    r = axis_angle_to_matrix(aa)
    torch.testing.assert_close(
        r @ r.transpose(-1, -2), torch.eye(3).expand_as(r), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(axis_angle_to_matrix(matrix_to_axis_angle(r)), r, atol=2e-4, rtol=0)
    small = aa.norm(dim=-1) < 3.0
    torch.testing.assert_close(matrix_to_axis_angle(r)[small], aa[small], atol=1e-4, rtol=1e-4)
