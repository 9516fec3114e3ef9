"""Preemption: SIGTERM (or SIGUSR1) saves last.ckpt at the step it stops and exits 143, so nothing
is lost; kill -9 loses at most one time interval; both resume (the SIGTERM'd run into the same
pinned run directory, without CKPT). Under DDP: tests/integration/test_ddp_preemption.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from motioncore.train import run
from motioncore.train.checkpoint_io import AtomicCheckpointIO

NO_EPOCH_SAVES = "callbacks.model_checkpoint.every_n_epochs=100000"


def _start(toy, run_dir, *overrides):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        str(toy / "toy_train.py"),
        f"hydra.run.dir={run_dir}",
        "trainer.max_steps=10000000",
        "test=false",
        "data.batch_size=4",
        NO_EPOCH_SAVES,
        *overrides,
    ]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_for(path, proc, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"training exited early ({proc.returncode}):\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.2)


def _step(ckpt) -> int:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]


def test_sigterm_saves_last_and_rerun_into_pinned_dir_resumes(compose, toy_pipeline, tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(toy_pipeline, run_dir, "callbacks.model_checkpoint.last_every_minutes=null")
    # the CSV logger writes its first rows once training is under way
    _wait_for(run_dir / "csv" / "version_0" / "metrics.csv", proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    step = _step(last)
    assert step > 0
    assert f"global step {step}" in out and f"CKPT={last}" in out
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))

    # the same pinned run directory again, no ckpt_path: it continues instead of last-v1.ckpt
    cfg = compose(
        toy_pipeline / "configs",
        "toy",
        [f"paths.output_dir={run_dir}", f"trainer.max_steps={step + 3}", "test=false"],
    )
    run(cfg)
    assert _step(last) == step + 3
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("last*")) == ["last.ckpt"]


def test_kill9_loses_at_most_one_interval_and_resumes(compose, toy_pipeline, tmp_path):
    interval_s = 1.2
    run_dir = tmp_path / "run"
    proc = _start(
        toy_pipeline, run_dir, f"callbacks.model_checkpoint.last_every_minutes={interval_s / 60}"
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    _wait_for(last, proc)
    time.sleep(3 * interval_s)
    proc.kill()
    killed_at = time.time()
    proc.communicate(timeout=60)
    # one interval, plus a step and a save on a loaded 2-core machine
    assert killed_at - last.stat().st_mtime <= interval_s + 3.0
    step = _step(last)
    assert step > 0
    # what a kill during a write leaves behind; the next start removes it
    leftover = run_dir / "checkpoints" / ".last.ckpt.x1y2z3.tmp"
    leftover.write_bytes(b"half a checkpoint")

    resumed = tmp_path / "resumed"
    cfg = compose(
        toy_pipeline / "configs",
        "toy",
        [
            f"paths.output_dir={resumed}",
            f"ckpt_path={last}",
            f"trainer.max_steps={step + 4}",
            "test=false",
        ],
    )
    run(cfg)
    assert _step(resumed / "checkpoints" / "last.ckpt") == step + 4
    assert not leftover.exists()


def test_checkpoint_file_gets_the_folder_permissions(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    folder.chmod(0o775)
    AtomicCheckpointIO().save_checkpoint({"x": torch.ones(1)}, folder / "last.ckpt")
    assert (folder / "last.ckpt").stat().st_mode & 0o777 == 0o664
    assert [p.name for p in folder.iterdir()] == ["last.ckpt"]


def test_sigusr1_mid_batch_saves_that_step_and_exits_143(
    compose, toy_pipeline, tmp_path, monkeypatch
):
    """SLURM's ``--signal=USR1@90``: the batch it lands in finishes, is saved, and fit stops."""
    import toy_pipeline as toy

    real = toy.ToyModule.training_step

    def signalled_at_step_3(self, batch, i):
        if self.global_step == 3:
            os.kill(os.getpid(), signal.SIGUSR1)
        return real(self, batch, i)

    monkeypatch.setattr(toy.ToyModule, "training_step", signalled_at_step_3)
    cfg = compose(
        toy_pipeline / "configs",
        "toy",
        [f"paths.output_dir={tmp_path}", "trainer.max_steps=50", "logger=none", "test=false"],
    )
    handler = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(SystemExit) as e:
        run(cfg)
    assert e.value.code == 143
    assert _step(tmp_path / "checkpoints" / "last.ckpt") == 4  # step 3's update is kept
    assert signal.getsignal(signal.SIGUSR1) is handler  # restored for whatever runs next
