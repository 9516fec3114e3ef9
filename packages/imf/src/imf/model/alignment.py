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
    q, k = (F.pad(t, (0, width - d_qk)) for t in (query, key))
    v = F.pad(value, (0, width - d_v))
    out = F.scaled_dot_product_attention(
        q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), scale=scale
    )
    return out.squeeze(1)[..., :d_v]


class ImplicitMotionAlignment(nn.Module):
    """``f_c^l = IMF_A(m_c^l, m_r^l, f_r^l)``: cross-attention then transformer blocks.

    Q = m_c + P_q, K = m_r + P_k, V = f_r (eq. 5): no Q/K/V projections and a single head, as in
    the paper. The learned positional embeddings are stored on a ``grid_size`` grid and resized
    bilinearly when the feature map has another size, so one model runs at any resolution.
    The transformer blocks are torch's pre-norm ``TransformerEncoderLayer`` (self-attention
    through SDPA, GELU MLP), ``depth`` of them (paper: 4).
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
            h = block(h)
        return h.transpose(1, 2).reshape(batch, channels, height, width)
