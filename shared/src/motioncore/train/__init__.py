"""Lightning/Hydra/W&B training glue shared by every package."""

from motioncore.train.callbacks import (
    EMA,
    NonFiniteLoss,
    NonFiniteLossGuard,
    RunCheckpoint,
    SampleMedia,
)
from motioncore.train.checkpoint_io import AtomicCheckpointIO
from motioncore.train.data import BaseDataModule, per_device_batch_size
from motioncore.train.entry import hydra_entry
from motioncore.train.runner import load_module, run

__all__ = [
    "EMA",
    "AtomicCheckpointIO",
    "BaseDataModule",
    "NonFiniteLoss",
    "NonFiniteLossGuard",
    "RunCheckpoint",
    "SampleMedia",
    "hydra_entry",
    "load_module",
    "per_device_batch_size",
    "run",
]
