"""Diffusion on diffusers schedulers: schedules, training targets and one sampling loop."""

from motioncore.diffusion.sampling import (
    Guidance,
    Keyframes,
    concat_cond,
    guided_output,
    keyframe_loss,
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
    "Guidance",
    "Keyframes",
    "PREDICTION_TYPES",
    "SAMPLERS",
    "NoiseSchedule",
    "concat_cond",
    "guided_output",
    "keyframe_loss",
    "sample",
]
