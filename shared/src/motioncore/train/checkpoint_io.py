"""Checkpoint I/O that never leaves a half-written checkpoint behind."""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from motioncore.train.loading import RUN_INFO_KEY

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files that writes killed mid-way (kill -9, power loss) left in
    ``folder``; returns what was removed. Finished checkpoints are never touched."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(folder.glob(f".*.ckpt.*{TEMP_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d unfinished checkpoint write(s) in %s", len(stale), folder)
    return stale


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file in the target folder, then ``os.replace`` it into place.

    A crash or a full disk during saving leaves the previous ``last.ckpt`` intact, which plain
    ``torch.save`` onto the final path does not guarantee. The folder is fsynced after the rename
    so the new name survives a power loss, and the file gets the folder's read/write permission
    bits (``mkstemp`` would make it owner-only, which breaks runs shared by a group).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__} takes no storage_options, got {storage_options}"
            )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, stat.S_IMODE(path.parent.stat().st_mode) & 0o666)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Write ``checkpoint`` to ``path`` atomically (see :class:`AtomicCheckpointIO`)."""
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)


def package_checkpoint(
    *,
    state_dict: Mapping[str, torch.Tensor],
    hyper_parameters: Mapping[str, Any],
    hydra_overrides: list[str],
    imported_from: Mapping[str, Any],
    run_info: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The checkpoint an upstream importer writes, in the layout a Lightning run writes.

    ``state_dict`` and ``hyper_parameters`` are the LightningModule's; ``hydra_overrides``
    rebuild its architecture when ``make eval``/``make sample``/``init_from=`` compose a config
    for it; ``imported_from`` records the source file and the upstream keys left unmapped;
    ``run_info`` (``{"package", "model"}``) lets readers refuse it in another package. Every
    value is a tensor or a plain value, so it loads with ``torch.load(weights_only=True)``.
    """
    checkpoint = {
        "state_dict": dict(state_dict),
        "hyper_parameters": dict(hyper_parameters),
        "pytorch-lightning_version": lightning.__version__,
        "hydra_overrides": list(hydra_overrides),
        "imported_from": dict(imported_from),
    }
    if run_info is not None:
        checkpoint[RUN_INFO_KEY] = dict(run_info)
    return checkpoint
