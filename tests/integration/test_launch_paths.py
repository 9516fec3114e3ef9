"""Cluster launch paths without a cluster: `make sweep` against a stand-in `wandb` executable,
and the sbatch script of `make slurm` under bash -n, shellcheck and stand-in `srun`/`uv`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SWEEP = REPO / "experiments" / "text-to-pose" / "sweeps" / "lr_width_grid.yaml"

RECORDER = """#!{python}
import json, os, sys
record = {{"argv": sys.argv[1:], "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}}
if sys.argv[1:2] == ["sweep"]:
    record["spec"] = open(sys.argv[-1]).read()
    print("wandb: Run sweep agent with: wandb agent me/proj/abc123", file=sys.stderr)
with open({log!r}, "a") as f:
    f.write(json.dumps(record) + "\\n")
"""


def _stand_ins(tmp_path: Path, *names: str) -> tuple[dict[str, str], Path]:
    """A bin folder whose commands only record their argv (one JSON line each)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    for name in names:
        exe = bin_dir / name
        exe.write_text(RECORDER.format(python=sys.executable, log=str(log)))
        exe.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return env, log


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _sweep(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    env, log = _stand_ins(tmp_path, "wandb")
    env["WANDB_PROJECT"] = "proj"
    cmd = [sys.executable, "tools/sweep.py", "wandb", str(SWEEP), "--gpus", "0 1 2 3", *extra]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    return res, _calls(log) if log.is_file() else []


def test_sweep_starts_one_single_gpu_agent_per_gpu(tmp_path):
    res, calls = _sweep(tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    created, agents = calls[0], calls[1:]
    assert created["argv"][:3] == ["sweep", "--project", "proj"]
    command = yaml.safe_load(created["spec"])["command"]
    assert "trainer=gpu" in command and command.index("trainer=gpu") < command.index(
        "${args_no_hyphens}"
    )
    assert sorted(a["cuda"] for a in agents) == ["0", "1", "2", "3"]
    assert all(a["argv"] == ["agent", "me/proj/abc123"] for a in agents)


def test_ddp_sweep_starts_one_agent_seeing_every_gpu(tmp_path):
    res, calls = _sweep(tmp_path, "--ddp")
    assert res.returncode == 0, res.stderr[-2000:]
    created, agents = calls[0], calls[1:]
    command = yaml.safe_load(created["spec"])["command"]
    assert {"trainer=ddp", "trainer.devices=4"} <= set(command)
    assert [a["cuda"] for a in agents] == ["0,1,2,3"]


def test_sweep_without_a_server_says_what_to_do(tmp_path):
    env, _ = _stand_ins(tmp_path, "other")
    (tmp_path / "bin" / "wandb").write_text("#!/bin/sh\necho 'wandb: ERROR not logged in' >&2\n")
    (tmp_path / "bin" / "wandb").chmod(0o755)
    cmd = [sys.executable, "tools/sweep.py", "wandb", str(SWEEP), "--gpus", "0"]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "not logged in" in res.stderr and "make sweep-local" in res.stderr


@pytest.fixture
def sbatch(tmp_path) -> Path:
    sys.path.insert(0, str(REPO / "tools"))
    import slurm

    run_dir = tmp_path / "run dir"  # a space: every path in the script must be quoted
    script = tmp_path / "job.sbatch"
    script.write_text(slurm.render("text-to-pose", None, 2, 1, ["trainer.max_steps=5"], run_dir))
    return script


def test_sbatch_script_passes_bash_n_and_shellcheck(sbatch):
    assert subprocess.run(["bash", "-n", str(sbatch)], capture_output=True).returncode == 0
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    res = subprocess.run([shellcheck, str(sbatch)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout


def test_sbatch_script_runs_and_resumes_when_requeued(sbatch, tmp_path):
    env, log = _stand_ins(tmp_path, "srun", "uv", "scontrol")
    first = subprocess.run(["bash", str(sbatch)], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    srun = [c["argv"] for c in _calls(log) if "text_to_pose.train" in c["argv"]]
    assert len(srun) == 1 and not any(a.startswith("ckpt_path=") for a in srun[0])
    assert {"trainer=ddp", "trainer.devices=2", "trainer.max_steps=5"} <= set(srun[0])

    ckpt = tmp_path / "run dir" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"checkpoint")
    log.unlink()
    again = subprocess.run(["bash", str(sbatch)], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    srun = [c["argv"] for c in _calls(log) if "text_to_pose.train" in c["argv"]]
    assert srun[0][-1] == f"ckpt_path={ckpt}"
