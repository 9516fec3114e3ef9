"""StyleGAN2 building blocks used by the latent token encoder and decoder (LIA-style).

Written by hand because no maintained library ships StyleGAN2's equalised-learning-rate layers
or the modulated convolution as reusable modules (diffusers/timm have neither).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

UPSAMPLE_MODES = ("bilinear", "transposed")


def blur(x: Tensor, pad: tuple[int, int], gain: float = 1.0) -> Tensor:
    """Depthwise FIR low-pass with StyleGAN2's separable ``[1, 3, 3, 1]`` kernel (normalised to
    sum ``gain``) after zero-padding ``pad = (before, after)`` on both spatial axes; the same
    filtering as StyleGAN2's ``upfirdn2d`` with ``up = down = 1`` (the kernel is symmetric)."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], device=x.device, dtype=x.dtype)
    kernel = torch.outer(taps, taps) * (gain / 64.0)
    channels = x.shape[1]
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(x, kernel.expand(channels, 1, 4, 4), groups=channels)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (Karras et al. 2018, PGGAN sec. 4.1).

    The weight is stored as N(0, 1) and scaled at run time by ``lr_mul / sqrt(in_features)``.
    ``activation=True`` applies the scaled leaky ReLU of StyleGAN2 (``sqrt(2) * lrelu_0.2``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: bool = False,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(out, 0.2) * math.sqrt(2) if self.activation else out


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate (weight scaled by ``1/sqrt(fan_in)`` at run time)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.stride, self.padding = stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class ScaledLeakyReLU(nn.Module):
    """StyleGAN2's FusedLeakyReLU: add a bias, then ``sqrt(2) * leaky_relu(x, 0.2)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution (Karras et al. 2020, "Analyzing and Improving the Image
    Quality of StyleGAN", sec. 2.2, eqs. 1-3).

    Modulation (eq. 1): ``w'_ijk = s_i * w_ijk`` with the per-example style ``s = A(style)``
    (an :class:`EqualLinear` initialised to bias 1, so ``s`` starts near 1).
    Demodulation (eq. 3): ``w''_ijk = w'_ijk / sqrt(sum_{i,k} w'_ijk^2 + eps)``, which restores
    unit output variance for unit-variance inputs.
    The per-example kernels are applied as one grouped convolution. ``upsample=True`` doubles
    the resolution: ``upsample_mode="bilinear"`` interpolates first and convolves at the new
    size; ``"transposed"`` is StyleGAN2's own path (a stride-2 transposed conv with the
    modulated kernel, then the [1, 3, 3, 1] blur with gain 4), used by LIA and by the public
    IMF reimplementation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        eps: float = 1e-8,
        upsample_mode: str = "bilinear",
    ):
        super().__init__()
        if upsample_mode not in UPSAMPLE_MODES:
            raise ValueError(
                f"upsample_mode must be one of {UPSAMPLE_MODES}, got {upsample_mode!r}"
            )
        self.upsample_mode = upsample_mode
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
        )
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.demodulate, self.upsample, self.eps = demodulate, upsample, eps
        self.padding = kernel_size // 2
        self.in_channels, self.out_channels = in_channels, out_channels

    def modulated_weight(self, style: Tensor) -> Tensor:
        """Per-example kernels ``[B, out, in, k, k]`` (eqs. 1 and 3)."""
        s = self.modulation(style).view(style.shape[0], 1, self.in_channels, 1, 1)
        weight = self.scale * self.weight * s
        if self.demodulate:
            weight = weight * torch.rsqrt(
                weight.square().sum(dim=(2, 3, 4), keepdim=True) + self.eps
            )
        return weight

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]}")
        if self.upsample and self.upsample_mode == "transposed":
            return self._transposed_up(x, style)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        batch, _, height, width = x.shape
        weight = self.modulated_weight(style)
        weight = weight.reshape(batch * self.out_channels, self.in_channels, *weight.shape[-2:])
        out = F.conv2d(
            x.reshape(1, batch * self.in_channels, height, width),
            weight,
            padding=self.padding,
            groups=batch,
        )
        return out.view(batch, self.out_channels, *out.shape[-2:])

    def _transposed_up(self, x: Tensor, style: Tensor) -> Tensor:
        batch, _, height, width = x.shape
        kernel = self.weight.shape[-1]
        weight = self.modulated_weight(style).transpose(1, 2)  # [B, in, out, k, k]
        weight = weight.reshape(batch * self.in_channels, self.out_channels, kernel, kernel)
        out = F.conv_transpose2d(
            x.reshape(1, batch * self.in_channels, height, width), weight, stride=2, groups=batch
        )
        out = out.view(batch, self.out_channels, *out.shape[-2:])
        excess = 2 - (kernel - 1)  # blur taps minus the up factor, minus the conv's own growth
        return blur(out, ((excess + 1) // 2 + 1, excess // 2 + 1), gain=4.0)


class StyledConv(nn.Module):
    """Modulated conv + bias + scaled leaky ReLU (StyleGAN2 ``StyledConv`` without noise: the
    IMF decoder receives no noise, reference imf.md)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_dim: int,
        upsample: bool = False,
        upsample_mode: str = "bilinear",
    ):
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channels, out_channels, 3, style_dim, upsample=upsample, upsample_mode=upsample_mode
        )
        self.activation = ScaledLeakyReLU(out_channels)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        return self.activation(self.conv(x, style))


class ResBlockDown(nn.Module):
    """LIA/StyleGAN2 discriminator-style residual block that halves the resolution.

    ``(conv3x3 -> lrelu -> conv3x3 -> downsample -> lrelu  +  downsample -> conv1x1) / sqrt(2)``.
    Down-sampling is 2x2 average pooling by default; ``blur_down=True`` is StyleGAN2/LIA's own
    down-sampling (the [1, 3, 3, 1] blur, then the conv with stride 2), which the public IMF
    reimplementation uses.
    """

    def __init__(self, in_channels: int, out_channels: int, blur_down: bool = False):
        super().__init__()
        self.blur_down = blur_down
        self.conv1 = EqualConv2d(in_channels, in_channels, 3, padding=1, bias=False)
        self.act1 = ScaledLeakyReLU(in_channels)
        self.conv2 = EqualConv2d(
            in_channels,
            out_channels,
            3,
            stride=2 if blur_down else 1,
            padding=0 if blur_down else 1,
            bias=False,
        )
        self.act2 = ScaledLeakyReLU(out_channels)
        self.skip = EqualConv2d(
            in_channels, out_channels, 1, stride=2 if blur_down else 1, bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.conv1(x))
        if self.blur_down:
            # Pads: kernel taps - stride + conv size - 1, split evenly (LIA's ConvLayer).
            out = self.act2(self.conv2(blur(out, (2, 2))))
            return (out + self.skip(blur(x, (1, 1)))) / math.sqrt(2)
        out = self.act2(F.avg_pool2d(self.conv2(out), 2))
        skip = self.skip(F.avg_pool2d(x, 2))
        return (out + skip) / math.sqrt(2)
