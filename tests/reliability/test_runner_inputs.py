"""Bad inputs to the shared runner (every package's train/eval/sample goes through it), on the toy
pipeline: each must fail with a message naming the key or file and a fix, and leave the
checkpoint it was given untouched. Also: init_from, multi-seed evaluation, RESUME=.

Extend by adding a row to a parametrize list: (overrides, expected exception, words the message
must contain).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from motioncore.train import CheckpointError, ConfigValueError, run
from motioncore.train.runner import validate_config

REPO = Path(__file__).resolve().parents[2]
TOY = REPO / "tests" / "shared" / "toy"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short toy run shared by the module: its last.ckpt (read-only for the tests)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    sys.path.insert(0, str(TOY))
    out = tmp_path_factory.mktemp("trained")
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(TOY / "configs"), version_base="1.3"):
        cfg = compose("toy", [f"paths.output_dir={out}", "trainer.max_steps=20", "test=false"])
    GlobalHydra.instance().clear()
    run(cfg)
    return out / "checkpoints" / "last.ckpt"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cfg(compose, out, *overrides):
    return compose(TOY / "configs", "toy", [f"paths.output_dir={out}", *overrides])


@pytest.mark.parametrize(
    "override, words",
    [
        ("trainer.max_steps=abc", ["trainer.max_steps", "integer"]),
        ("trainer.max_steps=0", ["trainer.max_steps", "e.g."]),
        ("data.batch_size=eight", ["data.batch_size", "e.g."]),
        ("data.batch_size=0", ["data.batch_size", "e.g."]),
        ("seeds=0", ["seeds", "e.g."]),
    ],
)
def test_out_of_range_numbers_are_named(compose, toy_pipeline, tmp_path, override, words):
    with pytest.raises(ConfigValueError) as e:
        run(_cfg(compose, tmp_path, override))
    assert all(w in str(e.value) for w in words), e.value
    assert not (tmp_path / "checkpoints").exists()


def test_unwritable_run_directory_is_named(compose, toy_pipeline, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigValueError, match="not writable.*hydra.run.dir="):
        run(_cfg(compose, blocker / "run"))


def test_wandb_online_without_network_says_use_offline(
    compose, toy_pipeline, tmp_path, monkeypatch
):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(ConnectionError, match="WANDB_MODE=offline.*wandb sync"):
        run(_cfg(compose, tmp_path, "logger=wandb"))


def _foreign(path: Path, trained: Path) -> Path:
    state = torch.load(trained, weights_only=True)
    state["motioncore"] = {"package": "stdiff", "model": "stdiff.module.STDiffModule"}
    torch.save(state, path)
    return path


def _write(data):
    def make(path: Path, trained: Path) -> Path:
        path.write_bytes(data(trained))
        return path

    return make


BAD_FILES = {
    "empty": (_write(lambda _: b""), ["empty file"]),
    "random": (_write(lambda _: bytes(range(256)) * 4), ["not a readable"]),
    "truncated": (
        _write(lambda t: t.read_bytes()[: t.stat().st_size // 2]),
        ["not a readable"],
    ),
    "other_package": (_foreign, ["written by stdiff", "MODEL=stdiff"]),
    "no_state_dict": (lambda p, _: torch.save({"weights": [1, 2]}, p) or p, ["no 'state_dict'"]),
    "pickled_code": (
        lambda p, _: torch.save({"state_dict": {}, "obj": Path("x")}, p) or p,
        ["Python objects"],
    ),
}


@pytest.mark.parametrize("role", ["ckpt_path", "init_from"])
@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_checkpoint_files_are_named(compose, toy_pipeline, tmp_path, trained, role, kind):
    make, words = BAD_FILES[kind]
    bad = make(tmp_path / f"{kind}.ckpt", trained)
    before = _digest(bad)
    with pytest.raises(CheckpointError) as e:
        run(_cfg(compose, tmp_path / "run", f"{role}={bad}"))
    message = str(e.value)
    assert f"{role}={bad}" in message and all(w in message for w in words), message
    assert _digest(bad) == before


def test_resume_with_a_conflicting_architecture_key_is_refused_by_name(
    compose, toy_pipeline, tmp_path, trained
):
    before = _digest(trained)
    with pytest.raises(CheckpointError, match=r"model\.hidden=32 \(checkpoint: 64\).*init_from"):
        run(_cfg(compose, tmp_path, f"ckpt_path={trained}", "model.hidden=32"))
    assert _digest(trained) == before


def test_ckpt_path_and_init_from_together_are_refused(compose, toy_pipeline, tmp_path, trained):
    with pytest.raises(ConfigValueError, match="ckpt_path.*init_from.*one of them"):
        run(_cfg(compose, tmp_path, f"ckpt_path={trained}", f"init_from={trained}"))


def test_checkpoints_are_read_weights_only(monkeypatch, trained):
    from motioncore.train import loading

    seen = []
    real = torch.load
    monkeypatch.setattr(
        loading.torch, "load", lambda *a, **k: seen.append(k.get("weights_only")) or real(*a, **k)
    )
    assert "state_dict" in loading.read_checkpoint(trained)
    assert seen == [True]


def test_init_from_loads_weights_with_fresh_step_and_reports_keys(
    compose, toy_pipeline, tmp_path, trained, caplog
):
    # an importer-style package checkpoint, with one key the toy does not have
    source = torch.load(trained, weights_only=True)["state_dict"]
    imported = tmp_path / "imported.ckpt"
    torch.save(
        {
            "state_dict": {**source, "net.extra.weight": torch.zeros(2)},
            "hyper_parameters": {"hidden": 64},
            "pytorch-lightning_version": "2.4.0",
        },
        imported,
    )
    out = tmp_path / "finetune"
    with caplog.at_level("INFO"):
        run(_cfg(compose, out, f"init_from={imported}", "model.lr=0", "trainer.max_steps=2"))
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 2  # fresh step: the source run was at 20
    assert all(torch.equal(state["state_dict"][k], v) for k, v in source.items())  # lr=0
    assert "net.extra.weight" in caplog.text and "unused" in caplog.text


def test_multi_seed_eval_writes_mean_std_ci95_and_paired_delta(
    compose, toy_pipeline, tmp_path, trained
):
    one = run(_cfg(compose, tmp_path / "one", "train=false", f"ckpt_path={trained}"))
    three = run(_cfg(compose, tmp_path / "three", "train=false", f"ckpt_path={trained}", "seeds=3"))
    assert "test/mse/std" not in one
    for m in ("test/mse", "baseline/mse", "delta/mse"):
        assert {m, f"{m}/std", f"{m}/ci95"} <= three.keys()
    assert three["test/mse/std"] > 0  # the rounds sample different noise
    assert three["delta/mse"] == pytest.approx(three["test/mse"] - three["baseline/mse"])
    assert three["test/mse/ci95"] == pytest.approx(4.302653 * three["test/mse/std"] / 3**0.5)
    saved = json.loads((tmp_path / "three" / "metrics.json").read_text())
    assert saved["delta/mse/ci95"] == pytest.approx(three["delta/mse/ci95"])
    assert one["test/mse"] == pytest.approx(
        run(_cfg(compose, tmp_path / "again", "train=false", f"ckpt_path={trained}"))["test/mse"]
    )


def _dry_run(*args):
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "run.py"), "--dry-run", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return done.returncode, done.stdout + done.stderr


def test_make_train_resume_carries_the_run_overrides_and_args_win(tmp_path):
    run_dir = tmp_path / "2026-01-01_00-00-00"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run_dir / ".hydra" / "overrides.yaml").write_text(
        "- experiment=quickstart\n- trainer.max_steps=50\n- hydra.run.dir=/old\n- model.hidden=8\n"
    )
    rc, out = _dry_run(
        "train", "--model", "text-to-pose", "--resume", str(run_dir), "--", "trainer.max_steps=90"
    )
    assert rc == 0, out
    cmd = out.splitlines()[0]
    assert "model.hidden=8" in cmd and "hydra.run.dir=/old" not in cmd
    assert f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}" in cmd
    assert cmd.index("trainer.max_steps=50") < cmd.index("trainer.max_steps=90")


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--model", "imf", "--resume", "/no/such/run"], ["RESUME=", "latest"]),
        (["eval", "--model", "imf", "--ckpt", "/no/such.ckpt"], ["CKPT="]),
        (["eval", "--model", "imf", "--ckpt", str(REPO / "Makefile"), "--seeds", "0"], ["SEEDS=3"]),
    ],
)
def test_runner_arguments_are_named(args, words):
    rc, out = _dry_run(*args)
    assert rc != 0 and all(w in out for w in words), out


@pytest.mark.parametrize("command", ["eval", "sample", "train"])
def test_a_fine_tuned_run_evaluates_and_resumes_without_its_init_from(tmp_path, command):
    """The run's recorded init_from is not carried and the finetune experiment's required
    init_from is set to null: with CKPT the weights come from the checkpoint (this used to stop
    with "ckpt_path and init_from are both set")."""
    run_dir = tmp_path / "ft"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run_dir / ".hydra" / "overrides.yaml").write_text(
        "- experiment=finetune\n- init_from=/pretrain/last.ckpt\n"
    )
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    rc, out = _dry_run(command, "--model", "text-to-pose", "--ckpt", str(ckpt))
    assert rc == 0, out
    overrides = out.splitlines()[0].split(f"text_to_pose.{command} ", 1)[1].split()
    assert "experiment=finetune" in overrides and "init_from=/pretrain/last.ckpt" not in overrides
    sys.path.insert(0, str(REPO / "tools"))
    import run as run_tool

    cfg = run_tool.compose("text-to-pose", command, overrides)
    assert cfg.init_from is None and cfg.ckpt_path == str(ckpt)
    validate_config(cfg)
