"""CLIP image embedding of the reference (open_clip vision tower), frozen as upstream.

CHAMP feeds the projected CLIP image embedding (1 token) to both UNets as
``encoder_hidden_states`` instead of text. Weights come from a local open_clip checkpoint; with
none on disk the tower is randomly initialised and a warning says so (no downloads).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn

log = logging.getLogger(__name__)


class ReferenceImageEncoder(nn.Module):
    """``[B, 3, H, W]`` in [-1, 1] -> ``[B, 1, embed_dim]``.

    Args:
        model_name: an open_clip model name (``ViT-L-14`` for SD-1.5's 768-d context) or
            ``tiny`` for the small tower ``tiny`` describes.
        weights: local open_clip checkpoint file for ``model_name``.
        tiny: VisionTransformer kwargs of the tiny tower.
    """

    def __init__(self, model_name: str, weights: str | None = None, tiny: dict | None = None):
        super().__init__()
        if model_name == "tiny":
            self.visual = VisionTransformer(**(tiny or {}))
            self._warn(weights, "the built-in tiny tower")
        else:
            pretrained = weights if weights and Path(weights).is_file() else None
            if pretrained is None:
                self._warn(weights, model_name)
            model = open_clip.create_model(model_name, pretrained=pretrained)
            self.visual = model.visual
        self.visual.requires_grad_(False).eval()
        size = self.visual.image_size
        self.image_size = size[0] if isinstance(size, tuple | list) else int(size)
        self.embed_dim = int(self.visual.output_dim)
        self.register_buffer(
            "mean", torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1), False
        )
        self.register_buffer(
            "std", torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1), False
        )

    @staticmethod
    def _warn(weights: str | None, what: str) -> None:
        if weights and Path(weights).is_file():
            return
        warnings.warn(
            f"CLIP image encoder ({what}): no weights file found at {weights!r}; using a random "
            "initialisation (frozen). Set model.image_encoder.weights to a local open_clip "
            "checkpoint for pretrained reference embeddings.",
            stacklevel=3,
        )

    def train(self, mode: bool = True) -> ReferenceImageEncoder:  # frozen: always eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() + 1) / 2
        x = F.interpolate(
            x,
            size=(self.image_size, self.image_size),
            mode="bicubic",
            align_corners=False,
            antialias=True,
        )
        x = (x.clamp(0, 1) - self.mean) / self.std
        return self.visual(x)[:, None, :]
