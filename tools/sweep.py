"""W&B sweeps and their offline twin.

    python tools/sweep.py wandb SPEC [--gpus "0 1 2 3"] [--ddp] [-- overrides]   # make sweep
    python tools/sweep.py local SPEC [-- overrides]                              # make sweep-local

A spec is a standard W&B sweep file (program, method, metric, parameters, command with
${args_no_hyphens}). ``wandb`` creates the sweep and starts one agent per GPU (single-GPU
trials) or, with ``--ddp``, one agent whose trials run DDP over all listed GPUs; agents run in
this environment (no re-sync), and hyperparameters reach each trial on argv so DDP ranks see them.
``local`` runs the same trials with no W&B server: every grid point, or ``run_cap`` seeded random
draws (``bayes`` is drawn at random locally), one process per trial, and writes
``sweeps/<package>-<name>/results.csv`` and ``results.md`` sorted by the metric, best first. A
failed trial is recorded and the sweep goes on; when every trial failed, the sweep exits non-zero
with the first failure's error line.

Overrides after ``--`` (make's ARGS) are fixed in every trial, on top of the swept ones: a swept
key they name takes their value, so ``ARGS="trainer.max_steps=50"`` smoke-tests a sweep in
minutes. ``--seeds N`` (SEEDS=N) evaluates every trial with seeds 0..N-1 (the metric is then the
mean over the seeds). ``--check`` (CHECK=1) runs nothing: it composes every trial's config.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
REQUIRED = ("program", "method", "metric", "parameters", "command")
METHODS = ("grid", "random", "bayes")


def load_spec(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        sys.exit(
            f"error: SWEEP={path} does not exist (expected experiments/<package>/sweeps/<name>.yaml)"
        )
    spec = yaml.safe_load(path.read_text())
    validate(spec, path)
    return spec


def validate(spec: Any, path: Path) -> None:
    """Structural checks; key existence is checked against the composed config by the tests."""
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: a sweep spec is a mapping")
    missing = [k for k in REQUIRED if k not in spec]
    if missing:
        raise ValueError(f"{path}: missing required keys {missing}")
    if spec["method"] not in METHODS:
        raise ValueError(f"{path}: method must be one of {METHODS}, got {spec['method']!r}")
    metric = spec["metric"]
    if (
        not isinstance(metric, dict)
        or "name" not in metric
        or metric.get("goal") not in ("minimize", "maximize")
    ):
        raise ValueError(f"{path}: metric needs name and goal (minimize|maximize)")
    if "${args_no_hyphens}" not in spec["command"]:
        raise ValueError(f"{path}: command must pass hyperparameters with ${{args_no_hyphens}}")
    for key, p in spec["parameters"].items():
        if key.startswith("+"):
            raise ValueError(
                f"{path}: parameter {key!r}: sweep keys must exist in the config (no '+')"
            )
        if not isinstance(p, dict) or not ({"value", "values", "min", "max"} & set(p)):
            raise ValueError(f"{path}: parameter {key!r} needs value, values or min/max")
        if spec["method"] == "grid" and not ({"value", "values"} & set(p)):
            raise ValueError(f"{path}: grid parameter {key!r} needs value or values")
    if spec["method"] != "grid" and not isinstance(spec.get("run_cap"), int):
        raise ValueError(f"{path}: method {spec['method']} needs an integer run_cap")


def _draw(p: dict[str, Any], rng: random.Random) -> Any:
    if "value" in p:
        return p["value"]
    if "values" in p:
        return rng.choice(p["values"])
    lo, hi = p["min"], p["max"]
    dist = p.get(
        "distribution", "int_uniform" if isinstance(lo, int) and isinstance(hi, int) else "uniform"
    )
    if dist == "int_uniform":
        return rng.randint(lo, hi)
    if dist == "uniform":
        return rng.uniform(lo, hi)
    if dist == "log_uniform_values":
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    raise ValueError(f"distribution {dist!r} is not supported by the local sweep runner")


def trials(spec: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    params = spec["parameters"]
    if spec["method"] == "grid":
        keys = list(params)
        choices = [p["values"] if "values" in p else [p["value"]] for p in params.values()]
        grid = [dict(zip(keys, combo)) for combo in itertools.product(*choices)]
        return grid[: spec["run_cap"]] if isinstance(spec.get("run_cap"), int) else grid
    rng = random.Random(seed)
    return [{k: _draw(p, rng) for k, p in params.items()} for _ in range(spec["run_cap"])]


def _fmt(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def trial_command(spec: dict[str, Any], params: dict[str, Any], extra: list[str]) -> list[str]:
    """Expand W&B's command macros the way the agent does."""
    args = [f"{k}={_fmt(v)}" for k, v in params.items()]
    out: list[str] = []
    for token in spec["command"]:
        if token == "${env}":
            continue
        if token in ("${interpreter}", "python"):
            out.append(sys.executable)
        elif token == "${program}":
            out.append(spec["program"])
        elif token == "${args_no_hyphens}":
            out += extra + args
        elif token == "${args}":
            out += extra + [f"--{a}" for a in args]
        else:
            out.append(token)
    return out


