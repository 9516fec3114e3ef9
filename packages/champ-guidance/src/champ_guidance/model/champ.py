"""ChampModel: guidance encoders + reference UNet + denoising UNet (+ stage-2 temporal modules).

Conditioning is computed once per clip (:meth:`ChampModel.encode_conditions`: CLIP embedding,
reference attention bank from one reference-UNet pass at t = 0, fused guidance features) and
then reused by every denoiser call (:meth:`ChampModel.denoise`, the ``model(x_t, t, cond)``
contract of :func:`motioncore.diffusion.sample`).
"""

from __future__ import annotations

import importlib

import torch
from torch import nn

from champ_guidance.model.backbone import GuidanceInjector, load_backbone, widen_conv_in
from champ_guidance.model.guidance import build_guidance_encoder
from champ_guidance.model.image_encoder import ReferenceImageEncoder
from champ_guidance.model.reference_attention import ReferenceContext, install_reference_attention
from champ_guidance.model.temporal import TemporalModules


def freeze_bankless_parameters(reference_unet: nn.Module, context: ReferenceContext) -> list[str]:
    """Freeze the reference-UNet parameters whose output never reaches an attention bank.

    Upstream freezes ``up_blocks.3`` for this reason (its tail, ``conv_out`` and the UNet output
    get no gradient and break DDP without ``find_unused_parameters``). Which parameters those
    are depends on the block layout, so they are found with one probe pass on a tiny input:
    everything the bank does not depend on gets no ``.grad``.
    """
    cfg = reference_unet.config
    size = 2 ** len(cfg.block_out_channels)  # >= 2 pixels per group at the lowest level
    x = torch.zeros(1, cfg.in_channels, size, size)
    context_tokens = torch.zeros(1, 1, cfg.cross_attention_dim)
    reference_unet.zero_grad(set_to_none=True)
    context.bank = {}
    with torch.enable_grad():
        reference_unet(x, torch.zeros(1, dtype=torch.long), encoder_hidden_states=context_tokens)
        torch.stack([v.sum() for v in context.bank.values()]).sum().backward()
    context.clear()
    frozen = []
    for name, p in reference_unet.named_parameters():
        if p.grad is None:
            p.requires_grad_(False)
            frozen.append(name)
        p.grad = None
    return frozen


