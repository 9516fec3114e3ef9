"""Callbacks shared by every package: run checkpoints, non-finite loss guard, EMA, sample media."""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from motioncore.train.checkpoint_io import remove_stale_temp_files


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
    """Lightning's ModelCheckpoint, plus the saves a run on a shared cluster needs.

    - ``last.ckpt`` at the step where ``max_steps`` stops fit (stock ModelCheckpoint saves at
      epoch/validation ends only, so a resume would repeat work);
    - ``last.ckpt`` every ``last_every_minutes`` of training (Lightning's ``train_time_interval``,
      but for ``last.ckpt`` only, so the validation-monitored top-k keeps saving at validation);
      a kill -9 loses at most that much;
    - ``last.ckpt`` when SIGTERM (or SIGUSR1, which SLURM sends ahead of the time limit with
      ``--signal=USR1@90``) arrives on any rank: at the end of the current batch every rank saves
      and raises Lightning's ``SIGTERMException``, then :func:`motioncore.train.run` exits with
      code 143. The signal handler only sets a flag; the ranks agree on it through one all-reduce
      per batch. (Lightning's own handler runs a broadcast inside the signal handler, unmatched
      by the other ranks' collectives: a 2-rank gloo run hung there after SIGTERM.)
    - at setup, unfinished temporary files of an interrupted write are removed;
    - a resumed run overwrites ``last.ckpt`` rather than writing ``last-v1.ckpt`` beside it.
    """

    def __init__(self, *args, last_every_minutes: float | None = 10.0, **kwargs):
        # A resumed run writing into its own folder overwrites last.ckpt (Lightning's version
        # counter would write last-v1.ckpt beside it whenever the callback's settings changed).
        kwargs.setdefault("enable_version_counter", False)
        super().__init__(*args, **kwargs)
        if last_every_minutes is not None and not last_every_minutes > 0:
            raise ValueError(
                f"callbacks.model_checkpoint.last_every_minutes={last_every_minutes} must be > 0 "
                "(or null to save last.ckpt only at validation and at the end)"
            )
        self.last_every_minutes = last_every_minutes
        self._last_saved_at = time.monotonic()
        self._previous_handlers: dict[int, object] = {}
        self._stop_signal: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath is not None:
            remove_stale_temp_files(self.dirpath)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_saved_at = time.monotonic()
        self._stop_signal = None
        signums = [signal.SIGTERM]
        # Lightning owns SIGUSR1 only under SLURM auto-requeue; otherwise treat it as SIGTERM.
        if hasattr(signal, "SIGUSR1") and signal.getsignal(signal.SIGUSR1) in (
            signal.SIG_DFL,
            None,
        ):
            signums.append(signal.SIGUSR1)
        for signum in signums:
            self._previous_handlers[signum] = signal.signal(signum, self._request_stop)

    def _request_stop(self, signum, frame) -> None:
        self._stop_signal = signum

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._restore_signals()

    def _restore_signals(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_saved_at = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        due = self.last_every_minutes is not None and (
            time.monotonic() - self._last_saved_at >= 60 * self.last_every_minutes
        )
        # every rank must take the same decisions (saving is a collective under DDP): one
        # all-reduce per batch, a rank's time or signal counts for all
        flags = torch.tensor(
            [float(due), float(self._stop_signal is not None)], device=trainer.strategy.root_device
        )
        due, stop = (bool(v) for v in trainer.strategy.reduce(flags, reduce_op="max").tolist())
        done = 0 < trainer.max_steps <= trainer.global_step
        unsaved = self.save_last and self._last_global_step_saved != trainer.global_step
        if unsaved and (done or due or stop):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        if stop:
            raise SIGTERMException

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        self._restore_signals()
        # a signal before on_train_start is Lightning's (it raises SIGTERMException itself)
        preempted = isinstance(exception, SIGTERMException)
        if preempted and self.save_last and self._last_global_step_saved != trainer.global_step:
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
