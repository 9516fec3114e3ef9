"""Text encoder, length predictor and pose refiner (reference text-to-pose.md, "Model").

Transformer layers are torch's ``nn.TransformerEncoderLayer`` (post-LN, as upstream), which
dispatches to scaled-dot-product attention and, in inference mode, to the fused encoder kernel.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from text_to_pose.data.tokenizer import PAD


def _encoder(hidden: int, heads: int, ff: int, depth: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(hidden, heads, ff, dropout, batch_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class TextEncoder(nn.Module):
    """Glyph embedding + learned positions -> Transformer encoder, ``[B, L, H]``."""

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


class LengthPredictor(nn.Module):
    """Frame count regressed from the masked mean of the text encoding (padding excluded; the
    upstream mean included padded positions, making the length depend on the batch)."""

    def __init__(self, hidden: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.proj = nn.Linear(hidden, 1)

    def forward(self, text: Tensor, valid: Tensor) -> Tensor:
        w = valid.to(text.dtype)[..., None]
        pooled = (text * w).sum(1) / w.sum(1).clamp(min=1)
        return self.proj(pooled)[:, 0] * self.scale


class PoseRefiner(nn.Module):
    """Predicts the clean sequence ``x0`` from ``x_t``, the step and the text tokens.

    Tokens are ``[frames | step | text]``; the first ``T`` outputs go through an MLP to the
    75 x 3 keypoints. With ``residual`` the MLP output is added to ``x_t`` (still an ``x0``
    prediction, easier to learn since ``x_t`` is a blend of ``x0``).
    """

    def __init__(self, n_keypoints: int, hidden: int, heads: int, ff: int, depth: int,
                 dropout: float, max_frames: int, num_steps: int, residual: bool) -> None:  # fmt: skip
        super().__init__()
        self.max_frames, self.residual = max_frames, residual
        features = n_keypoints * 3
        self.pose_in = nn.Linear(features, hidden)
        self.position = nn.Embedding(max_frames, hidden)
        self.step = nn.Embedding(num_steps, hidden)
        self.encoder = _encoder(hidden, heads, ff, depth, dropout)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, features))

    def forward(self, x_t: Tensor, t: Tensor, text: Tensor, text_valid: Tensor,
                frame_valid: Tensor) -> Tensor:  # fmt: skip
        b, frames = x_t.shape[:2]
        if frames > self.max_frames:
            raise ValueError(f"{frames} frames exceed model.max_frames={self.max_frames}")
        positions = torch.arange(frames, device=x_t.device)
        poses = self.pose_in(x_t.flatten(2)) + self.position(positions)[None]
        tokens = torch.cat([poses, self.step(t)[:, None], text.to(poses.dtype)], dim=1)
        step_valid = torch.ones(b, 1, dtype=torch.bool, device=x_t.device)
        padding = ~torch.cat([frame_valid, step_valid, text_valid], dim=1)
        out = self.head(self.encoder(tokens, src_key_padding_mask=padding)[:, :frames])
        out = out.view_as(x_t)
        return x_t + out if self.residual else out