class ChampModel(nn.Module):
    def __init__(
        self,
        pretrained_model_name_or_path: str,
        tiny_unet: dict,
        resolution: int,
        guidance_resolution: int,
        guidance_types: list[str],
        guidance_input_channels: list[int],
        guidance_embedding_channels: int,
        guidance_encoder: dict,
        image_encoder: dict,
        temporal: dict,
        guidance_plugins: list[str] = (),
        gradient_checkpointing: bool = False,
        reference_concat: bool = False,
    ):
        super().__init__()
        for module in guidance_plugins:  # modules that register custom guidance encoders
            importlib.import_module(module)
        if len(guidance_types) != len(guidance_input_channels):
            raise ValueError(
                f"guidance_types {list(guidance_types)} and guidance_input_channels "
                f"{list(guidance_input_channels)} need one channel count per type"
            )
        self.reference_unet, self.denoising_unet, self.codec = load_backbone(
            pretrained_model_name_or_path, tiny_unet, resolution
        )
        self.reference_concat = reference_concat
        if reference_concat:
            widen_conv_in(self.denoising_unet, self.codec.channels)
        self.context = ReferenceContext()
        install_reference_attention(self.reference_unet, self.denoising_unet, self.context)
        self.injector = GuidanceInjector(self.denoising_unet, guidance_embedding_channels)
        latent_size = resolution // self.codec.downsample
        if guidance_resolution % latent_size:
            raise ValueError(
                f"guidance_resolution={guidance_resolution} must be a multiple of the latent grid "
                f"{latent_size} (resolution {resolution} / codec downsample {self.codec.downsample})"
            )
        self.guidance_encoders = nn.ModuleDict(
            {
                gtype: build_guidance_encoder(
                    gtype,
                    in_channels=channels,
                    out_channels=guidance_embedding_channels,
                    target=self.injector.target,
                    downsample=guidance_resolution // latent_size,
                    guidance_size=guidance_resolution,
                    encoder_kwargs=guidance_encoder,
                )
                for gtype, channels in zip(guidance_types, guidance_input_channels, strict=True)
            }
        )
        self.image_encoder = ReferenceImageEncoder(**image_encoder)
        cross = self.denoising_unet.config.cross_attention_dim
        if self.image_encoder.embed_dim != cross:
            raise ValueError(
                f"the CLIP image embedding has {self.image_encoder.embed_dim} dims but the UNet's "
                f"cross_attention_dim is {cross}; pick a matching image encoder (ViT-L-14 for SD-1.5)"
            )
        self.temporal = None
        if temporal.get("enabled", False):
            self.temporal = TemporalModules(
                self.denoising_unet,
                self.context,
                heads=temporal["heads"],
                max_frames=temporal["max_frames"],
                layers=temporal.get("layers", 1),
            )
        freeze_bankless_parameters(self.reference_unet, self.context)
        if gradient_checkpointing:
            self.reference_unet.enable_gradient_checkpointing()
            self.denoising_unet.enable_gradient_checkpointing()
        self.latent_shape = (self.codec.channels, latent_size, latent_size)

    # ---- conditioning ----------------------------------------------------------------------
    def encode_guidance(
        self, guidance: dict[str, torch.Tensor], chunk: int | None = None
    ) -> torch.Tensor:
        """Per-type encoders, summed (CHAMP's fusion): ``[B, F, ...]`` -> ``[B*F, ...]``.

        Because the fusion is a plain sum, a subset of the trained types is valid input: the
        missing types drop their terms (as upstream's ``guidance_types`` selection at inference).
        Callers that allow this say so to the user; training batches carry every type."""
        unknown = set(guidance) - set(self.guidance_encoders)
        if unknown or not guidance:
            raise KeyError(
                f"guidance {sorted(guidance)} does not fit this model: it has encoders for "
                f"{sorted(self.guidance_encoders)} (give at least one of them, no other)"
            )
        total = None
        for g, enc in self.guidance_encoders.items():
            if g not in guidance:
                continue
            x = guidance[g].flatten(0, 1)
            if chunk and x.shape[0] > chunk:  # bounded activation memory for long clips
                feat = torch.cat([enc(part) for part in x.split(chunk)])
            else:
                feat = enc(x)
            total = feat if total is None else total + feat
        return total

    def encode_reference(self, reference: torch.Tensor, keep: torch.Tensor) -> dict:
        """CLIP embedding (zeroed where ``keep`` is 0) and the reference bank from one pass of
        the reference UNet at t = 0."""
        clip = self.image_encoder(reference).to(reference.dtype) * keep.view(-1, 1, 1).to(
            reference.dtype
        )
        latents = self.codec.encode(reference)
        bank = self.reference_bank(latents, clip)
        return {"clip": clip, "bank": bank, "latent": latents, "keep": keep.to(reference.dtype)}

    def reference_bank(self, latents: torch.Tensor, clip: torch.Tensor) -> dict:
        """The self-attention inputs of every reference-UNet block, from one pass at t = 0."""
        self.context.bank = {}
        t0 = torch.zeros(latents.shape[0], dtype=torch.long, device=latents.device)
        self.reference_unet(latents, t0, encoder_hidden_states=clip)
        bank, self.context.bank = self.context.bank, {}
        return bank

    def encode_conditions(
        self, reference: torch.Tensor, guidance: dict, keep: torch.Tensor, chunk: int | None = None
    ) -> dict:
        """``chunk``: encode guidance that many frames at a time (upstream's
        ``guidance_process_size``)."""
        cond = self.encode_reference(reference, keep)
        cond["guidance"] = self.encode_guidance(guidance, chunk)
        return cond

    @staticmethod
    def unconditional(cond: dict) -> dict:
        """CFG's unconditional branch: no CLIP embedding, reference bank or reference latent;
        the same guidance."""
        return {
            **cond,
            "clip": torch.zeros_like(cond["clip"]),
            "keep": torch.zeros_like(cond["keep"]),
        }

    # ---- denoiser --------------------------------------------------------------------------
    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        """Denoiser output for ``x`` ``[B*F, C, h, w]`` (clips of F frames, frame-major per clip)."""
        clips = cond["clip"].shape[0]
        if x.shape[0] % clips:
            raise ValueError(f"{x.shape[0]} frames do not split into {clips} clips")
        frames = x.shape[0] // clips
        self.context.bank, self.context.keep, self.context.frames = (
            cond["bank"],
            cond["keep"],
            frames,
        )
        self.injector.pending = cond["guidance"]
        if self.reference_concat:  # dropped references (keep = 0) concatenate zeros
            latent = cond["latent"] * cond["keep"].view(-1, 1, 1, 1).to(cond["latent"].dtype)
            x = torch.cat([x, latent.to(x.dtype).repeat_interleave(frames, dim=0)], dim=1)
        try:
            out = self.denoising_unet(
                x, t, encoder_hidden_states=cond["clip"].repeat_interleave(frames, dim=0)
            ).sample
        finally:
            self.injector.pending = None
        return out

    def denoise_windows(
        self, x: torch.Tensor, t: torch.Tensor, cond: dict, window: int, overlap: int
    ) -> torch.Tensor:
        """Sliding context windows over frames, predictions averaged per frame (AnimateDiff's
        uniform context scheduler as used by CHAMP inference; windows wrap around, closed loop)."""
        clips = cond["clip"].shape[0]
        frames = x.shape[0] // clips
        if frames <= window:
            return self.denoise(x, t, cond)
        if not 0 <= overlap < window:
            raise ValueError(f"overlap={overlap} must be in [0, window={window})")
        stride = window - overlap
        starts = list(range(0, frames, stride))
        total = torch.zeros_like(x).view(clips, frames, *x.shape[1:])
        count = torch.zeros(frames, device=x.device)
        per_clip = lambda v: v.view(clips, frames, *v.shape[1:])  # noqa: E731
        for s in starts:
            idx = torch.arange(s, s + window, device=x.device) % frames
            sub = {**cond, "guidance": per_clip(cond["guidance"])[:, idx].flatten(0, 1)}
            out = self.denoise(
                per_clip(x)[:, idx].flatten(0, 1), per_clip(t)[:, idx].flatten(0, 1), sub
            )
            total[:, idx] += out.view(clips, window, *x.shape[1:])
            count[idx] += 1
        return (total / count.view(1, -1, *([1] * (x.ndim - 1)))).flatten(0, 1)

    def temporal_parameters(self) -> list[nn.Parameter]:
        return [] if self.temporal is None else list(self.temporal.parameters())
