"""Diffusion on diffusers schedulers: schedules, the one training loss and one sampling loop."""

from motioncore.diffusion.loss import LOSS_KINDS, DiffusionLoss, diffusion_loss
from motioncore.diffusion.sampling import (
    Guidance,
    Keyframes,
    NonFiniteSample,
    concat_cond,
    guided_output,
    keyframe_loss,
    require_finite,
    sample,
)
from motioncore.diffusion.schedule import (
    BETA_SCHEDULES,
    PREDICTION_TYPES,
    SAMPLERS,
    NoiseSchedule,
)

__all__ = [
    "BETA_SCHEDULES",
    "LOSS_KINDS",
    "DiffusionLoss",
    "Guidance",
    "Keyframes",
    "PREDICTION_TYPES",
    "SAMPLERS",
    "NoiseSchedule",
    "NonFiniteSample",
    "concat_cond",
    "diffusion_loss",
    "guided_output",
    "keyframe_loss",
    "require_finite",
    "sample",
]
