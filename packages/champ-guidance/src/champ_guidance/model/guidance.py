"""Guidance encoders: one per guidance type, looked up in a registry.

A custom guidance type is a class registered under its name (``@register_guidance_encoder``);
its input channels come from ``guidance_input_channels`` in the config, its data from
``<root>/<type>/<name>/frame_XXX.npy``. Every encoder maps per-frame guidance to either a
spatial map ``[N, out, h, w]`` on the denoiser's input grid (``target="spatial"``, added after
``conv_in``) or a vector ``[N, out]`` (``target="embedding"``, added to the time embedding),
and must start as a zero map (zero-initialised output) so the UNet starts unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers import Transformer2DModel
from torch import nn

TARGETS = ("spatial", "embedding")
_REGISTRY: dict[str, type[nn.Module]] = {}


def register_guidance_encoder(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make ``name`` a guidance type served by this encoder class.

    The class is built as ``cls(in_channels=, out_channels=, target=, downsample=,
    guidance_size=, **encoder_kwargs)``.
    """

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        _REGISTRY[name] = cls
        return cls

    return add


def registered_guidance_types() -> list[str]:
    return sorted(_REGISTRY)


def build_guidance_encoder(name: str, encoder_kwargs: dict | None = None, **kwargs) -> nn.Module:
    """Build the encoder of ``name``; ``encoder_kwargs`` (``model.net.guidance_encoder``) go to
    the built-in :class:`GuidanceEncoder` only, custom classes get the standard arguments."""
    if name not in _REGISTRY:
        raise KeyError(
            f"guidance type {name!r} has no encoder; registered types: {registered_guidance_types()}. "
            "Register one with @champ_guidance.model.guidance.register_guidance_encoder("
            f"{name!r}) in a module listed in model.guidance_plugins"
        )
    cls = _REGISTRY[name]
    if issubclass(cls, GuidanceEncoder):
        kwargs.update(encoder_kwargs or {})
    return cls(**kwargs)


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


# CHAMP's four rendered 3-channel maps in [0, 1] (SMPL depth, normal, semantic map; DWPose
# skeleton), plus this package's music features and pose heatmaps.
@register_guidance_encoder("depth")
@register_guidance_encoder("normal")
@register_guidance_encoder("semantic_map")
@register_guidance_encoder("dwpose")
@register_guidance_encoder("pose")
@register_guidance_encoder("music")
class GuidanceEncoder(nn.Module):
    """CHAMP's guidance encoder (Zhu et al. 2024, Sec. 3.2): a conv stack down to the latent
    grid, one self-attention at the lowest resolution, and a zero-initialised output layer.

    Layer names follow upstream's ``GuidanceEncoder`` so its weights load by name: ``conv_in``
    (3x3, SiLU), ``blocks`` (per width change a 3x3 conv and a 3x3 conv to the next width, each
    followed by SiLU; stride 2 on the first ``log2(downsample)`` changes), ``attention`` (a
    ``Transformer2DModel`` per frame: GroupNorm, 1x1 proj_in, self-attention + GEGLU
    feed-forward, 1x1 proj_out, residual; upstream's ``attentions[-1]``) and ``conv_out``.
    Upstream also builds five more attentions and a ``guidance_attention`` that its forward
    never runs; they are not built here, so every parameter gets a gradient (no
    ``find_unused_parameters`` under DDP), and the importer drops their weights.

    Per-frame vectors ``[N, C]`` (music features) are broadcast over the guidance grid first.
    ``downsample`` is a power of two (the VAE factor, 8 for SD; 1 in pixel space).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        target: str,
        downsample: int,
        guidance_size: int,
        block_out_channels: tuple[int, ...] = (16, 32, 96, 256),
        attention_heads: int = 8,
        pooled_size: int = 4,
    ):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"target={target!r} must be one of {TARGETS}")
        n_down = int(math.log2(downsample))
        if 2**n_down != downsample or n_down > len(block_out_channels) - 1:
            raise ValueError(
                f"downsample={downsample} must be a power of two <= 2^{len(block_out_channels) - 1} "
                f"for block_out_channels={tuple(block_out_channels)}"
            )
        self.target, self.guidance_size = target, guidance_size
        widths = list(block_out_channels)
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for i in range(len(widths) - 1):
            stride = 2 if i < n_down else 1
            blocks.append(nn.Conv2d(widths[i], widths[i], 3, padding=1))
            blocks.append(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1, stride=stride))
        self.blocks = nn.ModuleList(blocks)
        width = widths[-1]
        self.attention = None
        if attention_heads:
            if width % attention_heads:
                raise ValueError(
                    f"attention_heads={attention_heads} must divide the last width {width}"
                )
            self.attention = Transformer2DModel(
                num_attention_heads=attention_heads,
                attention_head_dim=width // attention_heads,
                in_channels=width,
                norm_num_groups=math.gcd(32, width),
            )
        if target == "spatial":
            self.conv_out = zero_module(nn.Conv2d(width, out_channels, 3, padding=1))
        else:
            self.conv_out = nn.Sequential(
                nn.AdaptiveAvgPool2d(pooled_size),
                nn.Flatten(),
                zero_module(nn.Linear(width * pooled_size**2, out_channels)),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:  # per-frame vector -> constant map on the guidance grid
            x = x[:, :, None, None].expand(-1, -1, self.guidance_size, self.guidance_size)
        h = F.silu(self.conv_in(x))
        for block in self.blocks:
            h = F.silu(block(h))
        if self.attention is not None:
            h = self.attention(h, return_dict=False)[0]
        return self.conv_out(h)
