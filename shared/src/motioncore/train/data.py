"""DataModule base with a global batch size split across devices x nodes.

``data.batch_size`` / ``data.eval_batch_size`` are GLOBAL batches: each rank loads
``batch / (devices x nodes)``, and a batch that does not divide is an error. Setting
``data.per_device_batch_size=N`` states the per-rank batch instead (train, val and test): every
rank loads N, so the global batch grows with the world size and any GPU count works.

Built-in data (``builtin_data``) is generated in ``prepare_data``, which Lightning runs on local
rank 0 only before any ``setup``, so DDP ranks never write the same files; ``setup`` only reads.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from torch.utils.data import DataLoader, Dataset

from motioncore.data import BuiltinData


def per_device_batch_size(
    global_batch_size: int, world_size: int, name: str = "data.batch_size"
) -> int:
    """Configs give the global batch; each rank loads ``global / world_size``."""
    if global_batch_size % world_size:
        raise ValueError(
            f"{name}={global_batch_size} is the global batch and must divide by the "
            f"world size {world_size} (devices x nodes); pick e.g. "
            f"{name}={max(1, global_batch_size // world_size) * world_size}, or state the "
            "per-GPU batch with data.per_device_batch_size=<n>"
        )
    return global_batch_size // world_size


class BaseDataModule(pl.LightningDataModule):
    """Packages subclass this and fill ``self.train_set``/``val_set``/``test_set`` in ``setup``."""

    train_set: Dataset | None = None
    val_set: Dataset | None = None
    test_set: Dataset | None = None

    def __init__(
        self,
        batch_size: int = 32,
        num_workers: int = 0,
        eval_batch_size: int | None = None,
        per_device_batch_size: int | None = None,
    ):
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.per_device_batch_size = per_device_batch_size

    def builtin_data(self) -> BuiltinData | None:
        """The generated data set this module reads; None when it reads a user's folder."""
        return None

    def prepare_data(self) -> None:
        builtin = self.builtin_data()
        if builtin is not None:
            builtin.build()

    def builtin_root(self) -> Path:
        """For ``setup``: the folder ``prepare_data`` built. Used without a Trainer (scripts,
        notebooks: one process) a missing build is made here; under a Trainer it is an error."""
        builtin = self.builtin_data()
        if builtin.is_built():
            return builtin.root
        if self.trainer is None:
            return builtin.build()
        raise RuntimeError(
            f"the built-in data at {builtin.root} is missing or was built by other settings "
            "after prepare_data(): on several nodes without a shared filesystem keep "
            "prepare_data_per_node on, and give concurrent runs with other data settings "
            "different paths.data_dir folders"
        )

    def _world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def rank_batch_size(self, global_batch_size: int) -> int:
        """What one rank loads per step: ``per_device_batch_size`` if set, else global / world."""
        if self.per_device_batch_size:
            return self.per_device_batch_size
        return per_device_batch_size(global_batch_size, self._world_size())

    def _on_gpu(self) -> bool:
        """Page-locked batches make host-to-GPU copies asynchronous; on CPU they only cost."""
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"

    def _loader(self, dataset: Dataset | None, batch: int, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() did not create this split")
        return DataLoader(
            dataset,
            batch_size=self.rank_batch_size(batch),
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self._on_gpu(),
            collate_fn=getattr(dataset, "collate", None),
            drop_last=shuffle and len(dataset) >= batch,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)
