"""``run(cfg)``: the one training/evaluation driver behind every package's entry points."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf

from motioncore.train.checkpoint_io import AtomicCheckpointIO

log = logging.getLogger(__name__)


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


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in sorted(metrics.items()):
        value = float(v.detach().cpu()) if isinstance(v, torch.Tensor) else float(v)
        out[k] = value if math.isfinite(value) else str(value)
    return out


def _check_ckpt(path: str | None) -> str | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"checkpoint {path!r} does not exist; pass CKPT=<run dir>/checkpoints/last.ckpt "
            "(make train resumes from it, make eval evaluates it)"
        )
    return str(path)


def run(cfg: DictConfig) -> dict[str, float]:
    """Seed, build data/model/callbacks/loggers/trainer, then fit and/or test.

    ``cfg.train`` fits (resuming from ``cfg.ckpt_path`` if given, which continues the global
    step); ``cfg.test`` evaluates (the fitted weights, or ``cfg.ckpt_path`` without training).
    All metrics the module logged are written to ``<output_dir>/metrics.json`` and returned.
    """
    os.environ.setdefault("WANDB_MODE", "offline")
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "high"))
    ckpt_path = _check_ckpt(cfg.get("ckpt_path"))

    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    model: pl.LightningModule = hydra.utils.instantiate(cfg.model)
    callbacks = _instantiate_group(cfg.get("callbacks"))
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
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics.update(trainer.callback_metrics)
    if cfg.get("test", False):
        # After fit the in-memory weights are the final (EMA if enabled) ones; in eval-only
        # mode the checkpoint is loaded here.
        trainer.test(
            model, datamodule=datamodule, ckpt_path=None if cfg.get("train", True) else ckpt_path
        )
        metrics.update(trainer.callback_metrics)

    result = _scalar_metrics(metrics)
    if trainer.is_global_zero:
        (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        log.info("metrics written to %s", out_dir / "metrics.json")
    return result


def load_module(cfg: DictConfig, device: str | torch.device = "cpu") -> pl.LightningModule:
    """Instantiate ``cfg.model`` and load the weights of ``cfg.ckpt_path`` (for sample/export).

    The checkpoint's ``state_dict`` holds the EMA weights when EMA was enabled in training.
    """
    path = _check_ckpt(cfg.get("ckpt_path"))
    if path is None:
        raise ValueError("ckpt_path is required: pass CKPT=<run dir>/checkpoints/last.ckpt")
    model: pl.LightningModule = hydra.utils.instantiate(cfg.model)
    state = torch.load(path, map_location="cpu", weights_only=False)
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as e:
        raise RuntimeError(
            f"{path} does not fit the configured model ({e}). Pass the same experiment/model "
            "overrides the checkpoint was trained with (make sample/eval reuse them from the "
            "run's .hydra/overrides.yaml when the checkpoint is inside its run directory)."
        ) from e
    return model.to(device).eval()
