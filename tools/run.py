"""The runner behind the Makefile: model lookup, experiments, launch modes.

Usage (normally through make):
    python tools/run.py train  --model M [--exp E] [--ckpt C] [--gpus N|"0 1"] [--nodes K] [-- overrides]
    python tools/run.py eval   --model M --ckpt C [--exp E] [-- overrides]
    python tools/run.py sample --model M --ckpt C [--exp E] [-- overrides]

--check (make ... CHECK=1) runs nothing: it composes the config the command would run (an
unknown key or group fails with Hydra's message), runs the package's ``validate(cfg)`` of that
entry point where it has one and, for train, splits the batches over the world size from
GPUS x NODES, so a command can be validated on a laptop before a cluster run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    "init_from",
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


def recorded_overrides(ckpt: Path) -> list[str]:
    """The overrides that built the model in ``ckpt``: its run's ``.hydra/overrides.yaml``, or,
    for a checkpoint outside a run directory (an upstream importer's output), the
    ``hydra_overrides`` list stored in the checkpoint itself."""
    overrides = ckpt.resolve().parent.parent / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        import yaml

        return list(yaml.safe_load(overrides.read_text()) or [])
    import torch

    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a readable checkpoint: the entry point names the file and the fix
        return []
    stored = state.get("hydra_overrides") if isinstance(state, dict) else None
    return [str(o) for o in stored] if isinstance(stored, list) else []


def carried_overrides(ckpt: Path) -> list[str]:
    """Model/data overrides of the training run (or importer) that wrote ``ckpt``."""
    kept = []
    for item in recorded_overrides(ckpt):
        key = item.split("=", 1)[0].lstrip("+~")
        if key.split(".", 1)[0] not in NOT_CARRIED:
            kept.append(item)
    return kept


# Resuming a run also keeps its trainer settings (max_steps...); only these start anew.
NOT_RESUMED = ("hydra", "ckpt_path", "init_from", "paths")


def resumed_overrides(ckpt: Path) -> list[str]:
    """Every override of the run that wrote ``ckpt`` except where it wrote and what it loaded."""
    items = recorded_overrides(ckpt)
    return [o for o in items if o.split("=", 1)[0].lstrip("+~").split(".")[0] not in NOT_RESUMED]


def resume_checkpoint(model: str, resume: str) -> str:
    """RESUME=<run dir> or RESUME=latest (newest run of MODEL) -> its checkpoints/last.ckpt."""
    if resume == "latest":
        found = sorted(
            (REPO / "runs" / model).glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
        )
        if not found:
            sys.exit(f"error: RESUME=latest found no runs/{model}/<run>/checkpoints/last.ckpt")
        return str(found[-1])
    last = Path(resume) / "checkpoints" / "last.ckpt"
    if not last.is_file():
        sys.exit(f"error: RESUME={resume} has no {last}; pass a run directory or RESUME=latest")
    return str(last)


def seeds_override(seeds: str) -> str:
    """SEEDS=N -> the override that evaluates with seeds 0..N-1 (mean, std, ci95)."""
    if not seeds.isdigit() or int(seeds) < 1:
        sys.exit(f"error: SEEDS={seeds!r} must be a whole number >= 1, e.g. SEEDS=3")
    return f"++seeds={int(seeds)}"


def build(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    model = check_model(args.model)
    module = f"{import_name(model)}.{args.command}"
    overrides: list[str] = []
    env = {"MOTIONCORE_ROOT": str(REPO), "MOTIONCORE_EXPERIMENTS": str(REPO / "experiments")}
    if getattr(args, "resume", ""):
        if args.ckpt:
            sys.exit("error: pass CKPT=<file> or RESUME=<run dir|latest>, not both")
        args.ckpt = resume_checkpoint(model, args.resume)
    ckpt = Path(args.ckpt).resolve() if args.ckpt else None
    if ckpt is not None and not ckpt.is_file():
        sys.exit(
            f"error: CKPT={args.ckpt} does not exist (expected runs/<package>/<run>/checkpoints/last.ckpt)"
        )
    if args.command == "train":
        carried = resumed_overrides(ckpt) if ckpt is not None else []
        if args.exp or not any(o.startswith("experiment=") for o in carried):
            carried = [o for o in carried if not o.startswith("experiment=")]
            overrides += experiment_overrides(model, args.exp)
        overrides += carried  # then GPUS and ARGS, which win over the run's own values
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
        # the weights come from CKPT; a fine-tune experiment's required init_from is moot
        overrides += ["init_from=null", f"ckpt_path={ckpt}"]
    if getattr(args, "seeds", ""):
        overrides.append(seeds_override(args.seeds))
    overrides += args.overrides
    return [sys.executable, "-m", module, *overrides], env


def world_size(trainer: Any) -> int:
    """devices x num_nodes of a composed trainer config ("auto" devices count as one)."""
    devices = trainer.get("devices", 1)
    if isinstance(devices, int) or str(devices).isdigit():
        count = int(devices)
    elif isinstance(devices, Sequence) and not isinstance(devices, str):
        count = len(devices)
    else:
        count = 1
    return count * int(trainer.get("num_nodes", 1) or 1)


def compose(model: str, task: str, overrides: list[str]) -> Any:
    """The config ``python -m <model>.<task> overrides...`` would run, without running it."""
    os.environ.setdefault("MOTIONCORE_EXPERIMENTS", str(REPO / "experiments"))
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    import motioncore.train.entry  # noqa: F401  (registers the experiments:// config source)

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(f"{import_name(model)}.configs", version_base="1.3"):
            return hydra_compose(task, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        sys.exit(f"error: {model} {task} does not accept these overrides: {e}")
    finally:
        GlobalHydra.instance().clear()


def check(model: str, task: str, overrides: list[str]) -> Any:
    """Compose ``task``'s config, run the package's own ``validate(cfg)`` of its entry point
    (e.g. champ-guidance: guidance widths that fit the UNet, which guidance a sample gives) and,
    for train, check its batches against the world size."""
    from motioncore.train import per_device_batch_size

    # the overrides as the console script hands them to Hydra (text-to-pose quotes HamNoSys)
    entry = importlib.import_module(f"{import_name(model)}.{task}").main
    argv_filter = getattr(entry, "argv_filter", None)
    cfg = compose(model, task, argv_filter(overrides) if argv_filter else overrides)
    validate = getattr(entry, "validate", None)
    if validate is not None:
        try:
            validate(cfg)
        except (ValueError, OSError) as e:
            sys.exit(f"error: {model} {task}: {e}")
    data = cfg.get("data") or {}
    if task == "train" and not data.get("per_device_batch_size"):
        world = world_size(cfg.trainer)
        for key in ("batch_size", "eval_batch_size"):
            if data.get(key):
                try:
                    per_device_batch_size(int(data[key]), world, f"data.{key}")
                except ValueError as e:
                    sys.exit(f"error: {e}")
    return cfg


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=["train", "eval", "sample"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--exp", default="")
    parser.add_argument("--ckpt", default="")
    parser.add_argument("--resume", default="", help="run dir or 'latest' (train)")
    parser.add_argument("--seeds", default="", help="evaluation seeds 0..N-1 (eval)")
    parser.add_argument("--gpus", default="")
    parser.add_argument("--nodes", default="")
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    parser.add_argument(
        "--check", action="store_true", help="compose and validate the config, run nothing"
    )
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.overrides = argv[split + 1 :]  # Hydra overrides, passed through verbatim
    args.exp = args.exp or None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    cmd, env = build(args)
    print("+", " ".join(shlex.quote(c) for c in cmd), flush=True)
    if args.check:
        check(args.model, args.command, cmd[3:])
        print(f"ok: {args.model} {args.command} composes", flush=True)
        return 0
    if args.dry_run:
        return 0
    return subprocess.call(cmd, env={**os.environ, **env}, cwd=REPO)


if __name__ == "__main__":
    sys.exit(main())
