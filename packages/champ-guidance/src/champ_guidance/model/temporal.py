"""Temporal (motion) modules for stage 2, AnimateDiff-style (Guo et al. 2024, Sec. 4.2).

One diffusers ``TransformerTemporalModel`` (attention over frames at every spatial location,
sinusoidal frame positions, zero-initialised ``proj_out`` so it starts as the identity) follows
each down, mid and up block of the denoising UNet, attached with forward hooks instead of a
fork of the UNet.
"""

from __future__ import annotations

import math

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from torch import nn

from champ_guidance.model.guidance import zero_module
from champ_guidance.model.reference_attention import ReferenceContext


class TemporalModules(nn.Module):
    def __init__(
        self,
        unet: UNet2DConditionModel,
        context: ReferenceContext,
        heads: int = 8,
        max_frames: int = 32,
    ):
        super().__init__()
        self.context = context
        widths = list(unet.config.block_out_channels)
        blocks = [(f"down_{i}", b, widths[i]) for i, b in enumerate(unet.down_blocks)]
        blocks.append(("mid", unet.mid_block, widths[-1]))
        blocks += [
            (f"up_{i}", b, w)
            for i, (b, w) in enumerate(zip(unet.up_blocks, widths[::-1], strict=True))
        ]
        self.modules_by_block = nn.ModuleDict()
        for name, block, width in blocks:
            module = TransformerTemporalModel(
                num_attention_heads=heads,
                attention_head_dim=width // heads,
                in_channels=width,
                norm_num_groups=math.gcd(32, width),
                positional_embeddings="sinusoidal",
                num_positional_embeddings=max_frames,
            )
            zero_module(module.proj_out)
            self.modules_by_block[name] = module
            block.register_forward_hook(self._hook(name))

    def _hook(self, name: str):
        def apply(block: nn.Module, inputs, output):
            module = self.modules_by_block[name]
            if isinstance(output, tuple):  # down blocks: (hidden, skip states)
                return (self._run(module, output[0]), *output[1:])
            return self._run(module, output)

        return apply

    def _run(self, module: TransformerTemporalModel, hidden: torch.Tensor) -> torch.Tensor:
        return module(hidden, num_frames=self.context.frames).sample
