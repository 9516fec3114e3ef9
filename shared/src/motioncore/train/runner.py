"""``run(cfg)``: the one training/evaluation driver behind every package's entry points.

Data flow: validate the config's numbers -> build data, model, callbacks, loggers, trainer ->
(resume from ``ckpt_path`` | start from the weights of ``init_from`` | start fresh) -> fit ->
test once per evaluation seed -> ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import hydra
import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from motioncore.train.checkpoint_io import AtomicCheckpointIO, remove_stale_temp_files
from motioncore.train.loading import (
    RUN_INFO_KEY,
    CheckpointError,
    check_run_info,
    load_weights,
    read_checkpoint,
)
from motioncore.train.seeds import summarize_seeds

log = logging.getLogger(__name__)
PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM


class ConfigValueError(ValueError):
    """A config value out of its range; the message names the key and a valid value."""


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a group; entries that are null or have
    ``enabled: false`` are skipped."""
    out = []
    for name, conf in (group or {}).items():
        if conf is None:
            continue
        conf = OmegaConf.to_container(conf, resolve=True)
        if not conf.pop("enabled", True):
            continue
        if "_target_" not in conf:
            raise ValueError(f"config entry {name!r} has no _target_: {conf}")
        out.append(hydra.utils.instantiate(conf))
    return out


def _scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in sorted(metrics.items()):
        value = float(v.detach().cpu()) if isinstance(v, torch.Tensor) else float(v)
        out[k] = value if math.isfinite(value) else str(value)
    return out


def _require_int(cfg: DictConfig, key: str, minimum: int, example: int, allow: tuple = ()) -> None:
    value = OmegaConf.select(cfg, key)
    if value is None or value in allow:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        also = f" (or {', '.join(map(str, allow))})" if allow else ""
        raise ConfigValueError(
            f"{key}={value!r} must be an integer >= {minimum}{also}; e.g. {key}={example}"
        )


def validate_config(cfg: DictConfig) -> None:
    """Range checks of the keys every package shares, before anything is built."""
    _require_int(cfg, "trainer.max_steps", 1, 1000, allow=(-1,))
    _require_int(cfg, "data.batch_size", 1, 8)
    _require_int(cfg, "data.eval_batch_size", 1, 8)
    _require_int(cfg, "seeds", 1, 3)
    if cfg.get("ckpt_path") and cfg.get("init_from"):
        raise ConfigValueError(
            f"ckpt_path={cfg.ckpt_path} and init_from={cfg.init_from} are both set: ckpt_path "
            "(CKPT=) resumes a run with its optimizer and step, init_from= starts a new run from "
            "the weights only. Pass one of them."
        )


def _writable_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as e:
        raise ConfigValueError(
            f"run directory {out_dir} is not writable ({e.strerror}); pass a writable one with "
            "hydra.run.dir=<folder> (or set MOTIONCORE_ROOT=<folder> for runs/ and data/)"
        ) from None


def _check_wandb_reachable(cfg: DictConfig, timeout: float = 5.0) -> None:
    """``WANDB_MODE=online`` without network would hang ~90 s then fail without a hint."""
    uses_wandb = any(
        "WandbLogger" in str((conf or {}).get("_target_", "")) and (conf or {}).get("enabled", True)
        for conf in (cfg.get("logger") or {}).values()
    )
    if not uses_wandb or os.environ.get("WANDB_MODE", "offline") != "online":
        return
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host, port = url.hostname or "api.wandb.ai", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(
            f"WANDB_MODE=online but {host}:{port} is unreachable ({e}). Train with "
            "WANDB_MODE=offline and upload later: wandb sync <run dir>/wandb/offline-run-*"
        ) from None


class RunInfo(Callback):
    """Stamps every checkpoint with the package and model class that wrote it, so loading it
    into another package fails with that name instead of a list of unknown keys."""

    def __init__(self, package: str, model_target: str):
        self.info = {"package": package, "model": model_target}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[RUN_INFO_KEY] = dict(self.info)


def _identity(cfg: DictConfig) -> tuple[str, str]:
    return str(cfg.get("package", "")), str(cfg.model.get("_target_", ""))


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, Mapping):
        return {prefix: tree}
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _changed_hparams(cfg: DictConfig, state: Mapping) -> list[str]:
    """``model.<key>=<now> (checkpoint: <then>)`` for every model argument that differs."""
    saved = _flat(state.get("hyper_parameters") or {})
    now = _flat(OmegaConf.to_container(cfg.model, resolve=True))
    return [
        f"model.{k}={now[k]!r} (checkpoint: {saved[k]!r})"
        for k in sorted(now.keys() & saved.keys())
        if not k.startswith("_") and now[k] != saved[k]
    ]


def check_checkpoint(
    cfg: DictConfig, model: pl.LightningModule, path: str, state: Mapping | None = None
) -> Mapping:
    """Load ``path`` (or its already read ``state``) into ``model`` for resume/eval/sampling,
    refusing it by name if it does not fit ``cfg.model``."""
    state = read_checkpoint(path, "ckpt_path") if state is None else state
    check_run_info(state, path, "ckpt_path", *_identity(cfg))
    changed = _changed_hparams(cfg, state)
    try:
        load_weights(model, state["state_dict"], path, "ckpt_path", strict=True)
    except CheckpointError as e:
        if not changed:
            raise
        raise CheckpointError(
            f"{e} Conflicting architecture keys: {'; '.join(changed)}. Drop these overrides to "
            "resume, or start a new run from its weights with init_from=<ckpt>."
        ) from None
    if changed:
        log.warning("continuing %s with changed model keys: %s", path, "; ".join(changed))
    return state


