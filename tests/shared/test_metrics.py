"""Tests for motioncore.metrics: image metrics and motion metrics."""

import math

import numpy as np
import pytest
import torch
import torchvision

from motioncore.metrics import (
    dtw_mje,
    dtw_mje_batch,
    foot_skating_ratio,
    keyframe_error,
    lpips_or_none,
    mpjpe,
    ndtw_mje,
    ndtw_mje_batch,
    psnr,
    ssim,
    trajectory_error,
    transition_jerk,
)

# --- image metrics -------------------------------------------------------------------------


def test_psnr_known_mse_and_identical():
    target = torch.rand(3, 3, 16, 16) * 0.5
    pred = target.clone()
    pred[0] += 0.1  # MSE 0.01 -> 20 dB at data range 1
    pred[1] += 0.01  # MSE 1e-4 -> 40 dB
    value = psnr(pred, target, data_range=1.0)
    assert value.shape == (3,)
    torch.testing.assert_close(value[:2], torch.tensor([20.0, 40.0]), rtol=0, atol=1e-3)
    assert math.isinf(value[2])
    # Data range 2 (images in [-1, 1]) adds 20 log10(2) dB.
    torch.testing.assert_close(
        psnr(pred, target, data_range=2.0)[0],
        torch.tensor(20 + 20 * math.log10(2)),
        atol=1e-3,
        rtol=0,
    )


def test_ssim_per_image():
    torch.manual_seed(0)
    target = torch.rand(3, 1, 32, 32)
    pred = target.clone()
    pred[1] = (pred[1] + 0.3 * torch.randn(1, 32, 32)).clamp(0, 1)
    value = ssim(pred, target, data_range=1.0)
    assert value.shape == (3,)
    torch.testing.assert_close(value[[0, 2]], torch.ones(2))
    assert value[1] < 0.9
    with pytest.raises(ValueError, match=r"\(3, 1, 32, 32\).*\(3, 1, 16, 16\)"):
        ssim(pred, target[..., :16, :16], data_range=1.0)


def test_image_metrics_ignore_bf16_autocast_and_bf16_inputs():
    """Eval under bf16-mixed must report the fp32 metrics of the same images."""
    torch.manual_seed(0)
    target = torch.rand(4, 3, 32, 32)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    reference = ssim(pred, target, data_range=1.0), psnr(pred, target, data_range=1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = ssim(pred, target, data_range=1.0), psnr(pred, target, data_range=1.0)
    for ours, ref in zip(under_autocast, reference):
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, ref)
    rounded = pred.bfloat16(), target.bfloat16()
    torch.testing.assert_close(
        ssim(*rounded, data_range=1.0),
        ssim(*(x.float() for x in rounded), data_range=1.0),
    )


