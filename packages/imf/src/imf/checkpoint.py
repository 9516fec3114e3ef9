"""Load a trained IMFModule from a Lightning checkpoint (its hyper-parameters rebuild it)."""

from __future__ import annotations

from pathlib import Path

import torch

from imf.module import IMFModule


def load_checkpoint(path: str | Path, device: str = "cpu") -> IMFModule:
    """``IMFModule`` in eval mode on ``device``, from ``<run>/checkpoints/last.ckpt``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; pass --ckpt runs/imf/<run>/checkpoints/last.ckpt"
        )
    try:
        module = IMFModule.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    except (KeyError, TypeError, RuntimeError) as e:
        raise ValueError(f"{path} is not an IMF checkpoint written by imf-train ({e})") from e
    return module.to(torch.device(device)).eval()
