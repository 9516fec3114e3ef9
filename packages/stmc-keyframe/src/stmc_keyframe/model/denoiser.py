"""STMC's ``TransformerDenoiser`` (MDM-SMPL), optionally keyframe-conditioned (CondMDI).

Tokens: ``[time, text, registers..., frames...]`` with sinusoidal positions on all of them,
a pre-LN ``nn.TransformerEncoder`` (GELU, batch first) and a key-padding mask on the frames.
Text is a prefix token through ``Linear -> GELU -> Linear -> LayerNorm`` (in-context), the
timestep goes through MDM's ``TimestepEmbedder``. With ``keyframe_conditioned`` the frame
input is ``concat([x_in, M])`` (CondMDI's mask channels; x_in already holds the clean values
at observed entries) and a learned keyframe embedding is added to frames with any observation.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """Vaswani et al. 2017, sec. 3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d)), cos for 2i+1."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class TransformerDenoiser(nn.Module):
    """``forward(x [B, T, F], t [B], cond) -> x0 [B, T, F]``.

    ``cond`` is a dict: ``text`` [B, tx_dim], ``valid`` [B, T] bool, and when keyframe
    conditioned ``obs_mask`` [B, T, F] (1 where observed).
    """

    def __init__(
        self,
        nfeats: int = 205,
        tx_dim: int = 512,
        latent_dim: int = 512,
        ff_size: int = 2048,
        num_layers: int = 8,
        num_heads: int = 8,
        dropout: float = 0.1,
        nb_registers: int = 2,
        activation: str = "gelu",
        keyframe_conditioned: bool = False,
        max_len: int = 5000,
    ):
        super().__init__()
        self.nfeats, self.tx_dim = nfeats, tx_dim
        self.keyframe_conditioned = keyframe_conditioned
        in_dim = 2 * nfeats if keyframe_conditioned else nfeats
        self.input = nn.Linear(in_dim, latent_dim)
        self.keyframe_embedding = (
            nn.Parameter(torch.zeros(latent_dim)) if keyframe_conditioned else None
        )
        self.output = nn.Linear(latent_dim, nfeats)
        self.text = nn.Sequential(
            nn.Linear(tx_dim, 2 * latent_dim), nn.GELU(), nn.Linear(2 * latent_dim, latent_dim),
            nn.LayerNorm(latent_dim),
        )  # fmt: skip
        self.time = nn.Sequential(
            nn.Linear(latent_dim, latent_dim), nn.SiLU(), nn.Linear(latent_dim, latent_dim)
        )
        self.registers = (
            nn.Parameter(torch.randn(nb_registers, latent_dim)) if nb_registers else None
        )
        self.nb_registers = nb_registers
        self.register_buffer("pe", sinusoidal_table(max_len, latent_dim), persistent=False)
        layer = nn.TransformerEncoderLayer(
            latent_dim, num_heads, ff_size, dropout, activation, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        b, n, f = x.shape
        if f != self.nfeats:
            raise ValueError(f"denoiser expects {self.nfeats} features, got {f}")
        text = cond["text"]
        if text.shape != (b, self.tx_dim):
            raise ValueError(f"text embedding must be [B, {self.tx_dim}], got {tuple(text.shape)}")
        valid = cond["valid"]
        if self.keyframe_conditioned:
            obs = cond["obs_mask"].to(x.dtype)
            h = self.input(torch.cat([x, obs], -1))
            h = h + (obs.amax(-1, keepdim=True) * self.keyframe_embedding)
        else:
            h = self.input(x)
        prefix = [self.time(self.pe[t.long()])[:, None], self.text(text)[:, None]]
        if self.registers is not None:
            prefix.append(self.registers[None].expand(b, -1, -1))
        seq = torch.cat([*prefix, h], 1)
        seq = seq + self.pe[: seq.shape[1]][None]
        n_prefix = seq.shape[1] - n
        pad = torch.cat([torch.zeros(b, n_prefix, dtype=torch.bool, device=x.device), ~valid], 1)
        # no padding (fixed-length crops, sampling): no mask, so attention skips building the
        # -inf fill of every score row and the masked-row checks (the training profile's
        # where/isneginf/all) and may take SDPA's fused kernel
        out = self.encoder(seq, src_key_padding_mask=pad if bool(pad.any()) else None)
        return self.output(out[:, n_prefix:])
