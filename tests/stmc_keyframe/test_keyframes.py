"""Anchoring, guidance loss through the decoder, trajectory correction, baseline, sampling."""

from __future__ import annotations

import math

import pytest
import torch

from stmc_keyframe.keyframes import (
    anchor_to_keyframes,
    correct_trajectory,
    interpolate_keyframes,
    keyframe_guidance_loss,
    keyframe_jerk_ratio,
)
from stmc_keyframe.representation import smplrifke
from stmc_keyframe.representation.rotations import rotate_xy
from stmc_keyframe.timeline import Interval


def test_anchor_recovers_a_rigid_yaw_and_shift():
    g = torch.Generator().manual_seed(0)
    joints = torch.randn(2, 10, 22, 3, generator=g)
    theta = torch.tensor([0.7, -2.0])
    moved_xy = (
        rotate_xy(joints[..., :2], theta[:, None, None])
        + torch.tensor([[1.0, 2.0], [-3.0, 0.5]])[:, None, None]
    )
    target = torch.cat([moved_xy, joints[..., 2:]], -1)
    kf = torch.zeros(2, 10, dtype=torch.bool)
    kf[:, [2, 7]] = True
    torch.testing.assert_close(anchor_to_keyframes(joints, target, kf), target, atol=1e-5, rtol=0)
    none = torch.zeros_like(kf)
    torch.testing.assert_close(anchor_to_keyframes(joints, target, none), joints)