def test_lpips_none_without_cached_backbone(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    assert lpips_or_none(images, images) is None


def test_lpips_runs_with_cached_backbone(tmp_path, monkeypatch):
    # A random-init SqueezeNet standing in for the ImageNet weights: small and offline.
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(
        torchvision.models.squeezenet1_1().state_dict(), cache / "squeezenet1_1-b8a52dc0.pth"
    )
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    same = lpips_or_none(a, a, net_type="squeeze")
    diff = lpips_or_none(a, b, net_type="squeeze")
    assert same.shape == diff.shape == (2,)
    torch.testing.assert_close(same, torch.zeros(2))
    assert (diff > 0).all()
    grey = lpips_or_none(a[:, :1], b[:, :1], net_type="squeeze")
    torch.testing.assert_close(
        grey,
        lpips_or_none(a[:, :1].repeat(1, 3, 1, 1), b[:, :1].repeat(1, 3, 1, 1), net_type="squeeze"),
    )


# --- DTW-MJE -------------------------------------------------------------------------------


def _reference_dtw_mje(pred, target, pred_ok, target_ok):
    """Plain O(T1*T2) Python DTW on the module's definition, for cross-checking."""
    t1, t2 = len(pred), len(target)
    cost = np.zeros((t1, t2))
    for i in range(t1):
        for j in range(t2):
            both = pred_ok[i] & target_ok[j]
            d = np.linalg.norm(pred[i] - target[j], axis=-1)
            cost[i, j] = d[both].mean() if both.any() else 0.0
    acc = np.full((t1 + 1, t2 + 1), np.inf)
    steps = np.zeros((t1 + 1, t2 + 1))
    acc[0, 0] = 0
    for i in range(1, t1 + 1):
        for j in range(1, t2 + 1):
            options = [
                (acc[i - 1, j - 1], steps[i - 1, j - 1]),
                (acc[i - 1, j], steps[i - 1, j]),
                (acc[i, j - 1], steps[i, j - 1]),
            ]
            best, best_steps = min(options, key=lambda o: o[0])
            acc[i, j] = cost[i - 1, j - 1] + best
            steps[i, j] = best_steps + 1
    return acc[t1, t2] / steps[t1, t2]


def _planar_walk(frames, joints, seed=0):
    """Random smooth motion in the XY plane (z = 0)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.cumsum(torch.randn(frames, joints, 3, generator=g) * 0.1, dim=0)
    x[..., 2] = 0
    return x


def test_dtw_mje_zero_for_time_warped_copy():
    x = _planar_walk(20, 5)
    warped = x.repeat_interleave(
        torch.randint(1, 4, (20,), generator=torch.Generator().manual_seed(1)), dim=0
    )
    assert dtw_mje(warped, x).item() == 0.0
    assert dtw_mje(x, warped).item() == 0.0


def test_dtw_mje_equals_mje_for_constant_offset():
    x = _planar_walk(15, 4)
    shifted = x + torch.tensor([0.0, 0.0, 0.7])  # orthogonal to the motion: diagonal is optimal
    value = dtw_mje(shifted, x)
    torch.testing.assert_close(value, torch.tensor(0.7))
    torch.testing.assert_close(value, mpjpe(shifted[None], x[None])[0])


def test_dtw_mje_matches_reference_implementation():
    g = torch.Generator().manual_seed(3)
    pred, target = torch.randn(9, 4, 2, generator=g), torch.randn(12, 4, 2, generator=g)
    pred_ok = torch.rand(9, 4, generator=g) > 0.3
    target_ok = torch.rand(12, 4, generator=g) > 0.3
    expected = _reference_dtw_mje(pred.numpy(), target.numpy(), pred_ok.numpy(), target_ok.numpy())
    torch.testing.assert_close(
        dtw_mje(pred, target, pred_ok, target_ok), torch.tensor(expected, dtype=torch.float32)
    )


def test_dtw_mje_ignores_masked_joints():
    x = _planar_walk(12, 5)
    y = x + 0.1
    target_conf = torch.ones(12, 5)
    target_conf[:, 2] = 0.0  # missing in the reference (confidence 0)
    pred_mask = torch.ones(12, 5, dtype=torch.bool)
    pred_mask[3:7, 4] = False
    base = dtw_mje(y, x, pred_mask, target_conf)
    corrupted_pred, corrupted_target = y.clone(), x.clone()
    corrupted_pred[:, 2] = 100.0
    corrupted_pred[3:7, 4] = -50.0
    corrupted_target[:, 2] = 42.0
    torch.testing.assert_close(
        dtw_mje(corrupted_pred, corrupted_target, pred_mask, target_conf), base
    )
    # Without the masks the corruption shows.
    assert dtw_mje(corrupted_pred, corrupted_target) > 10 * base


def test_dtw_mje_batch_equals_loop_of_single():
    g = torch.Generator().manual_seed(4)
    lengths1, lengths2 = [7, 10, 4], [9, 5, 10]
    pred = torch.randn(3, 10, 6, 3, generator=g)
    target = torch.randn(3, 10, 6, 3, generator=g)
    pred_conf = torch.rand(3, 10, 6, generator=g)
    pred_conf[pred_conf < 0.2] = 0
    batched = dtw_mje_batch(pred, target, lengths1, lengths2, pred_conf, None)
    singles = torch.stack(
        [
            dtw_mje(pred[b, :l1], target[b, :l2], pred_conf[b, :l1])
            for b, (l1, l2) in enumerate(zip(lengths1, lengths2))
        ]
    )
    torch.testing.assert_close(batched, singles)
    # Padding content is irrelevant; numpy input is accepted.
    padded = pred.clone()
    padded[0, 7:] = 1e4
    torch.testing.assert_close(
        dtw_mje_batch(padded.numpy(), target.numpy(), lengths1, lengths2, pred_conf.numpy()),
        batched,
    )


def test_ndtw_mje_scale_translation_invariant_and_trims_reference():
    x = _planar_walk(16, 6) + torch.tensor([0.0, 0.0, 1.0])
    x[:, 1] = x[:, 0] + torch.tensor([0.5, 0.0, 0.0])  # keep shoulders apart
    similar = 3.0 * x + torch.tensor([10.0, -4.0, 2.0])
    assert ndtw_mje(similar, x, shoulders=(0, 1)).item() < 1e-5
    noisy = x + 0.05 * torch.randn(16, 6, 3, generator=torch.Generator().manual_seed(5))
    value = ndtw_mje(noisy, x, shoulders=(0, 1))
    assert value > 0
    # Leading/trailing reference frames with no confident keypoint are trimmed away, and
    # low-confidence (<= 0.2) reference keypoints are ignored.
    padded = torch.cat([torch.full((3, 6, 3), 9.0), x, torch.full((2, 6, 3), -9.0)])
    conf = torch.ones(21, 6)
    conf[:3] = 0.1
    conf[-2:] = 0.0
    torch.testing.assert_close(ndtw_mje(noisy, padded, target_mask=conf, shoulders=(0, 1)), value)
    batched = ndtw_mje_batch(
        noisy[None], padded[None], None, None, None, conf[None], shoulders=(0, 1)
    )
    torch.testing.assert_close(batched[0], value)


# --- keyframe / trajectory / mpjpe ---------------------------------------------------------


def test_mpjpe_known_value():
    gt = torch.zeros(2, 3, 4, 3)
    pred = gt.clone()
    pred[..., 0] = 3.0
    pred[..., 1] = 4.0  # every joint off by 5
    pred[1, 2] = 100.0
    mask = torch.tensor([[True, True, True], [True, True, False]])
    torch.testing.assert_close(mpjpe(pred, gt, mask), torch.tensor([5.0, 5.0]))


def test_keyframe_error_ignores_non_keyframes():
    gt = torch.zeros(3, 6, 22, 3)
    pred = gt + 10.0  # large error everywhere ...
    pred[0, 2] = gt[0, 2] + torch.tensor([0.3, 0.0, 0.4])  # ... except at the keyframes
    pred[0, 5] = gt[0, 5] + torch.tensor([0.1, 0.0, 0.0])
    pred[1, 0] = gt[1, 0]
    keyframes = torch.zeros(3, 6, dtype=torch.bool)
    keyframes[0, [2, 5]] = True
    keyframes[1, 0] = True
    value = keyframe_error(pred, gt, keyframes)
    torch.testing.assert_close(value[:2], torch.tensor([0.3, 0.0]))
    assert torch.isnan(value[2])  # no keyframes: undefined, not zero


def test_trajectory_error_thresholds_and_padding():
    gt = torch.zeros(3, 5, 3)
    pred = torch.zeros(3, 5, 3)
    pred[..., 2] = 5.0  # vertical (Z-up) error is not trajectory error
    pred[0, 1, 0] = 0.1
    pred[0, 3, 1] = 0.3
    pred[1, 4, 0] = -0.6
    pred[:, 0, :2] = 9.0  # frame 0 is never a keyframe
    pred[2, :, :2] = 9.0  # sample 2 has no keyframes at all
    keyframes = torch.zeros(3, 5, dtype=torch.bool)
    keyframes[0, [1, 3]] = True
    keyframes[1, [2, 4]] = True
    out = trajectory_error(pred, gt, keyframes, up_axis=2)
    torch.testing.assert_close(out["traj_error_m"], torch.tensor((0.1 + 0.3 + 0.0 + 0.6) / 4))
    assert out["traj_fail_20cm"].item() == 1.0
    assert out["traj_fail_50cm"].item() == 0.5
    assert out["kps_fail_20cm"].item() == 0.5
    assert out["kps_fail_50cm"].item() == 0.25
    # Y-up layout and already-horizontal input give the same result.
    y_up = trajectory_error(pred[..., [0, 2, 1]], gt, keyframes, up_axis=1)
    planar = trajectory_error(pred[..., :2], gt[..., :2], keyframes)
    for key, value in out.items():
        torch.testing.assert_close(y_up[key], value)
        torch.testing.assert_close(planar[key], value)


# --- foot skating and jerk -----------------------------------------------------------------


def _feet_motion(frames, speed_mps, height, fps=20.0, slide_frames=None):
    """[1, T, 22, 3] Z-up joints where feet 10 and 11 slide along x until slide_frames."""
    joints = torch.zeros(1, frames, 22, 3)
    joints[..., 2] = 1.0  # everything else well above the ground
    t = torch.arange(frames, dtype=torch.float32)
    if slide_frames is not None:
        t = t.clamp(max=slide_frames - 1)
    joints[0, :, [10, 11], 0] = (t * speed_mps / fps)[:, None]
    joints[0, :, [10, 11], 2] = height
    return joints


def test_foot_skating_detects_sliding_not_planted():
    planted = _feet_motion(40, 0.0, 0.0)
    sliding = _feet_motion(40, 1.0, 0.0)
    lifted = _feet_motion(40, 1.0, 0.2)  # fast but in the air: not skating
    joints = torch.cat([planted, sliding, lifted])
    ratio = foot_skating_ratio(joints, lengths=[40, 40, 40])
    torch.testing.assert_close(ratio, torch.tensor([0.0, 1.0, 0.0]))


def test_foot_skating_divides_by_valid_pairs():
    # Slides for 20 frames (19 moving pairs) then stops; 39 pairs in all.
    half = _feet_motion(40, 1.0, 0.0, slide_frames=20)
    torch.testing.assert_close(foot_skating_ratio(half, [40]), torch.tensor([19 / 39]))
    # Frames past the length never count: a 20-frame sequence that slides throughout.
    torch.testing.assert_close(foot_skating_ratio(half, [20]), torch.tensor([1.0]))
    y_up = half[..., [0, 2, 1]]
    torch.testing.assert_close(foot_skating_ratio(y_up, [40], up_axis=1), torch.tensor([19 / 39]))


def test_transition_jerk():
    fps = 20.0
    t = torch.arange(40, dtype=torch.float64) / fps
    cubic = (0.5 * t**3)[None, :, None, None].expand(1, 40, 2, 3)
    # A cubic has constant jerk 6 * 0.5 * sqrt(3) per joint (same on the 3 axes).
    expected = torch.tensor([3 * math.sqrt(3)], dtype=torch.float64)
    torch.testing.assert_close(transition_jerk(cubic, [[20]], fps=fps), expected)
    step = torch.zeros(2, 40, 2, 3)
    step[:, 20:] = 1.0  # a jump at frame 20
    value = transition_jerk(step, [[20], [5]], fps=fps)
    assert value[0] > 0 and value[1] == 0
    # Tensor form with -1 padding equals the list form; a boundary past the length is ignored.
    as_tensor = transition_jerk(step, torch.tensor([[20, -1], [5, 30]]), fps=fps, lengths=[40, 25])
    torch.testing.assert_close(as_tensor, value)
    assert torch.isnan(transition_jerk(step, [[], []], fps=fps)).all()
