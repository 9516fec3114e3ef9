"""Temporal (motion) modules for stage 2: AnimateDiff v2's layout (Guo et al. 2024, Sec. 4.2),
the one CHAMP's ``motion_module.pth`` and AnimateDiff's ``mm_sd_v15_v2.ckpt`` are saved in.

Data flow of one motion module on UNet activations ``[(B F), C, h, w]`` (frames of a clip
consecutive, ``F`` = ``ReferenceContext.frames``)::

    x -> GroupNorm -> per-pixel tokens [(B F), h*w, C] -> proj_in (Linear)
      -> blocks: 2 x (LayerNorm -> self-attention over the F frames of each pixel, with
                      sinusoidal frame positions added to its input) + residual,
                 then LayerNorm -> GEGLU feed-forward + residual
      -> proj_out (Linear, zero-initialised, so a new module is the identity) -> + x

One module follows every (resnet, spatial attention) pair of the down and up blocks (after the
resnet where a block has no attention) and the attention of the mid block, as in AnimateDiff's
``UNet3DConditionModel`` with ``motion_module_mid_block=True``. They are attached to diffusers'
2-D UNet with forward hooks, so the state-dict keys below ``temporal.`` are exactly upstream's
``down_blocks.{i}.motion_modules.{j}.temporal_transformer...`` without a fork of the UNet.
"""

from __future__ import annotations

import math

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

from champ_guidance.model.guidance import zero_module
from champ_guidance.model.reference_attention import ReferenceContext


class FramePositions(nn.Module):
    """Sinusoidal positions of the frames (Vaswani et al. 2017), added to the tokens."""

    def __init__(self, dim: int, max_frames: int):
        super().__init__()
        position = torch.arange(max_frames, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_frames, dim)
        pe[0, :, 0::2] = torch.sin(position * freq)
        pe[0, :, 1::2] = torch.cos(position * freq)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(
                f"{x.shape[1]} frames exceed the motion modules' {self.pe.shape[1]} frame "
                "positions (model.net.temporal.max_frames): use shorter clips or context windows "
                "(context_window <= max_frames)"
            )
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class TemporalSelfAttention(Attention):
    """Self-attention across frames at every spatial position: ``[(B F), hw, C]`` in and out."""

    def __init__(self, dim: int, heads: int, max_frames: int):
        super().__init__(query_dim=dim, heads=heads, dim_head=dim // heads)
        self.pos_encoder = FramePositions(dim, max_frames)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        n, hw, c = x.shape
        clips = n // frames
        seq = x.view(clips, frames, hw, c).transpose(1, 2).reshape(clips * hw, frames, c)
        out = super().forward(self.pos_encoder(seq))
        return out.view(clips, hw, frames, c).transpose(1, 2).reshape(n, hw, c)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, max_frames: int, attentions: int = 2):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            TemporalSelfAttention(dim, heads, max_frames) for _ in range(attentions)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(attentions))
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms, strict=True):
            x = attention(norm(x), frames) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, max_frames: int, layers: int = 1):
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(32, channels), channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            TemporalTransformerBlock(channels, heads, max_frames) for _ in range(layers)
        )
        self.proj_out = zero_module(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(n, h * w, c))
        for block in self.transformer_blocks:
            tokens = block(tokens, frames)
        out = self.proj_out(tokens).reshape(n, h, w, c).permute(0, 3, 1, 2)
        return out + x


class MotionModule(nn.Module):
    def __init__(self, channels: int, heads: int, max_frames: int, layers: int = 1):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, heads, max_frames, layers)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        return self.temporal_transformer(x, frames)


class _BlockModules(nn.Module):
    """Holds one UNet block's motion modules (state-dict path ``...motion_modules.{j}``)."""

    def __init__(self, modules: list[MotionModule]):
        super().__init__()
        self.motion_modules = nn.ModuleList(modules)


class TemporalModules(nn.Module):
    def __init__(
        self,
        unet: UNet2DConditionModel,
        context: ReferenceContext,
        heads: int = 8,
        max_frames: int = 32,
        layers: int = 1,
    ):
        super().__init__()
        self.context = context
        widths = list(unet.config.block_out_channels)
        if any(w % heads for w in widths):
            raise ValueError(
                f"model.net.temporal.heads={heads} must divide every UNet width {widths}"
            )

        def attach(block: nn.Module, width: int) -> _BlockModules:
            # after each spatial attention where the block has them, else after each resnet
            hosts = list(getattr(block, "attentions", None) or block.resnets)
            if block is unet.mid_block:
                hosts = list(block.attentions)
            holder = _BlockModules([MotionModule(width, heads, max_frames, layers) for _ in hosts])
            for host, module in zip(hosts, holder.motion_modules, strict=True):
                host.register_forward_hook(self._hook(module))
            return holder

        self.down_blocks = nn.ModuleList(
            attach(b, widths[i]) for i, b in enumerate(unet.down_blocks)
        )
        self.mid_block = attach(unet.mid_block, widths[-1])
        self.up_blocks = nn.ModuleList(
            attach(b, w) for b, w in zip(unet.up_blocks, widths[::-1], strict=True)
        )

    def _hook(self, module: MotionModule):
        def apply(host: nn.Module, inputs, output):
            frames = self.context.frames
            if isinstance(output, tuple):  # Transformer2DModel(return_dict=False)
                return (module(output[0], frames), *output[1:])
            if hasattr(output, "sample"):
                output.sample = module(output.sample, frames)
                return output
            return module(output, frames)

        return apply
