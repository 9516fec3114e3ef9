"""IMF_A: implicit motion alignment, one module per scale (IMF sec. 3.3, eqs. 4-6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def cross_attention(query: Tensor, key: Tensor, value: Tensor, fused: bool = True) -> Tensor:
    """Single-head ``softmax(Q K^T / sqrt(d_qk)) V`` (IMF eq. 5) for ``[B, N, d]`` tokens.

    Q/K and V may have different widths. torch's CPU flash kernel needs one head width, so the
    narrower side is zero-padded (zeros add nothing to ``Q K^T`` or to the output) and the
    scale is kept at ``d_qk^-1/2``; that keeps memory O(N) instead of the O(N^2) score matrix
    of the fallback path. ``fused=False`` is the plain reference computation used in tests.
    """
    d_qk, d_v = query.shape[-1], value.shape[-1]
    if key.shape[-1] != d_qk:
        raise ValueError(f"query width {d_qk} != key width {key.shape[-1]}")
    scale = d_qk**-0.5
    if not fused:
        weights = torch.softmax(query @ key.transpose(-1, -2) * scale, dim=-1)
        return weights @ value
    width = max(d_qk, d_v)
    # contiguous: the flash kernel needs unit-stride rows, and an unpadded side is still the
    # transposed view of a feature map (else SDPA falls back to the O(N^2) math path)
    q, k = (F.pad(t, (0, width - d_qk)).contiguous() for t in (query, key))
    v = F.pad(value, (0, width - d_v)).contiguous()
    out = F.scaled_dot_product_attention(
        q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), scale=scale
    )
    return out.squeeze(1)[..., :d_v]


def transformer_block(layer: nn.TransformerEncoderLayer, x: Tensor) -> Tensor:
    """``layer(x)`` for IMF_A's pre-norm, dropout-free GELU layers, with self-attention through
    ``F.scaled_dot_product_attention`` (CPU flash kernel: O(N) memory).

    torch's layer takes its "fast path" in eval mode without gradients, and on CPU that path
    materialises the ``[B, heads, N, N]`` scores (8 x 4096^2 floats, 512 MB, at the finest
    256 px level: 28% of a reconstruction's time in the profile). The parameters and their
    names are the layer's own, so checkpoints and imports are unchanged.
    """
    attn = layer.self_attn
    batch, tokens, width = x.shape
    heads = attn.num_heads
    q, k, v = F.linear(layer.norm1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.view(batch, tokens, heads, width // heads).transpose(1, 2) for t in (q, k, v))
    h = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, width)
    x = x + attn.out_proj(h)
    return x + layer.linear2(F.gelu(layer.linear1(layer.norm2(x))))


class ImplicitMotionAlignment(nn.Module):
    """``f_c^l = IMF_A(m_c^l, m_r^l, f_r^l)``: cross-attention then transformer blocks.

    Q = m_c + P_q, K = m_r + P_k, V = f_r (eq. 5): no Q/K/V projections and a single head, as in
    the paper. The learned positional embeddings are stored on a ``grid_size`` grid and resized
    bilinearly when the feature map has another size, so one model runs at any resolution.
    The transformer blocks are torch's pre-norm ``TransformerEncoderLayer`` (GELU MLP),
    ``depth`` of them (paper: 4), run through :func:`transformer_block` (SDPA) unless
    ``fused=False``, which calls torch's own layer and the plain cross-attention (for checks).
    """

    def __init__(
        self,
        motion_dim: int,
        feature_dim: int,
        grid_size: int,
        depth: int = 4,
        heads: int = 8,
        mlp_dim: int = 1024,
        fused: bool = True,
    ):
        super().__init__()
        self.q_pos = nn.Parameter(torch.randn(1, motion_dim, grid_size, grid_size))
        self.k_pos = nn.Parameter(torch.randn(1, motion_dim, grid_size, grid_size))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                feature_dim,
                heads,
                mlp_dim,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(depth)
        )
        self.fused = fused

    def _positions(self, table: Tensor, size: tuple[int, int]) -> Tensor:
        if table.shape[-2:] != size:
            table = F.interpolate(table, size=size, mode="bilinear", align_corners=False)
        return table.flatten(2).transpose(1, 2)

    def forward(
        self, motion_current: Tensor, motion_reference: Tensor, features_reference: Tensor
    ) -> Tensor:
        """``(B, Cm, H, W), (B, Cm, H, W), (B, Cf, H, W) -> (B, Cf, H, W)``."""
        if motion_current.shape != motion_reference.shape:
            raise ValueError(
                f"motion shapes differ: {motion_current.shape} vs {motion_reference.shape}"
            )
        if motion_current.shape[-2:] != features_reference.shape[-2:]:
            raise ValueError(
                f"motion {tuple(motion_current.shape[-2:])} and feature {tuple(features_reference.shape[-2:])} "
                "maps must have one spatial size"
            )
        batch, channels, height, width = features_reference.shape
        size = (height, width)
        query = motion_current.flatten(2).transpose(1, 2) + self._positions(self.q_pos, size)
        key = motion_reference.flatten(2).transpose(1, 2) + self._positions(self.k_pos, size)
        value = features_reference.flatten(2).transpose(1, 2)
        h = cross_attention(query, key, value, fused=self.fused)
        for block in self.blocks:
            h = transformer_block(block, h) if self.fused else block(h)
        return h.transpose(1, 2).reshape(batch, channels, height, width)
