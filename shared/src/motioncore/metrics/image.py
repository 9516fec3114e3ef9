"""Per-image quality metrics over torchmetrics: PSNR, SSIM and (offline only) LPIPS.

All take ``[B, C, H, W]`` batches and return one value per image, ``[B]``, computed in float32
with autocast off: eval under ``bf16-mixed`` would otherwise run SSIM's Gaussian-window
convolutions in bf16 (a repeated-reference baseline measured SSIM 0.41 there instead of 0.74).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)
from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity
from torchvision.models import AlexNet_Weights, SqueezeNet1_1_Weights, VGG16_Weights

from motioncore.losses.perceptual import cached_torchvision_weights

# The torchvision backbones torchmetrics' LPIPS loads (its linear heads ship with torchmetrics).
_LPIPS_BACKBONES = {
    "alex": AlexNet_Weights.DEFAULT,
    "vgg": VGG16_Weights.DEFAULT,
    "squeeze": SqueezeNet1_1_Weights.DEFAULT,
}


def _check_images(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    if pred.ndim != 4:
        raise ValueError(f"expected [B, C, H, W] images, got {tuple(pred.shape)}")


def _fp32(fn):
    """Run ``fn(pred, target, ...)`` on float32 copies with autocast disabled."""

    @functools.wraps(fn)
    def wrapper(pred: Tensor, target: Tensor, *args, **kwargs) -> Tensor:
        _check_images(pred, target)
        with torch.autocast(pred.device.type, enabled=False):
            return fn(pred.float(), target.float(), *args, **kwargs)

    return wrapper


@_fp32
def psnr(pred: Tensor, target: Tensor, data_range: float) -> Tensor:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` per image, in dB.

    ``data_range`` is max - min of the pixel range (1 for [0, 1], 2 for [-1, 1]). Identical
    images give ``inf``.
    """
    return peak_signal_noise_ratio(
        pred, target, data_range=data_range, reduction="none", dim=(1, 2, 3)
    )


@_fp32
def ssim(pred: Tensor, target: Tensor, data_range: float) -> Tensor:
    """Structural similarity (Wang et al. 2004, eq. 13) per image, mean over channels.

    torchmetrics defaults: Gaussian window 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03, the
    setting STDiff's own evaluation uses.
    """
    return structural_similarity_index_measure(
        pred, target, data_range=data_range, reduction="none"
    )


@functools.cache
def _lpips_metric(net_type: str, weights_file: Path) -> LearnedPerceptualImagePatchSimilarity:
    # weights_file is part of the cache key so that a newly cached backbone is picked up.
    return LearnedPerceptualImagePatchSimilarity(net_type=net_type, reduction="none")


@torch.no_grad()
@_fp32
def lpips_or_none(pred: Tensor, target: Tensor, net_type: str = "alex") -> Tensor | None:
    """LPIPS (Zhang et al. 2018) per image, or ``None`` when the backbone is not cached.

    Only runs when torchvision's ImageNet weights for ``net_type`` ("alex", "vgg",
    "squeeze") are already in the torch hub cache, so it never tries the network. Inputs are
    in [-1, 1] (clamped), with 1 (repeated to RGB) or 3 channels.
    """
    if net_type not in _LPIPS_BACKBONES:
        raise ValueError(f"net_type must be one of {sorted(_LPIPS_BACKBONES)}, got {net_type!r}")
    weights_file = cached_torchvision_weights(_LPIPS_BACKBONES[net_type])
    if weights_file is None:
        return None
    metric = _lpips_metric(net_type, weights_file).to(pred.device)
    images = []
    for x in (pred, target):
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        images.append(x.clamp(-1, 1))
    metric.update(*images)
    scores = metric.compute().reshape(-1)
    metric.reset()
    return scores
