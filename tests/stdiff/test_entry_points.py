"""Smoke train -> eval -> sample through the real console-script modules on a tiny config."""

from __future__ import annotations

import json
import os
import subprocess
import sys

TINY = [
    "experiment=quickstart",
    "logger=none",
    "trainer.max_steps=3",
    "trainer.val_check_interval=3",
    "trainer.enable_progress_bar=false",
    "data.generator.splits.train=2",
    "data.generator.splits.val=1",
    "data.generator.splits.test=1",
    "data.generator.length=8",
    "data.image_size=[16,16]",
    "model.STDiff.Diffusion.unet_config.sample_size=[16,16]",
    "model.STDiff.DiffNet.MotionEncoder.image_size=[16,16]",
    "data.eval_batch_size=2",
    "model.eval.num_samples=2",
    "model.eval.num_steps=2",
]


def _run(module: str, *args: str, cwd) -> None:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_train_eval_sample_entry_points(tmp_path, repo_root):
    data = f"paths.data_dir={tmp_path / 'data'}"
    _run("stdiff.train", *TINY, data, f"hydra.run.dir={tmp_path / 'train'}", cwd=repo_root)
    metrics = json.loads((tmp_path / "train/metrics.json").read_text())
    for key in (
        "train/loss",
        "val/loss",
        "test/psnr",
        "test/psnr_mean_of_n",
        "test/ssim",
        "test/diversity",
        "baseline/psnr",
        "baseline/ssim",
    ):
        assert key in metrics, key
    assert metrics["test/psnr"] >= metrics["test/psnr_mean_of_n"]
    ckpt = tmp_path / "train/checkpoints/last.ckpt"
    assert ckpt.is_file() and list((tmp_path / "train/samples").glob("test_*.png"))

    _run(
        "stdiff.eval",
        *TINY,
        data,
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={tmp_path / 'eval'}",
        cwd=repo_root,
    )
    again = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert set(again) >= {"test/psnr", "baseline/psnr"}
    assert again["baseline/psnr"] == metrics["baseline/psnr"]

    _run(
        "stdiff.sample",
        *TINY,
        data,
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={tmp_path / 'sample'}",
        "num_videos=1",
        "num_frames=3",
        "fps=2",
        "num_samples=2",
        "num_steps=2",
        cwd=repo_root,
    )
    out = tmp_path / "sample/samples"
    times = json.loads((out / "times.json").read_text())
    assert times["predicted"] == [2.5, 3.0, 3.5]
    import numpy as np

    assert np.load(out / "video_0.npy").shape == (2, 3, 1, 16, 16)