def test_guidance_loss_is_differentiable_and_descends(tiny_data):
    feats = tiny_data.train_set[0]["feats"][None]
    mean, std = tiny_data.stats
    std = std.clamp(min=1e-4)
    target = smplrifke.decode(feats, torch.tensor([1.0]), torch.tensor([[2.0, 1.0]])).joints[
        ..., :22, :
    ]
    kf = torch.zeros(1, feats.shape[1], dtype=torch.bool)
    kf[0, [0, feats.shape[1] - 1]] = True
    loss_fn = keyframe_guidance_loss(mean, std, target, kf)
    x = ((feats - mean) / std).clone()
    x[..., 1:4] += 0.5  # wrong root velocities: the end keyframe is missed
    x.requires_grad_(True)
    first = float(loss_fn(x).sum().detach())
    opt = torch.optim.Adam([x], lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        loss_fn(x).sum().backward()
        opt.step()
    assert float(loss_fn(x).sum().detach()) < first / 10


def test_interpolation_baseline_and_trajectory_correction():
    target = torch.zeros(1, 11, 22, 3)
    target[0, :, :, 0] = torch.arange(11.0)[:, None] ** 2  # curved path
    kf = torch.zeros(1, 11, dtype=torch.bool)
    kf[0, [2, 8]] = True
    base = interpolate_keyframes(target, kf, torch.tensor([11]))
    torch.testing.assert_close(base[0, kf[0]], target[0, kf[0]])
    assert float(base[0, 5, 0, 0]) == pytest.approx((4 + 64) / 2)  # linear between frames 2 and 8
    assert float(base[0, 0, 0, 0]) == 4.0 and float(base[0, 10, 0, 0]) == 64.0  # constant ends
    fixed = correct_trajectory(torch.zeros_like(target), target, kf, torch.tensor([11]))
    torch.testing.assert_close(fixed[0, kf[0], 0, :2], target[0, kf[0], 0, :2])


def test_generate_through_global_keyframes(make_module, tiny_data):
    torch.manual_seed(0)
    module = make_module(tiny_data.stats).eval()
    feats = tiny_data.test_set[0]["feats"][None]
    n = feats.shape[1]
    gt = smplrifke.decode(feats, torch.tensor([math.pi / 3]), torch.tensor([[4.0, -2.0]])).joints
    jm = torch.zeros(1, n, 22, dtype=torch.bool)
    jm[0, [0, n // 2, n - 1]] = True
    out = module.generate(
        ["a person walks forward"],
        torch.tensor([n]),
        gt,
        jm,
        generator=torch.Generator().manual_seed(0),
    )
    assert out["feats"].shape == (1, n, 205) and out["joints"].shape == (1, n, 24, 3)
    assert out["keyframes"][0].sum() == 3
    kf = out["keyframes"][0]
    # the root is placed on the global keyframes although the representation is relative
    torch.testing.assert_close(out["joints"][0, kf, 0, :2], gt[0, kf, 0, :2], atol=1e-4, rtol=0)
    # observed pose features (height and pelvis-relative joints) are imputed at the keyframes
    torch.testing.assert_close(out["joints"][0, kf, :22, 2], gt[0, kf, :22, 2], atol=2e-3, rtol=0)


def test_smoothing_and_foot_lock_post_processes():
    from stmc_keyframe.keyframes import lock_feet, smooth_features

    feats = torch.randn(1, 30, 205)
    assert torch.equal(smooth_features(feats, torch.tensor([30]), 0.0), feats)
    smooth = smooth_features(feats, torch.tensor([30]), 2.0)
    assert smooth.diff(dim=1).abs().mean() < feats.diff(dim=1).abs().mean() / 2
    const = torch.ones(1, 30, 205)
    torch.testing.assert_close(smooth_features(const, torch.tensor([30]), 2.0), const)
    # a body gliding with both feet on the floor: locking removes the slide of the planted foot
    joints = torch.zeros(1, 20, 24, 3)
    joints[..., 0] = torch.linspace(0, 2, 20)[None, :, None]
    joints[..., 2] = 0.5
    joints[:, :, 10:12, 2] = 0.0
    locked = lock_feet(joints, torch.tensor([20]))
    torch.testing.assert_close(locked[0, :, 10, :2], locked[0, :1, 10, :2].expand(20, 2))


def test_keyframes_inside_a_timeline(make_module, tiny_data):
    from stmc_keyframe.timeline import Interval

    module = make_module(tiny_data.stats).eval()
    feats = tiny_data.test_set[0]["feats"][None]
    n = feats.shape[1]
    gt = smplrifke.decode(feats, torch.tensor([1.0]), torch.tensor([[-3.0, 1.0]])).joints
    jm = torch.zeros(1, n, 22, dtype=torch.bool)
    jm[0, [0, n // 2, n - 1]] = True
    cut = (n // 3 + 0.5) / 20
    timeline = [Interval("a person walks forward", 0.0, cut, ("legs",)),
                Interval("a person waves", cut, (n + 0.5) / 20)]  # fmt: skip
    out = module.generate_timelines([timeline], gt, jm, generator=torch.Generator().manual_seed(0),
                                    num_steps=3)  # fmt: skip
    assert out["lengths"].tolist() == [n] and out["joints"].shape == (1, n, 24, 3)
    kf = out["keyframes"][0]
    assert kf.sum() == 3
    torch.testing.assert_close(out["joints"][0, kf, 0, :2], gt[0, kf, 0, :2], atol=1e-4, rtol=0)
    torch.testing.assert_close(out["joints"][0, kf, :22, 2], gt[0, kf, :22, 2], atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="timeline frames"):
        module.generate_timelines([timeline], gt[:, :-1], jm[:, :-1], num_steps=1)


def test_keyframe_jerk_ratio_sees_a_pop():
    from stmc_keyframe.keyframes import keyframe_jerk_ratio

    t = torch.linspace(0, 3, 60)
    joints = torch.stack([torch.sin(t), torch.cos(2 * t), 0 * t], -1)[None, :, None].repeat(
        1, 1, 2, 1
    )
    kf = torch.zeros(1, 60, dtype=torch.bool)
    kf[0, 30] = True
    smooth = keyframe_jerk_ratio(joints, kf, torch.tensor([60]))
    assert 0.3 < float(smooth) < 3.0
    popped = joints.clone()
    popped[0, 30] += 0.05  # the keyframe is met but the frames around it are not
    assert float(keyframe_jerk_ratio(popped, kf, torch.tensor([60]))) > 10 * float(smooth)
    # frames past the length do not count
    assert torch.isnan(keyframe_jerk_ratio(joints, kf, torch.tensor([3]))).all()


def test_timeline_evaluation_logs_keyframe_metrics(make_module, tiny_data, monkeypatch):
    module = make_module(tiny_data.stats).eval()
    module.evaluation.update(n_timelines=2, num_steps=2)
    logged = {}
    monkeypatch.setattr(module, "log", lambda name, value, **kw: logged.__setitem__(name, value))
    items = [tiny_data.test_set[i] for i in range(min(3, len(tiny_data.test_set)))]
    batch = tiny_data.test_set.collate(items)
    n = batch["feats"].shape[1]
    gt = smplrifke.decode(batch["feats"]).joints
    jm = torch.zeros(len(items), n, 22, dtype=torch.bool)
    jm[:, [0, 10]] = True
    module._timeline_test(batch, gt, jm, torch.Generator().manual_seed(0))
    assert set(logged) == {"test/timeline_keyframe_error_m", "test/timeline_keyframe_jerk_ratio",
                           "test/timeline_keyframe_jerk_ratio_gt", "test/timeline_transition_jerk"}  # fmt: skip
    assert 0 <= logged["test/timeline_keyframe_error_m"] < 1.0
    lengths = batch["lengths"][:2]
    m = int(lengths.max())
    expected_gt = keyframe_jerk_ratio(gt[:2, :m, :22], jm[:2, :m].any(-1), lengths).nanmean()
    assert logged["test/timeline_keyframe_jerk_ratio_gt"] == pytest.approx(float(expected_gt))


def test_smooth_fill_meets_given_entries_without_a_kink():
    from stmc_keyframe.keyframes import smooth_fill

    n = 80
    mask = torch.zeros(n, 3, dtype=torch.bool)
    mask[[10, 25], 0] = True
    mask[[10, 25], 1] = True
    mask[5, 2] = True
    residual = torch.zeros(n, 3)
    residual[10, :2], residual[25, :2], residual[5, 2] = 1.0, -0.5, 2.0
    fill = smooth_fill(residual, mask, length=6.0)
    torch.testing.assert_close(fill[mask], residual[mask])
    torch.testing.assert_close(fill[:, 0], fill[:, 1])  # one solve per mask pattern
    # no kink at a given frame: the second difference there is that of a smooth curve
    d2 = fill[2:, 0] - 2 * fill[1:-1, 0] + fill[:-2, 0]
    assert float(d2[9].abs()) < 0.2
    assert float(fill[-1, 0].abs()) < 0.01  # decays to zero far from the given frames


def test_smoothing_through_keyframes_keeps_them_exact_without_a_pop():
    from stmc_keyframe.keyframes import keyframe_jerk_ratio, smooth_features

    n = 60
    t = torch.arange(n, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    x = torch.sin(t / 8)[None, :, None].expand(1, n, 3) + 0.02 * torch.randn(1, n, 3, generator=g)
    values = x.clone()
    mask = torch.zeros(1, n, 3, dtype=torch.bool)
    mask[0, [15, 40]] = True
    mask[0, 5, 2] = True  # another observed pattern in the last column
    values[0, [15, 40]] += 0.5  # the keyframes sit off the generated motion
    lengths = torch.tensor([n])
    # smoothing first and overwriting the keyframes after: the pop
    late = torch.where(mask, values, smooth_features(x, lengths, 2.0))
    soft = smooth_features(x, lengths, 2.0, values, mask)
    torch.testing.assert_close(soft[mask], values[mask])
    kf = mask[..., 0]
    as_joints = lambda f: f[..., :2, None].expand(-1, -1, -1, 3)  # noqa: E731
    ratio = {k: float(keyframe_jerk_ratio(as_joints(f), kf, lengths)[0])
             for k, f in (("late", late), ("soft", soft))}  # fmt: skip
    assert ratio["late"] > 100 and ratio["soft"] < ratio["late"] / 20, ratio
    # the same smoothing as without keyframes where nothing is observed near
    free = smooth_features(x, lengths, 2.0)
    torch.testing.assert_close(soft[0, 55:, :2], free[0, 55:, :2], atol=0.02, rtol=0)


def test_stronger_smoothing_next_to_keyframes_spreads_the_bend():
    from stmc_keyframe.keyframes import keyframe_jerk_ratio, smooth_features

    n = 60
    g = torch.Generator().manual_seed(1)
    x = torch.sin(torch.arange(n) / 6.0)[None, :, None].expand(1, n, 4).clone()
    x += 0.05 * torch.randn(1, n, 4, generator=g)
    mask = torch.zeros(1, n, 4, dtype=torch.bool)
    mask[0, [22, 36, 50]] = True
    values = torch.where(mask, x + 0.3, x)  # keyframes off the generated motion
    lengths = torch.tensor([n])
    same = smooth_features(x, lengths, 2.0, values, mask, sigma_keyframes=2.0)
    torch.testing.assert_close(same, smooth_features(x, lengths, 2.0, values, mask))
    near = smooth_features(x, lengths, 2.0, values, mask, sigma_keyframes=3.0)
    torch.testing.assert_close(near[mask], values[mask])  # keyframes still exact
    as_joints = lambda f: f[..., None].expand(-1, -1, -1, 3)  # noqa: E731
    kf = mask[..., 0]
    before = float(keyframe_jerk_ratio(as_joints(same), kf, lengths)[0])
    after = float(keyframe_jerk_ratio(as_joints(near), kf, lengths)[0])
    assert after < before / 1.5, (before, after)
    # far from every keyframe the motion is the plain smoothing's
    torch.testing.assert_close(near[0, :4], same[0, :4], atol=0.02, rtol=0)


def test_sampling_refuses_num_steps_below_one(make_module):
    module = make_module().eval()
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"num_steps={bad}.*num_steps=N with N >= 1"):
            module.generate(["a person walks"], torch.tensor([10]), num_steps=bad)
        with pytest.raises(ValueError, match=f"num_steps={bad}"):
            module.generate_timelines([[Interval("walk", 0.0, 1.0)]], num_steps=bad)
    assert module.resolve_num_steps(None) == module.d["num_steps"]


def test_sample_refuses_seconds_of_no_frame():
    from omegaconf import OmegaConf

    from stmc_keyframe.sample import text_frames

    for seconds in (0, 0.01, -1):
        cfg = OmegaConf.create({"seconds": seconds, "keyframes": None})
        with pytest.raises(ValueError, match=rf"seconds={seconds} gives -?\d+ frames.*seconds=3"):
            text_frames(cfg)
    assert text_frames(OmegaConf.create({"seconds": 2.0, "keyframes": None})) == 40
    assert text_frames(OmegaConf.create({"seconds": 0, "keyframes": "kf.npy"})) == 0


def test_timeline_interval_under_one_frame_is_named():
    from stmc_keyframe.timeline import process_timeline

    with pytest.raises(ValueError, match="'blink'.*under one frame"):
        process_timeline([Interval("walk", 0.0, 2.0), Interval("blink", 1.0, 1.02)])


def test_evaluation_rounds_sample_differently(make_module, tiny_data):
    """``make eval SEEDS=N``: round r draws other keyframes, poses and noise (round_seed)."""
    module = make_module(tiny_data.stats).eval()
    module.evaluation.update(n_timelines=0, num_steps=2)
    batch = tiny_data.test_set.collate([tiny_data.test_set[i] for i in range(2)])

    def run(round_):
        module.eval_round = round_
        module._test_out = []
        module.test_step(batch, 0)
        return module._test_out[0]["pred"]

    first = run(0)
    torch.testing.assert_close(run(0), first)
    assert not torch.allclose(run(1), first)
