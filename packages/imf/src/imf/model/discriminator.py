"""Multi-scale spectral-norm patch discriminator (IMF supp. Fig. 1g; pix2pixHD-style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """``4x4 s2 SN-conv ndf + LReLU``, then ``n_layers - 1`` x (``4x4 s2 SN-conv`` doubling the
    width up to ``8 ndf`` + InstanceNorm + LReLU), then a ``1x1`` SN-conv to one logit map."""

    def __init__(self, ndf: int = 64, n_layers: int = 4):
        super().__init__()
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(3, ndf, 4, 2, 1)), nn.LeakyReLU(0.2)]
        width = ndf
        for i in range(1, n_layers):
            out = ndf * min(2**i, 8)
            layers += [
                spectral_norm(nn.Conv2d(width, out, 4, 2, 1)),
                nn.InstanceNorm2d(out),
                nn.LeakyReLU(0.2),
            ]
            width = out
        layers.append(spectral_norm(nn.Conv2d(width, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MultiScalePatchDiscriminator(nn.Module):
    """``num_scales`` patch discriminators; scale s sees the input bilinearly resized by 2^-s.

    Returns a list of logit maps, one per scale (what motioncore's hinge losses take).
    """

    def __init__(self, num_scales: int = 2, ndf: int = 64, n_layers: int = 4):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(ndf, n_layers) for _ in range(num_scales))

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"discriminator expects [B, 3, H, W] images, got {tuple(x.shape)}")
        logits = []
        for index, disc in enumerate(self.scales):
            scaled = x
            if index:
                # fp32 and outside autocast: CPU antialiased resize has no bf16 kernel.
                with torch.autocast(x.device.type, enabled=False):
                    scaled = F.interpolate(
                        x.float(),
                        scale_factor=0.5**index,
                        mode="bilinear",
                        align_corners=False,
                        antialias=True,
                    )
            logits.append(disc(scaled))
        return logits
