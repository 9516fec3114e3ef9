"""The Makefile and the runner behave as the README says."""

from __future__ import annotations

import sys

import pytest

TARGETS = [
    "setup",
    "train",
    "eval",
    "sample",
    "sweep",
    "sweep-local",
    "bench",
    "test",
    "test-full",
    "lint",
    "clean",
]


def test_make_help_lists_every_target(run_cmd):
    out = run_cmd(["make", "help"]).stdout
    for target in TARGETS:
        assert f" {target} " in out.replace("\x1b[0m", " ").replace("\x1b[36m", " "), target
    for var in ["MODEL", "EXP", "ARGS", "CKPT", "GPUS", "NODES", "SWEEP"]:
        assert var in out


def test_unknown_model_fails_naming_valid_ones(run_cmd, repo_root):
    res = run_cmd(["make", "train", "MODEL=nope"])
    assert res.returncode != 0
    for name in ("stmc-keyframe", "stdiff", "text-to-pose", "champ-guidance", "imf"):
        assert name in res.stderr + res.stdout


def runner(run_cmd, *args):
    split = args.index("--") if "--" in args else len(args)
    return run_cmd([sys.executable, "tools/run.py", *args[:split], "--dry-run", *args[split:]])


def test_gpus_select_trainer_and_ddp(run_cmd):
    one = runner(run_cmd, "train", "--model", "text-to-pose", "--gpus", "1")
    assert "trainer=gpu" in one.stdout
    many = runner(run_cmd, "train", "--model", "text-to-pose", "--gpus", "4", "--nodes", "2")
    assert "trainer=ddp trainer.devices=4 trainer.num_nodes=2" in many.stdout
    ids = runner(run_cmd, "train", "--model", "text-to-pose", "--gpus", "0 2")
    assert "trainer.devices=2" in ids.stdout


def test_args_pass_through_verbatim_and_exp_is_checked(run_cmd):
    res = runner(
        run_cmd, "train", "--model", "imf", "--", "hydra.run.dir=/x", "trainer.max_steps=50"
    )
    assert res.stdout.rstrip().endswith("hydra.run.dir=/x trainer.max_steps=50")
    bad = runner(run_cmd, "train", "--model", "imf", "--exp", "nope")
    assert bad.returncode != 0 and "unknown EXP='nope'" in bad.stderr


def test_eval_reuses_the_training_runs_model_overrides(run_cmd, tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run / ".hydra" / "overrides.yaml").write_text(
        "- experiment=paper\n- model.hidden=8\n- trainer.max_steps=5\n- hydra.run.dir=/y\n"
    )
    res = runner(
        run_cmd, "eval", "--model", "text-to-pose", "--ckpt", str(run / "checkpoints" / "last.ckpt")
    )
    assert "experiment=paper model.hidden=8" in res.stdout
    assert "max_steps" not in res.stdout and "/y" not in res.stdout
    missing = runner(run_cmd, "eval", "--model", "text-to-pose")
    assert missing.returncode != 0 and "CKPT" in missing.stderr


@pytest.mark.parametrize("target", ["eval", "sample"])
def test_missing_checkpoint_is_a_clear_error(run_cmd, target):
    res = runner(run_cmd, target, "--model", "stdiff", "--ckpt", "/nope.ckpt")
    assert res.returncode != 0 and "does not exist" in res.stderr
