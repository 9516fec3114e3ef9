"""Residual conv blocks of the dense feature encoder and the frame decoder (IMF supp. Fig. 1).

Plain conv/norm/ReLU compositions: torchvision's ResNet blocks do not offer the pre-activation
order, the paired up/down variants or a switchable norm, so they are written here.

Two block styles (``block_style`` of the encoder/decoder):

- ``paper``: supp. Fig. 1 as drawn: pre-activation FeatResBlocks, AvgPool down-sampling.
- ``johndpope``: the layout of the public reimplementation (johndpope/IMF ``resblocks.py``):
  post-activation blocks of bias-free conv + norm, stride-2 convs instead of AvgPool and a
  normalised 1x1 shortcut. It exists so checkpoints trained there can be imported
  (``imf-import``); it is not a bug fix or a recommendation.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("batch", "group", "none")
BLOCK_STYLES = ("paper", "johndpope")


def make_norm(kind: str, channels: int) -> nn.Module:
    """``batch`` (the paper), ``group`` (batch-size independent) or ``none``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class FeatResBlock(nn.Module):
    """Pre-activation residual block ``x + conv(relu(norm(conv(relu(norm(x))))))`` (paper E_F)."""

    def __init__(self, channels: int, norm: str = "batch"):
        super().__init__()
        self.body = nn.Sequential(
            make_norm(norm, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            make_norm(norm, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class DownConvResBlock(nn.Module):
    """Conv-norm-ReLU-AvgPool, conv, plus a pooled 1x1 skip; then ``res_blocks`` FeatResBlocks
    (paper: 2)."""

    def __init__(
        self, in_channels: int, out_channels: int, norm: str = "batch", res_blocks: int = 2
    ):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            make_norm(norm, out_channels),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_channels, out_channels, 1))
        self.refine = nn.Sequential(*(FeatResBlock(out_channels, norm) for _ in range(res_blocks)))

    def forward(self, x: Tensor) -> Tensor:
        return self.refine(self.main(x) + self.skip(x))


class UpConvResBlock(nn.Module):
    """Nearest x2, conv-norm-ReLU, conv-norm, plus an up-sampled 1x1 skip, ReLU, then
    ``res_blocks`` FeatResBlocks (paper D_F: 2)."""

    def __init__(
        self, in_channels: int, out_channels: int, norm: str = "batch", res_blocks: int = 2
    ):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            make_norm(norm, out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            make_norm(norm, out_channels),
        )
        self.skip = nn.Conv2d(in_channels, out_channels, 1)
        self.refine = nn.Sequential(*(FeatResBlock(out_channels, norm) for _ in range(res_blocks)))

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.refine(F.relu(self.main(x) + self.skip(x)))


class ConvNorm(nn.Sequential):
    """Bias-free ``k x k`` conv + norm (+ ReLU), the reimplementation's ``ConvBlock``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        norm: str = "batch",
        relu: bool = True,
    ):
        layers = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
            make_norm(norm, out_channels),
        ]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class PostActFeatResBlock(nn.Module):
    """``relu(x + norm(conv(relu(norm(conv(x))))))`` (``johndpope`` style FeatResBlock)."""

    def __init__(self, channels: int, norm: str = "batch"):
        super().__init__()
        self.conv1 = ConvNorm(channels, channels, norm=norm)
        self.conv2 = ConvNorm(channels, channels, norm=norm, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.conv2(self.conv1(x)))


class StridedDownConvResBlock(nn.Module):
    """``relu(convnorm(convnorm_s2(x)) + convnorm1x1_s2(x))``, then ``res_blocks``
    post-activation FeatResBlocks (``johndpope`` style DownConvResBlock)."""

    def __init__(
        self, in_channels: int, out_channels: int, norm: str = "batch", res_blocks: int = 2
    ):
        super().__init__()
        self.conv1 = ConvNorm(in_channels, out_channels, stride=2, norm=norm)
        self.conv2 = ConvNorm(out_channels, out_channels, norm=norm, relu=False)
        self.skip = ConvNorm(in_channels, out_channels, 1, stride=2, norm=norm, relu=False)
        self.refine = nn.Sequential(
            *(PostActFeatResBlock(out_channels, norm) for _ in range(res_blocks))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.refine(F.relu(self.conv2(self.conv1(x)) + self.skip(x)))


class PostActUpConvResBlock(nn.Module):
    """Nearest x2, then ``relu(convnorm(convnorm(x)) + convnorm1x1(x))`` and ``res_blocks``
    post-activation FeatResBlocks (``johndpope`` style UpConvResBlock)."""

    def __init__(
        self, in_channels: int, out_channels: int, norm: str = "batch", res_blocks: int = 2
    ):
        super().__init__()
        self.conv1 = ConvNorm(in_channels, out_channels, norm=norm)
        self.conv2 = ConvNorm(out_channels, out_channels, norm=norm, relu=False)
        self.skip = ConvNorm(in_channels, out_channels, 1, norm=norm, relu=False)
        self.refine = nn.Sequential(
            *(PostActFeatResBlock(out_channels, norm) for _ in range(res_blocks))
        )

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.refine(F.relu(self.conv2(self.conv1(x)) + self.skip(x)))


_BLOCKS = {
    "paper": (FeatResBlock, DownConvResBlock, UpConvResBlock),
    "johndpope": (PostActFeatResBlock, StridedDownConvResBlock, PostActUpConvResBlock),
}


def block_classes(style: str) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module]]:
    """``(FeatResBlock, DownConvResBlock, UpConvResBlock)`` classes of a block style."""
    if style not in _BLOCKS:
        raise ValueError(f"block style must be one of {BLOCK_STYLES}, got {style!r}")
    return _BLOCKS[style]
