"""Smoke train + eval + sample (text, keyframes, timeline) through the real entry points."""

from __future__ import annotations

import json

import numpy as np
import pytest

TINY = [
    "experiment=quickstart", "trainer.max_steps=3", "logger=none", "data.builtin.n_motions=10",
    "data.max_len=40", "data.batch_size=4", "data.eval_batch_size=4", "data.min_seconds=1.0",
    "diffusion.num_steps=3", "diffusion.denoiser.latent_dim=32", "diffusion.denoiser.ff_size=64",
    "diffusion.denoiser.num_layers=1", "model.evaluation.n_media=1", "trainer.check_val_every_n_epoch=1",
]  # fmt: skip


@pytest.mark.slow
def test_train_eval_sample_smoke(run_entry, tmp_path):
    data = f"paths.data_dir={tmp_path / 'data'}"
    run_entry("train", *TINY, f"hydra.run.dir={tmp_path / 'train'}", data)
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())
    for key in ("inbetween_mpjpe_m", "foot_skating_ratio", "keyframe_error_m", "traj_error_m",
                "traj_fail_20cm", "traj_fail_50cm", "transition_jerk"):  # fmt: skip
        assert f"test/{key}" in metrics and f"baseline/{key}" in metrics
    assert metrics["baseline/keyframe_error_m"] == 0.0
    assert "train/keyframe_ratio" in metrics and "train/non_keyframe_loss" in metrics
    assert list((tmp_path / "train" / "samples").glob("*.gif"))
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"

    run_entry("eval", *TINY, f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}", data)
    assert (
        json.loads((tmp_path / "eval" / "metrics.json").read_text())["test/inbetween_mpjpe_m"] > 0
    )

    kf = np.full((30, 22, 3), np.nan, np.float32)
    gt = np.load(sorted((tmp_path / "train" / "samples").glob("*_joints.npy"))[0])
    kf[[0, 29]] = gt[[0, min(29, len(gt) - 1)], :22]
    np.save(tmp_path / "kf.npy", kf)
    timeline = tmp_path / "tl.txt"
    timeline.write_text(
        "a person walks forward # 0 # 2 # legs\na person waves with the right hand # 0.5 # 1.5 # right arm\n"
        "\na person jumps in place # 0 # 1.5\n"  # a second timeline (STMC's multi-timeline files)
    )
    out = tmp_path / "sample"
    run_entry(
        "sample",
        *TINY,
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={out}",
        data,
        f"keyframes={tmp_path / 'kf.npy'}",
    )
    for suffix in ("_joints.npy", "_feats.npy", ".bvh", ".gif"):
        assert (out / f"sample_00{suffix}").is_file()
    assert np.load(out / "sample_00_joints.npy").shape == (30, 24, 3)
    report = json.loads((out / "keyframe_report.json").read_text())
    assert (
        report[0]["n_keyframes"] == 2 and report[0]["root_error_m"] < 0.01
    )  # XY exact; height smoothed (smooth_sigma)
    assert (out / "sample_00.bvh").read_text().startswith("HIERARCHY")
    run_entry(
        "sample",
        *TINY,
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={tmp_path / 'tl'}",
        data,
        f"timeline={timeline}",
        f"keyframes={tmp_path / 'kf.npy'}",
    )
    assert np.load(tmp_path / "tl" / "timeline_00_feats.npy").shape == (40, 205)
    assert np.load(tmp_path / "tl" / "timeline_01_joints.npy").shape == (30, 24, 3)
    report = json.loads((tmp_path / "tl" / "keyframe_report.json").read_text())
    assert [r["name"] for r in report] == ["timeline_00", "timeline_01"]
    assert all(r["n_keyframes"] == 2 and r["root_error_m"] < 0.01 for r in report)


def test_bad_keyframe_files_are_clear_errors(tmp_path):
    from stmc_keyframe.sample import read_keyframes

    np.save(tmp_path / "bad.npy", np.zeros((5, 3)))
    with pytest.raises(ValueError, match="22 or 24"):
        read_keyframes(tmp_path / "bad.npy")
    (tmp_path / "bad.json").write_text('{"frames": []}')
    with pytest.raises(ValueError, match="keyframes"):
        read_keyframes(tmp_path / "bad.json")
    (tmp_path / "ok.json").write_text(
        json.dumps({"keyframes": [{"frame": 3, "joints": [[0, 0, 1]] * 22}]})
    )
    joints, given = read_keyframes(tmp_path / "ok.json")
    assert joints.shape == (4, 22, 3) and given.tolist() == [False, False, False, True]
    with pytest.raises(FileNotFoundError):
        read_keyframes(tmp_path / "missing.npy")
