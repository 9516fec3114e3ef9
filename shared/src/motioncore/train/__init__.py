"""Lightning/Hydra/W&B training glue shared by every package."""

from motioncore.train.callbacks import (
    EMA,
    NonFiniteLoss,
    NonFiniteLossGuard,
    RunCheckpoint,
    SampleMedia,
)
from motioncore.train.checkpoint_io import AtomicCheckpointIO
from motioncore.train.config import plain
from motioncore.train.data import BaseDataModule, per_device_batch_size
from motioncore.train.entry import hydra_entry
from motioncore.train.loading import CheckpointError, load_weights, read_checkpoint
from motioncore.train.runner import ConfigValueError, load_module, run
from motioncore.train.seeds import round_seed

__all__ = [
    "EMA",
    "AtomicCheckpointIO",
    "BaseDataModule",
    "CheckpointError",
    "ConfigValueError",
    "NonFiniteLoss",
    "NonFiniteLossGuard",
    "RunCheckpoint",
    "SampleMedia",
    "hydra_entry",
    "load_module",
    "load_weights",
    "per_device_batch_size",
    "plain",
    "read_checkpoint",
    "round_seed",
    "run",
]
