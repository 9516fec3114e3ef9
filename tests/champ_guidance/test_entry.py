"""Config: the original command-line flags as Hydra keys; smoke train + eval + sample through the entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import champ_guidance.train  # noqa: F401  (registers the experiments:// config source)


@pytest.fixture
def config_dir(repo_root):
    return repo_root / "packages" / "champ-guidance" / "src" / "champ_guidance" / "configs"


def test_command_line_flags_map_onto_the_runner(compose, config_dir, monkeypatch, repo_root):
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(repo_root / "experiments"))
    flags = [
        "train_data_dir=/data/dance",
        "resolution=64",
        "sequence_length=8",
        "train_batch_size=2",
        "num_train_epochs=3",
        "learning_rate=2e-5",
        "guidance_types=[music,pose]",
        "guidance_input_channels=[1,134]",
        "guidance_embedding_channels=128",
        "save_steps=77",
        "gradient_accumulation_steps=4",
        "mixed_precision=bf16",
        "lr_warmup_steps=9",
        "lr_scheduler=cosine",
        "max_grad_norm=0.5",
        "gradient_checkpointing=true",
        "num_workers=3",
    ]
    cfg = compose(config_dir, "train", ["experiment=quickstart", *flags, "output_dir=/tmp/run"])
    assert cfg.data.train_data_dir == "/data/dance" and cfg.data.batch_size == 2
    assert cfg.data.resolution == 64 and cfg.model.net.resolution == 64
    assert cfg.data.sequence_length == 8 and cfg.data.num_workers == 3
    assert cfg.trainer.max_epochs == 3 and cfg.trainer.accumulate_grad_batches == 4
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.gradient_clip_val == 0.5
    assert cfg.model.learning_rate == 2e-5 and cfg.model.lr_warmup_steps == 9
    assert cfg.model.lr_scheduler == "cosine"
    assert list(cfg.model.net.guidance_input_channels) == [1, 134]
    assert cfg.model.net.guidance_embedding_channels == 128 and cfg.model.net.gradient_checkpointing
    assert cfg.callbacks.model_checkpoint.every_n_train_steps == 77
    with pytest.raises(Exception, match="mixed_precision='fp8'"):
        _ = compose(config_dir, "train", ["mixed_precision=fp8"]).trainer.precision


@pytest.mark.parametrize("native", [True, False])
def test_mixed_precision_auto_uses_bf16_only_where_native(compose, config_dir, monkeypatch, native):
    """auto (the quickstart's setting) must not pick emulated bf16, which is slower than fp32."""
    import champ_guidance

    monkeypatch.setattr(champ_guidance, "native_bf16", lambda: native)
    cfg = compose(config_dir, "train", ["experiment=quickstart", "mixed_precision=auto"])
    assert cfg.trainer.precision == ("bf16-mixed" if native else "32-true")


def test_unknown_key_is_rejected(compose, config_dir):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="not_a_flag"):
        compose(config_dir, "train", ["model.not_a_flag=1"])


@pytest.mark.slow
def test_smoke_train_eval_sample(tmp_path, repo_root):
    env = {
        **os.environ,
        "MOTIONCORE_EXPERIMENTS": str(repo_root / "experiments"),
        "WANDB_MODE": "offline",
    }
    tiny = [
        "experiment=quickstart",
        "logger=none",
        f"paths.data_dir={tmp_path}/data",
        "data.synthetic.train_videos=2",
        "data.synthetic.test_videos=1",
        "data.synthetic.num_frames=24",
        "data.eval_sequence_length=12",
        "data.max_eval_clips=1",
        "model.num_inference_steps=2",
        "trainer.enable_progress_bar=false",
    ]

    def run(module, *args):
        proc = subprocess.run(
            [sys.executable, "-m", module, *tiny, *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    run(
        "champ_guidance.train",
        f"output_dir={tmp_path}/train",
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
    )
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())
    for key in ("psnr", "ssim", "l1", "beat_alignment"):
        assert f"test/{key}" in metrics and f"baseline/{key}" in metrics
    assert (tmp_path / "train" / "samples" / "test_000.gif").is_file()
    run("champ_guidance.eval", f"output_dir={tmp_path}/eval", f"ckpt_path={ckpt}")
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["baseline/psnr"] == pytest.approx(metrics["baseline/psnr"])
    run(
        "champ_guidance.sample",
        f"output_dir={tmp_path}/sample",
        f"ckpt_path={ckpt}",
        "context_window=5",
        "context_overlap=2",
    )
    assert {p.name for p in (tmp_path / "sample").glob("animation.*")} >= {
        "animation.mp4",
        "animation.gif",
    }
    # animate from files: a reference image, a pose folder and a music file
    test_root = next((tmp_path / "data" / "champ-guidance").glob("*/test"))
    run(
        "champ_guidance.sample",
        f"output_dir={tmp_path}/files",
        f"ckpt_path={ckpt}",
        f"reference_image={test_root}/reference_images/dance_000.png",
        f"pose_dir={test_root}/poses/dance_000",
        f"music={test_root}/audio/dance_000.wav",
        "num_frames=9",
        "context_window=4",
        "context_overlap=1",
    )
    assert (tmp_path / "files" / "animation.mp4").is_file()
    with pytest.raises(AssertionError, match="pose_dir"):
        run(
            "champ_guidance.sample",
            f"output_dir={tmp_path}/bad",
            f"ckpt_path={ckpt}",
            f"reference_image={test_root}/reference_images/dance_000.png",
        )
