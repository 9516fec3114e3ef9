"""The runner behind the Makefile: model lookup, experiments, launch modes.

Usage (normally through make):
    python tools/run.py train  --model M [--exp E] [--ckpt C] [--gpus N|"0 1"] [--nodes K] [-- overrides]
    python tools/run.py eval   --model M --ckpt C [--exp E] [-- overrides]
    python tools/run.py sample --model M --ckpt C [--exp E] [-- overrides]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EXP = "quickstart"
# Training overrides that describe the model and data (carried from a run to its eval/sample);
# everything else (trainer, logging, paths, resume) belongs to the run that made the checkpoint.
NOT_CARRIED = (
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "hydra",
    "ckpt_path",
    "train",
    "test",
    "seed",
    "debug",
    "task_name",
)


def models() -> list[str]:
    return sorted(p.parent.name for p in (REPO / "packages").glob("*/pyproject.toml"))


def import_name(model: str) -> str:
    return model.replace("-", "_")


def check_model(model: str) -> str:
    valid = models()
    if model not in valid:
        sys.exit(f"error: unknown MODEL={model!r}. Valid models: {', '.join(valid)}")
    return model


def experiment_overrides(model: str, exp: str | None) -> list[str]:
    name = exp or DEFAULT_EXP
    folder = REPO / "experiments" / model
    if not (folder / f"{name}.yaml").is_file():
        have = sorted(p.stem for p in folder.glob("*.yaml"))
        if exp is None and not have:
            return []
        sys.exit(f"error: unknown EXP={name!r} for {model}. Available: {', '.join(have) or 'none'}")
    return [f"experiment={name}"]


def device_overrides(gpus: str, nodes: str) -> tuple[list[str], dict[str, str]]:
    """GPUS=N (a count) or GPUS="0 1 3" (ids) -> trainer overrides and CUDA_VISIBLE_DEVICES."""
    if not gpus:
        return [], {}
    env = {}
    ids = gpus.replace(",", " ").split()
    if len(ids) == 1 and ids[0].isdigit():
        count = int(ids[0])
    else:
        if not all(i.isdigit() for i in ids):
            sys.exit(f'error: GPUS={gpus!r} must be a count (GPUS=4) or GPU ids (GPUS="0 1")')
        count, env["CUDA_VISIBLE_DEVICES"] = len(ids), ",".join(ids)
    n_nodes = int(nodes or 1)
    if count < 1 or n_nodes < 1:
        sys.exit(f"error: GPUS and NODES must be >= 1, got GPUS={gpus!r} NODES={nodes!r}")
    if count == 1 and n_nodes == 1:
        return ["trainer=gpu"], env
    return ["trainer=ddp", f"trainer.devices={count}", f"trainer.num_nodes={n_nodes}"], env


def carried_overrides(ckpt: Path) -> list[str]:
    """Model/data overrides of the training run that wrote ``ckpt`` (its .hydra/overrides.yaml)."""
    overrides = ckpt.resolve().parent.parent / ".hydra" / "overrides.yaml"
    if not overrides.is_file():
        return []
    import yaml

    kept = []
    for item in yaml.safe_load(overrides.read_text()) or []:
        key = item.split("=", 1)[0].lstrip("+~")
        if key.split(".", 1)[0] not in NOT_CARRIED:
            kept.append(item)
    return kept


def build(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    model = check_model(args.model)
    module = f"{import_name(model)}.{args.command}"
    overrides: list[str] = []
    env = {"MOTIONCORE_ROOT": str(REPO), "MOTIONCORE_EXPERIMENTS": str(REPO / "experiments")}
    ckpt = Path(args.ckpt).resolve() if args.ckpt else None
    if ckpt is not None and not ckpt.is_file():
        sys.exit(
            f"error: CKPT={args.ckpt} does not exist (expected runs/<package>/<run>/checkpoints/last.ckpt)"
        )
    if args.command == "train":
        overrides += experiment_overrides(model, args.exp)
        dev, dev_env = device_overrides(args.gpus, args.nodes)
        overrides += dev
        env.update(dev_env)
    else:
        if ckpt is None:
            sys.exit(f"error: make {args.command} needs CKPT=<run dir>/checkpoints/last.ckpt")
        carried = carried_overrides(ckpt)
        if args.exp or not any(o.startswith("experiment=") for o in carried):
            carried = [o for o in carried if not o.startswith("experiment=")]
            overrides += experiment_overrides(model, args.exp)
        overrides += carried
    if ckpt is not None:
        overrides.append(f"ckpt_path={ckpt}")
    overrides += args.overrides
    return [sys.executable, "-m", module, *overrides], env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=["train", "eval", "sample"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--exp", default="")
    parser.add_argument("--ckpt", default="")
    parser.add_argument("--gpus", default="")
    parser.add_argument("--nodes", default="")
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.overrides = argv[split + 1 :]  # Hydra overrides, passed through verbatim
    args.exp = args.exp or None
    cmd, env = build(args)
    print("+", " ".join(shlex.quote(c) for c in cmd), flush=True)
    if args.dry_run:
        return 0
    return subprocess.call(cmd, env={**os.environ, **env}, cwd=REPO)


if __name__ == "__main__":
    sys.exit(main())