def init_weights(
    cfg: DictConfig, model: pl.LightningModule, path: str, state: Mapping | None = None
) -> None:
    """``init_from=<ckpt>``: weights only (fresh optimizer, step 0); reports key differences."""
    state = read_checkpoint(path, "init_from") if state is None else state
    check_run_info(state, path, "init_from", *_identity(cfg))
    missing, unexpected = load_weights(model, state["state_dict"], path, "init_from", strict=False)
    loaded = len(state["state_dict"]) - len(unexpected)
    log.info("init_from=%s: loaded %d tensors (optimizer and step start fresh)", path, loaded)
    if missing:
        log.warning("init_from: %d model weights not in the checkpoint: %s", len(missing), missing)
    if unexpected:
        log.warning(
            "init_from: %d checkpoint weights unused by this model: %s", len(unexpected), unexpected
        )


def _resume_path(cfg: DictConfig, out_dir: Path) -> str | None:
    """``ckpt_path``, or the ``last.ckpt`` of a pinned ``hydra.run.dir`` that is run again."""
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    last = out_dir / "checkpoints" / "last.ckpt"
    if cfg.get("train", True) and last.is_file():
        log.warning(
            "%s already holds %s: resuming that run (its step, optimizer and weights). To start "
            "a fresh run instead, pass another hydra.run.dir or delete %s.",
            out_dir,
            last,
            out_dir / "checkpoints",
        )
        if cfg.get("init_from"):
            log.warning("init_from=%s is ignored: the run it started is resumed", cfg.init_from)
        return str(last)
    return None


def _test_over_seeds(
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    ckpt: str | None,
    seeds: int,
) -> dict[str, Any]:
    """One test loop per evaluation seed 0..seeds-1 (``model.eval_round``); see seeds.py."""
    rounds = []
    for seed in range(seeds):
        model.eval_round = seed
        if seeds > 1:
            pl.seed_everything(seed, workers=True)
        trainer.test(model, datamodule=datamodule, ckpt_path=ckpt if seed == 0 else None)
        rounds.append(_scalar_metrics(trainer.callback_metrics))
    model.eval_round = 0
    if seeds == 1:
        return rounds[0]
    return summarize_seeds(rounds)


def run(cfg: DictConfig) -> dict[str, float]:
    """Seed, build data/model/callbacks/loggers/trainer, then fit and/or test.

    ``cfg.train`` fits: resuming from ``cfg.ckpt_path`` (continues the global step and
    optimizer; a ``last.ckpt`` already in the run directory is resumed the same way), or from the
    weights of ``cfg.init_from`` (fresh optimizer, step 0). ``cfg.test`` evaluates (the fitted
    weights, or ``cfg.ckpt_path`` without training), ``cfg.seeds`` times with evaluation seeds
    0..N-1. All metrics are written to ``<output_dir>/metrics.json`` and returned. SIGTERM or
    SIGUSR1 during fit saves ``last.ckpt`` and exits with code 143.
    """
    os.environ.setdefault("WANDB_MODE", "offline")
    validate_config(cfg)
    out_dir = Path(cfg.paths.output_dir)
    _writable_dir(out_dir)
    _check_wandb_reachable(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "high"))
    train = cfg.get("train", True)
    ckpt_path = _resume_path(cfg, out_dir)
    init_from = str(cfg.init_from) if train and cfg.get("init_from") and not ckpt_path else None
    # read before anything is built, so a bad file fails in seconds
    state = None
    if ckpt_path is not None:
        remove_stale_temp_files(Path(ckpt_path).parent)
        state = read_checkpoint(ckpt_path, "ckpt_path")
    elif init_from is not None:
        state = read_checkpoint(init_from, "init_from")

    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    model: pl.LightningModule = hydra.utils.instantiate(cfg.model)
    if ckpt_path is not None:
        check_checkpoint(cfg, model, ckpt_path, state)
    elif init_from is not None:
        init_weights(cfg, model, init_from, state)
    del state
    callbacks = _instantiate_group(cfg.get("callbacks"))
    callbacks.append(RunInfo(*_identity(cfg)))
    loggers = _instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(out_dir),
    )
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    metrics: dict[str, Any] = {}
    if train:
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        except SIGTERMException:
            last = out_dir / "checkpoints" / "last.ckpt"
            if trainer.is_global_zero:  # every rank stops here; one line says so
                log.warning(
                    "stopped by SIGTERM/SIGUSR1 at global step %d; %s holds it. Resume with "
                    "make train MODEL=%s CKPT=%s (or RESUME=%s)",
                    trainer.global_step,
                    last,
                    cfg.get("package", "<package>"),
                    last,
                    out_dir,
                )
            raise SystemExit(PREEMPTED_EXIT_CODE) from None
        metrics.update(_scalar_metrics(trainer.callback_metrics))
    if cfg.get("test", False):
        # After fit the in-memory weights are the final (EMA if enabled) ones; in eval-only
        # mode the checkpoint is loaded here.
        metrics.update(
            _test_over_seeds(
                trainer, model, datamodule, None if train else ckpt_path, cfg.get("seeds", 1)
            )
        )

    result = dict(sorted(metrics.items()))
    if trainer.is_global_zero:
        (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        log.info("metrics written to %s", out_dir / "metrics.json")
    return result


def load_module(cfg: DictConfig, device: str | torch.device = "cpu") -> pl.LightningModule:
    """Instantiate ``cfg.model`` and load the weights of ``cfg.ckpt_path`` (for sample/export).

    The checkpoint's ``state_dict`` holds the EMA weights when EMA was enabled in training.
    """
    path = cfg.get("ckpt_path")
    if not path:
        raise ValueError("ckpt_path is required: pass CKPT=<run dir>/checkpoints/last.ckpt")
    model: pl.LightningModule = hydra.utils.instantiate(cfg.model)
    check_checkpoint(cfg, model, str(path))
    return model.to(device).eval()
