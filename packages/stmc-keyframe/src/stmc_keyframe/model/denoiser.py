"""STMC's ``TransformerDenoiser`` (MDM-SMPL), optionally keyframe-conditioned (CondMDI).

Tokens: ``[time, text, registers..., frames...]`` with sinusoidal positions on all of them,
a pre-LN ``nn.TransformerEncoder`` (GELU, batch first) and a key-padding mask on the frames.
Text is a prefix token through ``Linear -> GELU -> Linear -> LayerNorm`` (in-context), the
timestep goes through MDM's ``TimestepEmbedder``. With ``keyframe_conditioned`` the frame
input is ``concat([x_in, M])`` (CondMDI's mask channels; x_in already holds the clean values
at observed entries) and a learned keyframe embedding is added to frames with any observation.

Training on CPU runs each layer through :class:`EncoderLayer`'s own batch-first attention and
dropout (same parameters, same maths, cheaper random masks); eval mode is torch's layer as is.
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


def cpu_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout (Srivastava et al. 2014) with keep masks from 16 random bits per entry.

    torch's CPU dropout draws one Bernoulli float per entry (``bernoulli_``: the training
    profile's largest non-matmul cost); here one 64-bit draw serves four entries, an entry is
    kept when its 16 bits fall below ``round((1 - p) * 2^16)`` and kept entries are scaled by
    ``2^16 / that``, so the expectation is exactly ``x`` (the keep probability is ``1 - p`` to
    within 2^-17). Off CPU, or for p = 0, it is ``F.dropout``.
    """
    if p <= 0.0 or x.device.type != "cpu":
        return nn.functional.dropout(x, p, True)
    if p >= 1.0:
        return x * 0.0
    keep = round((1.0 - p) * 65536)
    words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64)
    bits = words.random_(-(2**63), 2**63 - 1).view(torch.int16)[: x.numel()].view(x.shape)
    return torch.where(bits < keep - 32768, x, 0.0).mul_(65536 / keep)


class EncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer`` (same parameters and state dict) whose training forward
    on CPU avoids what the stock layer adds around the matmuls: ``nn.MultiheadAttention``'s
    sequence-first transposes and per-head copies (one copy of the packed q/k/v instead), the
    scale as a separate pass (``baddbmm``'s alpha), the safe-softmax checks of the math
    attention kernel, and ``bernoulli_`` masks (:func:`cpu_dropout`). Eval mode, and any
    device but CPU, run the stock layer (identical numerics)."""

    def _fast(self, x: torch.Tensor) -> bool:
        return self.training and x.device.type == "cpu"

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        if not self._fast(x) or attn_mask is not None or is_causal:
            return super()._sa_block(x, attn_mask, key_padding_mask, is_causal)
        attn = self.self_attn
        b, n, e = x.shape
        h = attn.num_heads
        qkv = nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias)
        q, k, v = qkv.view(b, n, 3, h, e // h).permute(2, 0, 3, 1, 4).reshape(3, b * h, n, -1)
        if key_padding_mask is None:
            scores = torch.baddbmm(q.new_empty(()), q, k.transpose(1, 2), beta=0.0, alpha=(e // h) ** -0.5)  # fmt: skip
        else:
            if key_padding_mask.dtype == torch.bool:
                key_padding_mask = torch.zeros_like(key_padding_mask, dtype=x.dtype).masked_fill(
                    key_padding_mask, float("-inf")
                )
            bias = key_padding_mask.to(x.dtype).repeat_interleave(h, 0)[:, None]
            scores = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=(e // h) ** -0.5)
        probs = cpu_dropout(scores.softmax(-1), attn.dropout)
        out = torch.bmm(probs, v).view(b, h, n, -1).transpose(1, 2).reshape(b, n, e)
        return cpu_dropout(attn.out_proj(out), self.dropout1.p)

    def _ff_block(self, x):
        if not self._fast(x):
            return super()._ff_block(x)
        hidden = cpu_dropout(self.activation(self.linear1(x)), self.dropout.p)
        return cpu_dropout(self.linear2(hidden), self.dropout2.p)


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
        layer = EncoderLayer(
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
