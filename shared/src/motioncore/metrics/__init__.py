"""Image metrics over torchmetrics and the motion metrics of the field, as plain functions."""

from motioncore.metrics.dtw import (
    dtw_mje,
    dtw_mje_batch,
    ndtw_mje,
    ndtw_mje_batch,
    normalize_poses,
)
from motioncore.metrics.image import lpips_or_none, psnr, ssim
from motioncore.metrics.motion import (
    foot_skating_ratio,
    keyframe_error,
    mpjpe,
    trajectory_error,
    transition_jerk,
)

__all__ = [
    "dtw_mje",
    "dtw_mje_batch",
    "foot_skating_ratio",
    "keyframe_error",
    "lpips_or_none",
    "mpjpe",
    "ndtw_mje",
    "ndtw_mje_batch",
    "normalize_poses",
    "psnr",
    "ssim",
    "trajectory_error",
    "transition_jerk",
]
