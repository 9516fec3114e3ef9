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
    "logger=none", "trainer.max_steps=3",
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


@pytest.fixture(scope="module")
def finetuned(repo_root, tmp_path_factory):
    """Pretrain (no text) for 3 steps, then fine-tune with text from its weights for 3 steps."""
    tmp = tmp_path_factory.mktemp("entry")
    data = f"paths.data_dir={tmp / 'data'}"
    _run(repo_root, "text_to_pose.train", *TINY, "experiment=pretrain", data,
         f"hydra.run.dir={tmp / 'pretrain'}")  # fmt: skip
    pretrained = tmp / "pretrain" / "checkpoints" / "last.ckpt"
    assert pretrained.is_file()
    _run(repo_root, "text_to_pose.train", *TINY, "experiment=finetune", data,
         f"init_from={pretrained}", f"hydra.run.dir={tmp / 'train'}")  # fmt: skip
    return tmp, data


def test_pretrain_finetune_eval_sample(repo_root, finetuned, tokenizer):
    tmp_path, data = finetuned
    pretrain_config = (tmp_path / "pretrain" / ".hydra" / "config.yaml").read_text()
    assert "pretrain: true" in pretrain_config
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    trained = json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert {"train/loss", "val/dtw_mje", "test/dtw_mje", "baseline/dtw_mje"} <= set(trained)

    _run(repo_root, "text_to_pose.eval", *TINY, "experiment=quickstart", data,
         f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}")  # fmt: skip
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
    _run(repo_root, "text_to_pose.sample", *TINY, "experiment=quickstart", data, f"ckpt_path={ckpt}", f"text={text}",
         f"first_pose={first}", "steps=5", "guidance=2.5", "length=17",
         f"hydra.run.dir={tmp_path / 'sample'}")  # fmt: skip
    generated = read_pose(tmp_path / "sample" / "sample.pose")
    assert generated.data.shape == (17, 75, 3)
    assert (tmp_path / "sample" / "sample.gif").stat().st_size > 0


def test_three_sign_composition_from_a_reduced_holistic_first_pose(repo_root, finetuned,
                                                                   tokenizer):  # fmt: skip
    from pose_format import Pose

    from text_to_pose.data.holistic import BODY, RIGHT_HAND

    tmp_path, data = finetuned
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    source = next((tmp_path / "data").rglob("test_*.pose"))
    pose = Pose.read(source.read_bytes())
    reduced = pose.get_components([BODY, RIGHT_HAND], {BODY: ["LEFT_SHOULDER", "RIGHT_SHOULDER",
                                                              "LEFT_ELBOW", "RIGHT_ELBOW"]})  # fmt: skip
    first = tmp_path / "reduced.pose"
    with open(first, "wb") as f:
        reduced.write(f)
    signs = [tokenizer.from_names(n) for n in (["hamflathand", "hamextfingeru", "hamchest"],
                                               ["hamfist", "hampalmd", "hamnose"],
                                               ["hamfinger2", "hamchin", "hammoveu"])]  # fmt: skip
    _run(repo_root, "text_to_pose.sample", *TINY, "experiment=quickstart", data, f"ckpt_path={ckpt}",
         f"texts={'|'.join(signs)}", f"first_pose={first}", "steps=3", "name=three",
         f"hydra.run.dir={tmp_path / 'compose'}")  # fmt: skip
    ranges = json.loads((tmp_path / "compose" / "three.signs.json").read_text("utf-8"))
    assert [s["text"] for s in ranges["signs"]] == signs
    assert ranges["signs"][0]["start"] == 0
    assert all(a["end"] == b["start"] for a, b in zip(ranges["signs"], ranges["signs"][1:]))
    generated = read_pose(tmp_path / "compose" / "three.pose")
    assert len(generated.data) == ranges["signs"][-1]["end"]
    assert (tmp_path / "compose" / "three.gif").stat().st_size > 0


def test_imported_upstream_checkpoint_evaluates(repo_root, finetuned, tmp_path):
    import torch

    from text_to_pose.importer import import_checkpoint

    _, data = finetuned
    fixture = torch.load(repo_root / "tests/fixtures/upstream/text-to-pose/tiny.pt",
                         weights_only=True)  # fmt: skip
    torch.save({"state_dict": fixture["state_dict"]}, tmp_path / "upstream.ckpt")
    ckpt = import_checkpoint(tmp_path / "upstream.ckpt", tmp_path / "imported.ckpt", heads=2)
    sizes_free = [a for a in TINY if not a.startswith("model.")]
    _run(repo_root, "text_to_pose.eval", *sizes_free, *ckpt["hydra_overrides"], data,
         "experiment=quickstart", f"ckpt_path={tmp_path / 'imported.ckpt'}",
         f"hydra.run.dir={tmp_path / 'eval'}")  # fmt: skip
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert np.isfinite(metrics["test/dtw_mje"])
