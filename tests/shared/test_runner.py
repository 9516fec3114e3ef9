"""End-to-end proof of motioncore.train.run with the toy denoiser: train, resume, eval, NaN."""

from __future__ import annotations

import json

import pytest
import torch

from motioncore.train import NonFiniteLoss, run


def _cfg(compose, toy, out, *overrides):
    return compose(toy / "configs", "toy", [f"paths.output_dir={out}", *overrides])


def test_train_writes_checkpoints_metrics_and_beats_baseline(compose, toy_pipeline, tmp_path):
    metrics = run(_cfg(compose, toy_pipeline, tmp_path, "trainer.max_steps=150"))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    assert "train/loss" in saved and "val/loss" in saved
    assert saved["test/mse"] < 0.5 * saved["baseline/mse"]


def test_resume_continues_global_step(compose, toy_pipeline, tmp_path):
    first = tmp_path / "first"
    run(_cfg(compose, toy_pipeline, first, "trainer.max_steps=20", "test=false"))
    ckpt = first / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=False)["global_step"] == 20
    second = tmp_path / "second"
    run(
        _cfg(
            compose, toy_pipeline, second, "trainer.max_steps=30", "test=false", f"ckpt_path={ckpt}"
        )
    )
    assert torch.load(second / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 30


def test_eval_only_loads_checkpoint(compose, toy_pipeline, tmp_path):
    run(_cfg(compose, toy_pipeline, tmp_path / "t", "trainer.max_steps=100", "test=false"))
    ckpt = tmp_path / "t" / "checkpoints" / "last.ckpt"
    trained = run(_cfg(compose, toy_pipeline, tmp_path / "e", "train=false", f"ckpt_path={ckpt}"))
    untrained = run(_cfg(compose, toy_pipeline, tmp_path / "u", "train=false"))
    assert trained["test/mse"] < untrained["test/mse"]
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["test/mse"] == pytest.approx(
        trained["test/mse"]
    )


def test_missing_checkpoint_is_a_clear_error(compose, toy_pipeline, tmp_path):
    with pytest.raises(FileNotFoundError, match="CKPT="):
        run(_cfg(compose, toy_pipeline, tmp_path, "ckpt_path=/nope/last.ckpt"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(compose, toy_pipeline, tmp_path):
    cfg = _cfg(
        compose,
        toy_pipeline,
        tmp_path,
        "model.nan_at_step=12",
        "callbacks.model_checkpoint.every_n_train_steps=5",
    )
    with pytest.raises(NonFiniteLoss, match="global step 12"):
        run(cfg)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 10
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())


def test_ema_weights_are_saved_and_used(compose, toy_pipeline, tmp_path):
    run(
        _cfg(
            compose,
            toy_pipeline,
            tmp_path,
            "trainer.max_steps=30",
            "test=false",
            "callbacks.ema.enabled=true",
            "callbacks.ema.decay=0.9",
        )
    )
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert "current_model_state" in state
    ema, raw = state["state_dict"], state["current_model_state"]
    assert any(not torch.equal(ema[k], raw[k]) for k in raw if raw[k].is_floating_point())


def test_unknown_config_key_is_rejected(compose, toy_pipeline, tmp_path):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="not_a_knob"):
        _cfg(compose, toy_pipeline, tmp_path, "model.not_a_knob=1")
