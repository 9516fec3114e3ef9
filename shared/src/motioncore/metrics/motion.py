"""Motion metrics of the keyframe / text-to-motion literature as plain, batched functions.

Keyframe, trajectory and foot-skating metrics follow CondMDI's evaluation (reference
stmc-keyframe.md, B.6) with its "Metric quirks" fixed: padding frames and padded keyframe
slots never enter a numerator or a denominator. Joints are ``[B, T, J, 3]`` in metres.
Inputs may be torch tensors or numpy arrays; results are torch tensors. The DTW metrics live
in :mod:`motioncore.metrics.dtw` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from motioncore.losses.masked import masked_mean
from motioncore.metrics.dtw import dtw_mje, dtw_mje_batch, ndtw_mje, ndtw_mje_batch

__all__ = [
    "dtw_mje",
    "dtw_mje_batch",
    "foot_skating_ratio",
    "keyframe_error",
    "mpjpe",
    "ndtw_mje",
    "ndtw_mje_batch",
    "trajectory_error",
    "transition_jerk",
]

ArrayLike = Tensor | np.ndarray


def _pair(pred: ArrayLike, gt: ArrayLike) -> tuple[Tensor, Tensor]:
    pred = torch.as_tensor(pred)
    gt = torch.as_tensor(gt, device=pred.device)
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != gt shape {tuple(gt.shape)}")
    return pred, gt


def _frame_mask(mask: ArrayLike, shape: torch.Size, device: torch.device) -> Tensor:
    mask = torch.as_tensor(mask, device=device)
    if mask.dtype != torch.bool or mask.shape != shape:
        raise ValueError(
            f"expected a bool mask of shape {tuple(shape)}, got {mask.dtype} {tuple(mask.shape)}"
        )
    return mask


def _valid_frames(lengths: ArrayLike | Sequence[int], batch: int, frames: int, device) -> Tensor:
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=device)
    if lengths.shape != (batch,) or lengths.min() < 0 or lengths.max() > frames:
        raise ValueError(f"lengths must be {batch} values in 0..{frames}, got {lengths.tolist()}")
    return torch.arange(frames, device=device)[None, :] < lengths[:, None]


@torch.no_grad()
def mpjpe(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> Tensor:
    """Mean per-joint position error per sample, ``[B]``.

    Mean over the masked entries of ``||pred - gt||_2`` for ``[B, T, J, D]`` joints. ``mask``
    is a ``[B, T]`` frame mask or a ``[B, T, J]`` joint mask (bool or weights); samples with
    an empty mask give 0.
    """
    pred, gt = _pair(pred, gt)
    error = (pred - gt).norm(dim=-1)
    return masked_mean(error, None if mask is None else torch.as_tensor(mask, device=pred.device))


@torch.no_grad()
def keyframe_error(
    pred_joints: ArrayLike, gt_joints: ArrayLike, keyframe_mask: ArrayLike
) -> Tensor:
    """Keyframe error (CondMDI, reference B.6): mean over a sample's keyframes of the mean
    joint 3D position error, ``[B]``, in metres. Samples without keyframes give NaN (use
    ``nanmean``), since their error is undefined rather than zero."""
    pred, gt = _pair(pred_joints, gt_joints)
    keyframes = _frame_mask(keyframe_mask, pred.shape[:2], pred.device)
    error = mpjpe(pred, gt, keyframes)
    return torch.where(keyframes.any(dim=1), error, torch.nan)


@torch.no_grad()
def trajectory_error(
    pred_root: ArrayLike, gt_root: ArrayLike, keyframe_mask: ArrayLike, up_axis: int = 2
) -> dict[str, Tensor]:
    """Root trajectory errors at keyframes (CondMDI/GMD, reference B.6), batch scalars.

    The error of a keyframe is the horizontal root distance: ``pred_root`` is ``[B, T, 2]``
    (already horizontal) or ``[B, T, 3]``, whose ``up_axis`` is dropped (2 for Z-up SMPL /
    STMC, 1 for Y-up HumanML3D). Upstream counts zero-padded entries when samples have
    different keyframe counts; here only real keyframes count.

    Returns:
        ``traj_error_m``: mean error over all keyframes of the batch;
        ``traj_fail_20cm`` / ``traj_fail_50cm``: fraction of samples (with at least one
        keyframe) whose error exceeds 0.2 / 0.5 m at any keyframe;
        ``kps_fail_20cm`` / ``kps_fail_50cm``: fraction of keyframes over the threshold.
        All are NaN if the batch has no keyframe.
    """
    pred, gt = _pair(pred_root, gt_root)
    if pred.ndim != 3 or pred.shape[-1] not in (2, 3):
        raise ValueError(f"expected [B, T, 2 or 3] root positions, got {tuple(pred.shape)}")
    keyframes = _frame_mask(keyframe_mask, pred.shape[:2], pred.device)
    if pred.shape[-1] == 3:
        horizontal = [axis for axis in range(3) if axis != up_axis % 3]
        pred, gt = pred[..., horizontal], gt[..., horizontal]
    error = (pred - gt).norm(dim=-1)  # [B, T]
    has_keyframe = keyframes.any(dim=1)
    result = {"traj_error_m": error[keyframes].mean()}
    for threshold, name in ((0.2, "20cm"), (0.5, "50cm")):
        over = (error > threshold) & keyframes
        result[f"traj_fail_{name}"] = over.any(dim=1)[has_keyframe].float().mean()
        result[f"kps_fail_{name}"] = over[keyframes].float().mean()
    return result


@torch.no_grad()
def foot_skating_ratio(
    joints: ArrayLike,
    lengths: ArrayLike | Sequence[int],
    foot_joints: Sequence[int] = (10, 11),
    up_axis: int = 2,
    fps: float = 20.0,
    height_thresh: float = 0.05,
    speed_thresh: float = 0.5,
    avg_window: int = 5,
) -> Tensor:
    """Fraction of frame pairs in which a foot skates (CondMDI/GMD, reference B.6), ``[B]``.

    A pair of consecutive frames ``(t, t+1)`` skates if, for foot 10 or 11, the foot is below
    ``height_thresh`` in both frames *and* its horizontal speed exceeds ``speed_thresh`` both
    instantaneously and as a centred ``avg_window``-pair moving average. Fixes of upstream's
    quirks: the ratio divides by the ``length - 1`` valid pairs (not a fixed 195), pairs past
    the length never count, and the moving average covers only valid pairs (upstream
    zero-pads at the ends). Heights are measured from 0 along ``up_axis``.
    """
    joints = torch.as_tensor(joints)
    if joints.ndim != 4 or joints.shape[-1] != 3:
        raise ValueError(f"expected [B, T, J, 3] joints, got {tuple(joints.shape)}")
    if avg_window < 1 or avg_window % 2 == 0:
        raise ValueError(f"avg_window must be odd (a centred window), got {avg_window}")
    batch, frames = joints.shape[:2]
    pair_ok = _valid_frames(lengths, batch, frames, joints.device)[:, 1:]
    if not pair_ok.any(dim=1).all():
        raise ValueError("foot skating needs lengths >= 2")
    feet = joints[:, :, list(foot_joints)].transpose(1, 2)  # [B, F, T, 3]
    horizontal = [axis for axis in range(3) if axis != up_axis % 3]
    speed = feet[..., 1:, horizontal].sub(feet[..., :-1, horizontal]).norm(dim=-1) * fps
    pair_w = pair_ok[:, None].expand_as(speed).to(speed.dtype)  # [B, F, T-1]
    kernel = speed.new_ones(1, 1, avg_window)
    flat = (batch * len(foot_joints), 1, frames - 1)
    window_sum = F.conv1d((speed * pair_w).reshape(flat), kernel, padding=avg_window // 2)
    window_count = F.conv1d(pair_w.reshape(flat), kernel, padding=avg_window // 2)
    speed_avg = (window_sum / window_count.clamp(min=1)).reshape(speed.shape)
    low = feet[..., up_axis % 3] < height_thresh
    contact = low[..., 1:] & low[..., :-1]
    skating = contact & (speed > speed_thresh) & (speed_avg > speed_thresh)
    skating = skating.any(dim=1) & pair_ok
    return skating.sum(dim=1) / pair_ok.sum(dim=1)


def _boundary_table(boundaries: ArrayLike | Sequence[Sequence[int]], batch: int, device) -> Tensor:
    """``[B, K]`` long boundary frames, negative entries = no boundary."""
    if isinstance(boundaries, Tensor | np.ndarray):
        table = torch.as_tensor(boundaries, dtype=torch.long, device=device)
    else:
        width = max((len(b) for b in boundaries), default=0)
        rows = [list(b) + [-1] * (width - len(b)) for b in boundaries]
        table = torch.tensor(rows, dtype=torch.long, device=device).reshape(len(rows), width)
    if table.ndim != 2 or table.shape[0] != batch:
        raise ValueError(f"expected boundaries for {batch} samples, got shape {tuple(table.shape)}")
    return table


@torch.no_grad()
def transition_jerk(
    joints: ArrayLike,
    boundaries: ArrayLike | Sequence[Sequence[int]],
    fps: float = 20.0,
    window: int = 5,
    lengths: ArrayLike | Sequence[int] | None = None,
) -> Tensor:
    """Mean jerk magnitude around transition boundaries, ``[B]``, in units/s^3.

    Jerk is the third forward difference ``x[t+3] - 3x[t+2] + 3x[t+1] - x[t]`` times
    ``fps^3``. A boundary ``b`` is the first frame of a new segment; its window is the
    ``2 * window`` frames ``b - window .. b + window - 1``, and every difference whose four
    frames lie inside that window and inside the valid length contributes its per-joint
    Euclidean norm. The value is the mean over joints and over all (boundary, difference)
    pairs of the sample, so windows of nearby boundaries both count. Samples without any
    such difference give NaN.

    Args:
        boundaries: per sample a list of boundary frames, or a ``[B, K]`` tensor in which
            negative entries are padding.
        window: frames on each side of a boundary (>= 2).
        lengths: valid frames per sample (default: all ``T``).
    """
    joints = torch.as_tensor(joints)
    if joints.ndim != 4:
        raise ValueError(f"expected [B, T, J, D] joints, got {tuple(joints.shape)}")
    if window < 2:
        raise ValueError(f"window must be >= 2 to fit a third difference, got {window}")
    batch, frames = joints.shape[:2]
    table = _boundary_table(boundaries, batch, joints.device)
    if lengths is None:
        lengths = torch.full((batch,), frames, dtype=torch.long, device=joints.device)
    n_valid = _valid_frames(lengths, batch, frames, joints.device).sum(dim=1)
    third = joints[:, 3:] - 3 * joints[:, 2:-1] + 3 * joints[:, 1:-2] - joints[:, :-3]
    jerk = third.norm(dim=-1).mean(dim=-1) * fps**3  # [B, T-3]
    start = torch.arange(max(frames - 3, 0), device=joints.device)[None, None, :]
    lo, hi = table[..., None] - window, table[..., None] + window - 1
    in_window = (start >= lo) & (start + 3 <= hi) & (table[..., None] >= 0)
    in_window &= start + 3 < n_valid[:, None, None]
    counted = in_window.to(jerk.dtype).sum(dim=1)  # [B, T-3]: windows covering each difference
    total = counted.sum(dim=1)
    return torch.where(total > 0, (counted * jerk).sum(dim=1) / total.clamp(min=1), torch.nan)
