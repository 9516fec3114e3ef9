"""Load a trained IMFModule from a checkpoint (its hyper-parameters rebuild it).

Reading goes through :func:`motioncore.train.read_checkpoint` (weights only, clear errors for
missing, empty, truncated or foreign files); the weights must fit exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch

from imf.module import IMFModule
from motioncore.train import CheckpointError, load_weights, read_checkpoint


def load_checkpoint(path: str | Path, device: str = "cpu") -> IMFModule:
    """``IMFModule`` in eval mode on ``device``, from ``<run>/checkpoints/last.ckpt`` or an
    imported upstream checkpoint."""
    state = read_checkpoint(path, "--ckpt")
    try:
        module = IMFModule(**(state.get("hyper_parameters") or {}))
    except TypeError as e:
        raise CheckpointError(
            f"--ckpt={path} is not an IMF checkpoint ({e}); pass one written by imf-train "
            "(runs/imf/<run>/checkpoints/last.ckpt) or by imf-import"
        ) from None
    load_weights(module, state["state_dict"], path, "--ckpt", strict=True)
    return module.to(torch.device(device)).eval()
