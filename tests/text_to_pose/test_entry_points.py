"""Smoke train + eval + sample through the real console-script modules, on a tiny config."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from text_to_pose.data.pose_io import read_pose

TINY = [
    "experiment=quickstart", "logger=none", "trainer.max_steps=3",
    "trainer.check_val_every_n_epoch=1", "trainer.enable_progress_bar=false",
    "data.synthetic.n_train=16", "data.synthetic.n_val=4", "data.synthetic.n_test=4",
    "data.batch_size=8", "data.eval_batch_size=4", "model.hidden=32", "model.heads=2",
    "model.ff=64", "model.text_layers=1", "model.pose_layers=1", "model.max_frames=96",
    "model.media_samples=2",
]  # fmt: skip


def _run(repo_root, module: str, *args: str) -> None:
    env = {**os.environ, "MOTIONCORE_EXPERIMENTS": str(repo_root / "experiments"),
           "WANDB_MODE": "offline"}  # fmt: skip
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=repo_root, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_train_eval_sample(repo_root, tmp_path, tokenizer):
    data = f"paths.data_dir={tmp_path / 'data'}"
    _run(repo_root, "text_to_pose.train", *TINY, data, f"hydra.run.dir={tmp_path / 'train'}")
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    trained = json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert {"train/loss", "val/dtw_mje", "test/dtw_mje", "baseline/dtw_mje"} <= set(trained)

    _run(repo_root, "text_to_pose.eval", *TINY, data, f"ckpt_path={ckpt}",
         f"hydra.run.dir={tmp_path / 'eval'}")  # fmt: skip
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    keys = ("dtw_mje", "ndtw_mje", "length_error_frames")
    assert {f"{p}/{k}" for p in ("test", "baseline") for k in keys} <= set(metrics)
    assert all(np.isfinite(metrics[f"test/{k}"]) and metrics[f"test/{k}"] >= 0 for k in keys)
    assert metrics["test/dtw_mje"] == pytest.approx(
        trained["test/dtw_mje"], rel=1e-4
    )  # same weights
    assert list((tmp_path / "eval" / "samples").glob("*.gif"))

    first = next((tmp_path / "data").rglob("test_*.pose"))
    text = tokenizer.from_names(["hamfinger2", "hamextfingerul", "hampalml", "hamchin",
                                 "hamcircleo", "hamrepeatfromstart"])  # fmt: skip
    _run(repo_root, "text_to_pose.sample", *TINY, data, f"ckpt_path={ckpt}", f"text={text}",
         f"first_pose={first}", "steps=5", "guidance=2.5", "length=17",
         f"hydra.run.dir={tmp_path / 'sample'}")  # fmt: skip
    generated = read_pose(tmp_path / "sample" / "sample.pose")
    assert generated.data.shape == (17, 75, 3)
    assert (tmp_path / "sample" / "sample.gif").stat().st_size > 0
