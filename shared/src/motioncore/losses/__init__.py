"""Losses returning per-example values (masked regression) or scalars (GAN), torch only."""

from motioncore.losses.gan import (
    hinge_d_loss,
    hinge_g_loss,
    nonsaturating_d_loss,
    nonsaturating_g_loss,
    r1_penalty,
)
from motioncore.losses.masked import align_mask, masked_l1, masked_mean, masked_mse
from motioncore.losses.perceptual import (
    VGG19_RELU_X_1,
    PerceptualLoss,
    VGG19Features,
    VGGPerceptualLoss,
    cached_torchvision_weights,
)

__all__ = [
    "VGG19_RELU_X_1",
    "PerceptualLoss",
    "VGG19Features",
    "VGGPerceptualLoss",
    "align_mask",
    "cached_torchvision_weights",
    "hinge_d_loss",
    "hinge_g_loss",
    "masked_l1",
    "masked_mean",
    "masked_mse",
    "nonsaturating_d_loss",
    "nonsaturating_g_loss",
    "r1_penalty",
]
