"""SIGTERM under 2-process CPU DDP (gloo) on the toy pipeline: both ranks stop at the same step,
rank 0 saves last.ckpt there, the run exits with 143 and leaves no process behind, and a CKPT=
resume (DDP again) continues from that step with the ranks in agreement."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TOY = REPO / "tests" / "shared" / "toy" / "toy_train.py"
PLUGINS = REPO / "tests" / "integration" / "plugins"


def _ddp_toy(run_dir: Path, ranks: Path, *overrides: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
        "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        str(TOY),
        "trainer=ddp_cpu",
        f"hydra.run.dir={run_dir}",
        "test=false",
        "data.batch_size=4",
        "callbacks.model_checkpoint.every_n_epochs=100000",
        "callbacks.model_checkpoint.last_every_minutes=null",
        "+callbacks.rank_dump._target_=rank_dump.RankDump",
        f"+callbacks.rank_dump.dirpath={ranks}",
        *overrides,
    ]
    # own session: the ranks are one process group, so "every rank" and leftovers are checkable
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen, timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(
            f"the DDP run hung (no exit within {timeout} s):\n{proc.communicate()[0][-3000:]}"
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return out
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"a rank was still running 60 s after rank 0 exited:\n{out[-3000:]}")


def _step(ckpt: Path) -> int:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]


@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.parametrize("target", ["rank0", "every_rank"])
def test_sigterm_under_ddp_saves_stops_every_rank_and_resumes(target, tmp_path):
    run_dir, ranks = tmp_path / "run", tmp_path / "ranks"
    proc = _ddp_toy(run_dir, ranks, "trainer.max_steps=10000000")
    metrics = run_dir / "csv" / "version_0" / "metrics.csv"  # rows appear once training runs
    deadline = time.monotonic() + 300
    while not metrics.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"training did not start:\n{proc.communicate()[0][-3000:]}")
        time.sleep(0.2)
    if target == "rank0":  # `kill <pid>` of the launching process
        proc.send_signal(signal.SIGTERM)
    else:  # SLURM signals every task of the step
        os.killpg(proc.pid, signal.SIGTERM)
    out = _finish(proc, timeout=120)
    assert proc.returncode == 143, out[-3000:]

    last = run_dir / "checkpoints" / "last.ckpt"
    step = _step(last)
    stops = {r: (ranks / f"exception_rank{r}.txt").read_text().strip() for r in (0, 1)}
    assert stops == {r: f"SIGTERMException at global step {step}" for r in (0, 1)}, stops
    assert step > 0 and f"CKPT={last}" in out
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))

    resumed, resumed_ranks = tmp_path / "resumed", tmp_path / "resumed_ranks"
    proc = _ddp_toy(resumed, resumed_ranks, f"ckpt_path={last}", f"trainer.max_steps={step + 3}")
    out = _finish(proc, timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert _step(resumed / "checkpoints" / "last.ckpt") == step + 3
    a, b = (torch.load(resumed_ranks / f"params_rank{r}.pt") for r in (0, 1))
    assert torch.equal(a, b)
