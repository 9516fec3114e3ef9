"""Reference attention (Hu et al. 2024, Animate Anyone, Sec. 3.2; MagicAnimate's
``ReferenceAttentionControl``) as diffusers attention processors.

The reference UNet's self-attention processors *write* their input tokens (``norm1(x)``) into a
shared bank; the denoising UNet's self-attention processors *read* them: keys and values become
``cat([x, bank repeated over frames])`` so every frame attends to the reference. Attention is
diffusers' ``AttnProcessor2_0`` (torch SDPA). Samples whose reference is dropped (CFG's
unconditional branch, training dropout) get an additive ``-inf``-like mask over the bank tokens,
which makes them exactly plain self-attention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0


@dataclass
class ReferenceContext:
    """State shared by the processors of one forward: the bank, frames per clip, keep mask."""

    bank: dict[str, torch.Tensor] = field(default_factory=dict)
    frames: int = 1
    keep: torch.Tensor | None = None  # [B] float/bool: 1 = attend to the reference

    def clear(self) -> None:
        self.bank, self.keep, self.frames = {}, None, 1


def self_attention_names(unet: UNet2DConditionModel) -> list[str]:
    return [name for name in unet.attn_processors if name.endswith("attn1.processor")]


class WriteProcessor:
    def __init__(self, context: ReferenceContext, name: str):
        self.context, self.name, self.base = context, name, AttnProcessor2_0()

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw
    ):
        self.context.bank[self.name] = hidden_states
        return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class ReadProcessor:
    def __init__(self, context: ReferenceContext, name: str):
        self.context, self.name, self.base = context, name, AttnProcessor2_0()

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw
    ):
        ref = self.context.bank.get(self.name)
        keep = self.context.keep
        if (
            ref is None
            or encoder_hidden_states is not None
            or (keep is not None and not keep.any())
        ):
            return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        frames = self.context.frames
        ref = ref.to(hidden_states.dtype).repeat_interleave(frames, dim=0)
        if ref.shape[0] != hidden_states.shape[0]:
            raise RuntimeError(
                f"reference bank {self.name} holds {ref.shape[0] // frames} clips x {frames} frames "
                f"but the denoiser got {hidden_states.shape[0]} frames"
            )
        tokens = torch.cat([hidden_states, ref], dim=1)
        mask = None
        if keep is not None and not bool(keep.all()):
            dropped = (keep <= 0).repeat_interleave(frames)
            mask = torch.zeros(
                tokens.shape[0],
                1,
                tokens.shape[1],
                dtype=hidden_states.dtype,
                device=hidden_states.device,
            )
            mask[dropped, :, hidden_states.shape[1] :] = torch.finfo(hidden_states.dtype).min
        return self.base(attn, hidden_states, tokens, mask, temb)


def install_reference_attention(
    reference_unet: UNet2DConditionModel,
    denoising_unet: UNet2DConditionModel,
    context: ReferenceContext,
) -> None:
    """Writers on every self-attention of the reference UNet, readers on the matching (same
    module name) self-attention of the denoising UNet; other processors become SDPA."""
    writers, readers = self_attention_names(reference_unet), self_attention_names(denoising_unet)
    if writers != readers:
        raise ValueError(
            "the reference and denoising UNets must have the same self-attention layout to share "
            f"attention banks; got {len(writers)} vs {len(readers)} layers"
        )
    for unet, cls in ((reference_unet, WriteProcessor), (denoising_unet, ReadProcessor)):
        unet.set_attn_processor(
            {
                name: cls(context, name) if name.endswith("attn1.processor") else AttnProcessor2_0()
                for name in unet.attn_processors
            }
        )
