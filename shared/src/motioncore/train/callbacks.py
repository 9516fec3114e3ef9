"""Callbacks shared by every package: non-finite loss guard, EMA, sample media."""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only


class NonFiniteLoss(FloatingPointError):
    """Raised when the training loss is NaN or infinite."""


class NonFiniteLossGuard(Callback):
    """Stop before backward when the loss is NaN/inf, so no bad update is applied and the last
    checkpoint on disk stays the last good one."""

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        value = float(loss.detach().float().cpu())
        if math.isfinite(value):
            return
        ckpt_dir = None
        if trainer.checkpoint_callback is not None:
            ckpt_dir = getattr(trainer.checkpoint_callback, "dirpath", None)
        raise NonFiniteLoss(
            f"training loss is {value} at global step {trainer.global_step}; stopped before the "
            f"update. The last good checkpoint is kept in {ckpt_dir or 'the run directory'} "
            "(resume with CKPT=<that dir>/last.ckpt). Try a lower learning rate, gradient "
            "clipping (trainer.gradient_clip_val=1.0) or trainer.precision=32-true."
        )


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, plus ``last.ckpt`` at the step where ``max_steps`` stops fit.

    Stock ModelCheckpoint saves at epoch/validation ends only, so a run stopped by ``max_steps``
    mid-epoch would leave ``last.ckpt`` behind the real final step and a resume would repeat work.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        done = 0 < trainer.max_steps <= trainer.global_step
        if self.save_last and done and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class EMA(EMAWeightAveraging):
    """Exponential moving average of the weights (Lightning's own), used for val/test/sampling.

    ``enabled`` is read by :func:`motioncore.train.run`, which drops the callback when False, so
    EMA is one visible switch: ``callbacks.ema.enabled=true``.
    """

    def __init__(self, decay: float = 0.999, update_starting_at_step: int | None = None, **kw):
        super().__init__(decay=decay, update_starting_at_step=update_starting_at_step, **kw)


class SampleMedia(Callback):
    """Every ``every_n_epochs`` validation epochs, ask the module to write samples.

    A LightningModule opts in by defining ``write_samples(out_dir: Path) -> list[Path]``. Images
    (PNG/GIF) are also logged to W&B when the W&B logger is active.
    """

    def __init__(self, dirpath: str, every_n_epochs: int = 1):
        self.dirpath = Path(dirpath)
        self.every_n_epochs = every_n_epochs

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = getattr(pl_module, "write_samples", None)
        if writer is None or trainer.sanity_checking:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        out = self.dirpath / f"step_{trainer.global_step:07d}"
        out.mkdir(parents=True, exist_ok=True)
        paths = writer(out)
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                import wandb

                media = [wandb.Image(str(p)) for p in paths if Path(p).suffix in (".png", ".gif")]
                if media:
                    logger.experiment.log({"samples": media}, step=trainer.global_step)
