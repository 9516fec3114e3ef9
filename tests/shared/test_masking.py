"""Contract tests for motioncore.masking over every keyframe scheme."""

from __future__ import annotations

import pytest
import torch

from motioncore.losses import masked_mse
from motioncore.masking import (
    SCHEMES,
    expand_to_features,
    joint_to_feature_matrix,
    keyframe_dropout,
    keyframe_joint_mask,
    length_mask,
    loss_mask,
)

LENGTHS = [40, 17, 3, 1]
MAX_LEN, JOINTS = 48, 22


def draw(scheme, seed=0, **kw):
    return keyframe_joint_mask(
        scheme, LENGTHS, MAX_LEN, JOINTS, generator=torch.Generator().manual_seed(seed), **kw
    )


def test_seven_schemes_exist():
    assert set(SCHEMES) == {
        "random_frames",
        "benchmark_sparse",
        "benchmark_clip",
        "pelvis_only",
        "gmd_keyframes",
        "uncond",
        "random_joints",
    }


@pytest.mark.parametrize("scheme", SCHEMES)
def test_shape_dtype_and_keyframes_only_inside_valid_length(scheme):
    for seed in range(5):
        m = draw(scheme, seed)
        assert m.shape == (len(LENGTHS), MAX_LEN, JOINTS) and m.dtype == torch.bool
        valid = length_mask(LENGTHS, MAX_LEN)
        assert not (m & ~valid[..., None]).any(), "keyframe drawn in padding"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_deterministic_given_generator(scheme):
    assert torch.equal(draw(scheme, 3), draw(scheme, 3))


def frames(m):
    return m.any(-1).sum(-1).tolist()


def test_scheme_semantics():
    assert frames(draw("random_frames")) == [20, 17, 3, 1]
    assert frames(draw("random_frames", n_random_frames=4)) == [4, 4, 3, 1]
    assert frames(draw("gmd_keyframes", n_keyframes=5)) == [5, 5, 3, 1]
    assert frames(draw("uncond")) == [0, 0, 0, 0]
    sparse = draw("benchmark_sparse", trans_length=10)
    assert sparse[0].any(-1).nonzero().flatten().tolist() == [0, 10, 20, 30]
    assert sparse.all(-1).eq(sparse.any(-1)).all(), "benchmark_sparse observes all joints"
    clip = draw("benchmark_clip", trans_length=10)
    observed = clip[0].any(-1)
    assert observed[:15].all() and not observed[15:25].any() and observed[25:40].all()
    pelvis = draw("pelvis_only", n_keyframes=5)
    assert pelvis[..., 1:].sum() == 0 and frames(pelvis) == [5, 5, 3, 1]


def test_random_joints_forces_root_and_varies_joints():
    for seed in range(10):
        m = draw("random_joints", seed)
        keyframes = m.any(-1)
        assert torch.equal(m[..., 0], keyframes), "root must be on at every keyframe"
        k = keyframes[0].sum().item()
        assert 1 <= k <= LENGTHS[0] - 1
    counts = {int(draw("random_joints", s)[0, :, 1:].sum()) for s in range(10)}
    assert len(counts) > 1


def test_unknown_scheme_names_the_valid_ones():
    with pytest.raises(ValueError, match="random_frames"):
        draw("pelvis")


def test_expand_to_features_through_table():
    table = [[0, 1], [2], [2, 3]]  # feature 2 is shared by joints 1 and 2
    a = joint_to_feature_matrix(table, 5)
    jm = torch.zeros(1, 2, 3, dtype=torch.bool)
    jm[0, 0, 1] = True
    jm[0, 1, 0] = True
    fm = expand_to_features(jm, a)
    assert fm.shape == (1, 2, 5)
    assert fm[0, 0].tolist() == [False, False, True, False, False]
    assert fm[0, 1].tolist() == [True, True, False, False, False]
    frame_level = expand_to_features(torch.tensor([[True, False]]), a)
    assert frame_level[0, 0].tolist() == [True, True, True, True, False]
    with pytest.raises(ValueError, match="joints"):
        expand_to_features(torch.zeros(1, 2, 4, dtype=torch.bool), a)
    with pytest.raises(ValueError, match="outside"):
        joint_to_feature_matrix([[7]], 5)


def test_keyframe_dropout_zeroes_whole_samples():
    m = torch.ones(2000, 4, 3, dtype=torch.bool)
    d = keyframe_dropout(m, 0.1, torch.Generator().manual_seed(0))
    per = d.flatten(1)
    assert ((per.all(1)) | (~per.any(1))).all(), "dropout acts on whole samples"
    assert 0.07 < (~per.any(1)).float().mean() < 0.13


def test_loss_mask_and_padding_never_counted():
    valid = length_mask([3, 2], 4)
    observed = torch.zeros(2, 4, 2, dtype=torch.bool)
    observed[0, 0] = True
    keep = loss_mask(valid, observed, zero_keyframe_loss=False)
    drop = loss_mask(valid, observed, zero_keyframe_loss=True)
    assert keep.shape == drop.shape == (2, 4, 2)
    assert keep[0, 0].all() and not drop[0, 0].any() and drop[0, 1].all()
    assert not keep[1, 2:].any() and not drop[0, 3].any()
    pred, target = torch.zeros(2, 4, 2), torch.ones(2, 4, 2)
    before = masked_mse(pred, target, keep)
    pred[:, 3] = 100.0  # padding of sample 0 and 1
    pred[1, 2] = 100.0
    assert torch.equal(masked_mse(pred, target, keep), before)


def test_length_mask_errors():
    assert length_mask([2, 0], 3).tolist() == [[True, True, False], [False, False, False]]
    with pytest.raises(ValueError, match="exceed"):
        length_mask([5], 3)
