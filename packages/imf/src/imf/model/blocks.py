"""Residual conv blocks of the dense feature encoder and the frame decoder (IMF supp. Fig. 1).

Plain conv/norm/ReLU compositions: torchvision's ResNet blocks do not offer the pre-activation
order, the paired up/down variants or a switchable norm, so they are written here.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("batch", "group", "none")


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