def with_fixed(spec: dict[str, Any], fixed: list[str]) -> dict[str, Any]:
    """``spec`` with the overrides ``fixed`` in every trial: a swept key becomes a single
    ``value``, any other override is appended after the swept arguments (so it wins)."""
    params = dict(spec["parameters"])
    rest = []
    for item in fixed:
        key, sep, value = item.partition("=")
        if sep and key in params:
            params[key] = {"value": value}
        else:
            rest.append(item)
    command = list(spec["command"])
    at = command.index("${args_no_hyphens}") + 1
    return {**spec, "parameters": params, "command": command[:at] + rest + command[at:]}


def package_of(spec_path: str | Path) -> str:
    return Path(spec_path).resolve().parent.parent.name


def check_trials(spec: dict[str, Any], package: str, trial_params: list[dict[str, Any]]) -> None:
    """Compose each trial's train config (unknown keys and batch/world mismatches fail)."""
    from run import check

    for params in trial_params:
        cmd = trial_command(spec, params, [])
        check(package, "train", [a for a in cmd if "=" in a and not a.startswith("-")])
    print(f"ok: {len(trial_params)} trial(s) of {package} compose", flush=True)


def run_local(
    spec_path: str, out: str | None = None, fixed: list[str] = (), check: bool = False
) -> Path | None:
    spec = with_fixed(load_spec(spec_path), list(fixed))
    if check:
        check_trials(spec, package_of(spec_path), trials(spec, seed=spec.get("seed", 0)))
        return None
    name = Path(spec_path).stem
    package = Path(spec_path).resolve().parent.parent.name
    out = Path(out) if out else REPO / "sweeps" / f"{package}-{name}"
    out.mkdir(parents=True, exist_ok=True)
    metric, goal = spec["metric"]["name"], spec["metric"]["goal"]
    env = {
        **os.environ,
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
        "MOTIONCORE_ROOT": str(REPO),
        "MOTIONCORE_EXPERIMENTS": str(REPO / "experiments"),
    }
    rows = []
    for i, params in enumerate(trials(spec, seed=spec.get("seed", 0))):
        trial_dir = out / f"trial_{i:03d}"
        cmd = trial_command(spec, params, [f"hydra.run.dir={trial_dir}"])
        print(
            f"[sweep-local] trial {i}: {' '.join(f'{k}={v}' for k, v in params.items())}",
            flush=True,
        )
        trial_dir.mkdir(parents=True, exist_ok=True)
        with open(trial_dir / "trial.log", "w") as log:
            code = subprocess.call(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        metrics_file = trial_dir / "metrics.json"
        value, status = None, "ok"
        if code != 0:
            status = f"failed (exit {code}, see {trial_dir / 'trial.log'})"
        elif not metrics_file.is_file():
            status = "failed (no metrics.json)"
        else:
            value = json.loads(metrics_file.read_text()).get(metric)
            if value is None:
                status = f"failed ({metric} not logged)"
        print(f"[sweep-local] trial {i}: {metric}={value} {status}", flush=True)
        rows.append({"trial": i, **params, metric: value, "status": status})
    write_tables(rows, metric, goal, out)
    failed = [r for r in rows if r["status"] != "ok"]
    if rows and len(failed) == len(rows):
        first = out / f"trial_{failed[0]['trial']:03d}" / "trial.log"
        sys.exit(
            f"error: all {len(rows)} trial(s) of {spec_path} failed. The first "
            f"({failed[0]['status']}) ended with:\n  {failure_summary(first)}"
        )
    if failed:
        print(f"[sweep-local] {len(failed)} of {len(rows)} trial(s) failed", flush=True)
    return out


HYDRA_HINT = "Set the environment variable HYDRA_FULL_ERROR=1"


def failure_summary(log: Path) -> str:
    """The line of a trial's log that says why it failed: a traceback's last line, or Hydra's
    own error paragraph (an unknown key: "Could not override ..."), without Hydra's hint."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    lines = [ln for ln in text.rstrip().splitlines() if not ln.startswith(HYDRA_HINT)]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return "(empty log)"
    start = max((i for i, ln in enumerate(lines) if not ln.strip()), default=-1) + 1
    paragraph = lines[start:]
    if any(ln.startswith("Traceback") for ln in paragraph):
        return paragraph[-1].strip()
    return "\n  ".join(ln.strip() for ln in paragraph[:5])


def write_tables(rows: list[dict[str, Any]], metric: str, goal: str, out: Path) -> None:
    ok = [r for r in rows if isinstance(r[metric], int | float)]
    ok.sort(key=lambda r: r[metric], reverse=goal == "maximize")
    ordered = ok + [r for r in rows if r not in ok]
    keys = list(rows[0]) if rows else ["trial", metric, "status"]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(ordered)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(r[k]) for k in keys) + " |" for r in ordered]
    (out / "results.md").write_text(
        f"Sorted by {metric} ({goal}), best first.\n\n" + "\n".join(lines) + "\n"
    )
    print(f"[sweep-local] wrote {out / 'results.csv'} and {out / 'results.md'}")


def wandb_command() -> str:
    """The ``wandb`` executable of this environment (``uv run`` puts the venv's bin on PATH)."""
    exe = shutil.which("wandb")
    if exe is None:
        sys.exit(
            "error: the `wandb` command is not on PATH; run `make sweep` (it runs in the venv)"
        )
    return exe


def create_sweep(spec: dict[str, Any], project: str, entity: str | None) -> str:
    """``wandb sweep`` on the spec; returns the ``entity/project/id`` path agents take."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    cmd = [
        wandb_command(),
        "sweep",
        "--project",
        project,
        *(["--entity", entity] if entity else []),
    ]
    res = subprocess.run([*cmd, f.name], capture_output=True, text=True, cwd=REPO)
    Path(f.name).unlink()
    found = re.search(r"wandb agent (\S+)", res.stdout + res.stderr)
    if res.returncode != 0 or found is None:
        last = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
        sys.exit(
            f"error: `wandb sweep` failed: {last[0]}\n"
            "A W&B sweep needs a W&B server: `wandb login` and WANDB_MODE=online; "
            "without one, run the same spec offline with `make sweep-local SWEEP=...`."
        )
    return found.group(1)


def run_wandb(
    spec_path: str, gpus: str, ddp: bool, fixed: list[str] = (), check: bool = False
) -> None:
    spec = with_fixed(load_spec(spec_path), list(fixed))
    ids = gpus.replace(",", " ").split()
    if not ids:
        sys.exit('error: make sweep needs GPUS="0 1 ..." (the GPU ids to start agents on)')
    devices = ["trainer=ddp", f"trainer.devices={len(ids)}"] if ddp else ["trainer=gpu"]
    command = list(spec["command"])
    at = command.index("${args_no_hyphens}")
    spec = {**spec, "command": command[:at] + devices + command[at:]}
    if check:
        check_trials(spec, package_of(spec_path), trials(spec)[:1])
        return
    project = os.environ.get("WANDB_PROJECT", "motion-video-diffusion")
    sweep_path = create_sweep(spec, project, os.environ.get("WANDB_ENTITY"))
    env = {
        **os.environ,
        "MOTIONCORE_ROOT": str(REPO),
        "MOTIONCORE_EXPERIMENTS": str(REPO / "experiments"),
    }
    groups = [ids] if ddp else [[i] for i in ids]
    procs = []
    for group in groups:
        agent_env = {**env, "CUDA_VISIBLE_DEVICES": ",".join(group)}
        cmd = [wandb_command(), "agent", sweep_path]
        print(f"[sweep] agent on GPU(s) {','.join(group)}: {' '.join(cmd)}", flush=True)
        procs.append(subprocess.Popen(cmd, env=agent_env, cwd=REPO))
    sys.exit(max(p.wait() for p in procs))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("mode", choices=["wandb", "local"])
    parser.add_argument("spec")
    parser.add_argument("--gpus", default="")
    parser.add_argument("--ddp", action="store_true")
    parser.add_argument(
        "--out", default=None, help="local: results folder (default sweeps/<pkg>-<name>)"
    )
    parser.add_argument("--check", action="store_true", help="compose every trial, run nothing")
    parser.add_argument("--seeds", default="", help="evaluation seeds 0..N-1 of every trial")
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    fixed = argv[split + 1 :]  # Hydra overrides fixed in every trial
    if args.seeds:
        from run import seeds_override

        fixed = [seeds_override(args.seeds), *fixed]
    if not args.spec:
        sys.exit("error: pass SWEEP=experiments/<package>/sweeps/<name>.yaml")
    if args.mode == "local":
        run_local(args.spec, args.out, fixed, args.check)
    else:
        run_wandb(args.spec, args.gpus, args.ddp, fixed, args.check)


if __name__ == "__main__":
    main()
