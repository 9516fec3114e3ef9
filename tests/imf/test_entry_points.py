"""Configs compose; smoke train + eval + sample through the real entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

CONFIGS = Path(__file__).resolve().parents[2] / "packages" / "imf" / "src" / "imf" / "configs"


@pytest.mark.parametrize("name", ["train", "eval", "sample"])
@pytest.mark.parametrize("experiment", ["quickstart", "paper"])
def test_configs_compose(compose, repo_root, monkeypatch, name, experiment):
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(repo_root / "experiments"))
    from motioncore.train import hydra_entry  # noqa: F401  (registers experiments://)

    cfg = compose(CONFIGS, name, [f"experiment={experiment}", "paths.output_dir=/tmp/x"])
    assert cfg.model._target_ == "imf.module.IMFModule"
    assert cfg.model.generator.image_size == cfg.data.image_size
    assert cfg.package == "imf"
    if experiment == "paper":
        assert cfg.model.generator.feature_channels == [128, 256, 512, 512]
        assert (
            cfg.model.lambda_l1 == 10
            and cfg.model.lambda_perceptual == 10
            and cfg.model.lambda_gan == 1
        )


def test_unknown_key_is_rejected(compose, repo_root, monkeypatch):
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(repo_root / "experiments"))
    from motioncore.train import hydra_entry  # noqa: F401

    with pytest.raises(ConfigCompositionException, match="not_a_knob"):
        compose(CONFIGS, "train", ["model.not_a_knob=1", "paths.output_dir=/tmp/x"])


def _run(module: str, *args: str, cwd: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_smoke_train_eval_sample(repo_root, tmp_path, tiny_overrides):
    common = [
        *tiny_overrides,
        "logger=none",
        "trainer.check_val_every_n_epoch=1",
        f"paths.data_dir={tmp_path / 'data'}",
        "trainer.enable_progress_bar=false",
    ]
    run_dir = tmp_path / "train"
    _run(
        "imf.train",
        "experiment=quickstart",
        "trainer.max_steps=3",
        f"hydra.run.dir={run_dir}",
        *common,
        cwd=repo_root,
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in (
        "test/psnr",
        "test/ssim",
        "test/l1",
        "baseline/psnr",
        "baseline/l1",
        "test/bpp_q4",
        "test/psnr_q4",
        "test/ssim_q4",
        "baseline/bpp",
        "train/loss",
        "val/l1",
    ):
        assert key in metrics, key
    # the tokens cost bits on top of the reference frame; more Q, more bits
    assert metrics["baseline/bpp"] < metrics["test/bpp_q1"] < metrics["test/bpp_q32"]
    assert (run_dir / "samples" / "rate_distortion.png").stat().st_size > 1000
    curve = json.loads((run_dir / "samples" / "rate_distortion.json").read_text())
    assert [p["quality"] for p in curve["points"]] == [1, 2, 4, 8, 16, 32]
    assert sorted(p.name for p in (run_dir / "samples").glob("test_*")) == [
        "test_clip00.mp4",
        "test_clip00.png",
    ]
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()

    eval_dir = tmp_path / "eval"
    _run(
        "imf.eval",
        "experiment=quickstart",
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={eval_dir}",
        *common,
        cwd=repo_root,
    )
    evaluated = json.loads((eval_dir / "metrics.json").read_text())
    assert evaluated["test/l1"] == pytest.approx(metrics["test/l1"], rel=1e-4)

    sample_dir = tmp_path / "sample"
    _run(
        "imf.sample",
        "experiment=quickstart",
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={sample_dir}",
        "max_frames=4",
        *common,
        cwd=repo_root,
    )
    sampled = json.loads((sample_dir / "sample_metrics.json").read_text())
    assert sampled["frames"] == 4
    for name in ("reconstruction.mp4", "target_vs_reconstruction.mp4", "strip.png", "tokens.npz"):
        assert (sample_dir / name).is_file(), name
