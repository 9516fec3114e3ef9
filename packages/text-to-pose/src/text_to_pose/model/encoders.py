"""The parts of the text-to-pose network, in upstream's structure (text-to-pose.md, "Model").

- ``TextEncoder``: glyph embedding + learned positions -> Transformer encoder.
- ``LengthDistribution``: mean and log-variance heads over the pooled text encoding.
- ``PoseEncoder``: the pose encoder upstream shares between its models: projected frames +
  learned positions, concatenated with extra tokens, -> Transformer encoder.
- ``PoseCorrection``: the MLP that fills missing keypoints of the first pose.

Transformer layers are torch's ``nn.TransformerEncoderLayer`` (post-LN, ReLU, as upstream),
which dispatches to scaled-dot-product attention and, in inference mode, to the fused kernel.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from text_to_pose.data.tokenizer import PAD


def _encoder(hidden: int, heads: int, ff: int, depth: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(hidden, heads, ff, dropout, batch_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class TextEncoder(nn.Module):
    """``ids [B, L]`` -> ``[B, L, H]``."""

    def __init__(self, vocab_size: int, hidden: int, heads: int, ff: int, depth: int,
                 dropout: float, max_len: int) -> None:  # fmt: skip
        super().__init__()
        self.max_len = max_len
        self.embed = nn.Embedding(vocab_size, hidden, padding_idx=PAD)
        self.position = nn.Embedding(max_len, hidden)
        self.encoder = _encoder(hidden, heads, ff, depth, dropout)

    def forward(self, ids: Tensor, valid: Tensor) -> Tensor:
        if ids.shape[1] > self.max_len:
            raise ValueError(
                f"text of {ids.shape[1]} tokens exceeds model.max_text_len={self.max_len}"
            )
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.embed(ids) + self.position(positions)[None]
        return self.encoder(x, src_key_padding_mask=~valid)


class LengthDistribution(nn.Module):
    """Frame-count distribution ``N(mu, exp(log_var))`` from the mean text encoding.

    The mean is over valid tokens only: upstream's unmasked mean made a padded text's length
    depend on its batch; for one text (upstream inference) the two are identical. ``scale``
    multiplies both heads' unit (1 = upstream, frames directly).
    """

    def __init__(self, hidden: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.mu = nn.Linear(hidden, 1)
        self.log_var = nn.Linear(hidden, 1)

    def pool(self, text: Tensor, valid: Tensor) -> Tensor:
        w = valid.to(text.dtype)[..., None]
        return (text * w).sum(1) / w.sum(1).clamp(min=1)

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        """``mu [B]`` in frames and ``log_var [B]`` of frames^2."""
        mu = self.mu(pooled)[:, 0] * self.scale
        log_var = self.log_var(pooled)[:, 0] + 2 * math.log(self.scale)
        return mu, log_var


class PoseEncoder(nn.Module):
    """``frames [B, T, K, 3]`` + ``extra [B, E, H]`` tokens -> ``[B, T + E, H]``."""

    def __init__(self, features: int, hidden: int, heads: int, ff: int, depth: int,
                 dropout: float, max_frames: int) -> None:  # fmt: skip
        super().__init__()
        self.max_frames = max_frames
        self.project = nn.Linear(features, hidden)
        self.position = nn.Embedding(max_frames, hidden)
        self.encoder = _encoder(hidden, heads, ff, depth, dropout)

    def forward(self, frames: Tensor, frame_valid: Tensor, extra: Tensor,
                extra_valid: Tensor) -> Tensor:  # fmt: skip
        t = frames.shape[1]
        if t > self.max_frames:
            raise ValueError(f"{t} frames exceed model.max_frames={self.max_frames}")
        positions = torch.arange(t, device=frames.device)
        tokens = self.project(frames.flatten(2)) + self.position(positions)[None]
        tokens = torch.cat([tokens, extra.to(tokens.dtype)], dim=1)
        padding = ~torch.cat([frame_valid, extra_valid], dim=1)
        return self.encoder(tokens, src_key_padding_mask=padding)


class PoseCorrection(nn.Module):
    """MLP over one flattened pose ``[B, K, 3]``; :meth:`fill` keeps every nonzero coordinate
    and takes the MLP's value where a coordinate is exactly 0 (missing keypoints are stored as
    zeros, reference "First-pose correction")."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(features, features), nn.SiLU(),
                                 nn.Linear(features, features))  # fmt: skip

    def forward(self, pose: Tensor) -> Tensor:
        return self.mlp(pose.flatten(1)).view_as(pose)

    def fill(self, pose: Tensor) -> Tensor:
        return torch.where(pose != 0, pose, self(pose))
