"""Every fenced shell command of README.md, checked without training (tests/integration/test_readme.py).
 Commands are grouped by the README section that holds
them and checked in order, so a command that needs what an earlier one in its section makes (a
checkpoint, an sbatch script) gets it from that command. How each kind is checked:

- ``make <target> VAR=...``: make runs the real recipe with ``CHECK=1`` and its tool replaced by
  an argv recorder (``RUN=``), so the Makefile's quoting is exercised; the recorded argv then
  goes through the tool's own ``--check`` (tools/run.py, sweep.py, slurm.py): model, experiment,
  sweep file and checkpoint rules, Hydra composition of the overrides (unknown keys fail) and
  the batch split over the world size from GPUS/NODES. ``make test*`` checks pytest's arguments.
- ``uv run ... torchrun ...`` / ``python -m <pkg>.<task>``: torchrun's own parser, then the
  module's config is composed with the overrides and ``--nproc-per-node`` must match
  ``trainer.devices``.
- ``uv run ... <console script> ...``: Hydra entry points compose; argparse scripts parse the
  exact arguments with their own parser (stopped right after parsing).
- ``sbatch <script>``: the script the section's ``make slurm`` writes passes ``bash -n``.

Placeholders (``/path/to/x``, ``<HamNoSys>``, ``me.png``, ...) are replaced by files the caller
provides (``fixtures``); ``CKPT=...`` and ``runs/<pkg>/<run>/...`` name the checkpoint of the
section's last ``make train`` of that model (a run directory with its ``.hydra/overrides.yaml``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHELLS = ("bash", "sh", "shell", "console")
HYDRA_TASKS = ("train", "eval", "sample")
# `uv run` options the README may use before the program
UV_RUN_FLAGS = {"--frozen", "--all-packages", "--no-sync", "--locked"}


@dataclass
class Command:
    section: str
    line: int  # 1-based line in README.md
    text: str  # continuation lines joined, comments stripped


@dataclass
class Context:
    """What earlier commands of a section left behind, and where the checker may write."""

    workdir: Path
    fixtures: dict[str, str]
    checkpoints: dict[str, Path] = field(default_factory=dict)  # model -> last.ckpt
    sbatch: dict[str, Path] = field(default_factory=dict)  # model -> script


class CommandError(Exception):
    pass


def extract(text: str) -> list[Command]:
    """Commands of every ```bash (sh, shell, console) block, with the heading above them."""
    commands, section, fence, pending, start = [], "", None, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if fence is None:
            if stripped.startswith("#"):
                section = stripped.lstrip("#").strip()
            elif stripped.startswith("```"):
                fence = stripped[3:].strip().lower()
            continue
        if stripped.startswith("```"):
            fence = None
            continue
        if fence not in SHELLS:
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        body = _strip_comment(pending + stripped)
        pending = ""
        if body:
            commands.append(Command(section, start, body))
    return commands


def _strip_comment(line: str) -> str:
    """The command without a trailing ``# ...`` comment (a ``#`` inside quotes stays)."""
    quote, cut = None, len(line)
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            cut = i
            break
    return line[:cut].strip()


def substitute(text: str, ctx: Context) -> str:
    """Replace README placeholders by the caller's fixture files and earlier commands' outputs."""
    for placeholder, value in ctx.fixtures.items():
        text = text.replace(placeholder, shlex.quote(value) if " " in value else value)

    def ckpt(model: str) -> str:
        if model not in ctx.checkpoints:
            raise CommandError(
                f"needs a checkpoint of {model}, but no earlier command of this section trains it"
            )
        return str(ctx.checkpoints[model])

    model = re.search(r"MODEL=(\S+)", text)
    text = re.sub(r"runs/([\w-]+)/<run>/checkpoints/last\.ckpt", lambda m: ckpt(m.group(1)), text)
    if model and re.search(r"CKPT=\.\.\.(\s|$)", text):
        text = re.sub(r"CKPT=\.\.\.(?=\s|$)", lambda m: "CKPT=" + ckpt(model.group(1)), text)
    for m in re.finditer(r"/path/to/([\w.-]+)", text):
        folder = ctx.workdir / "path_to" / m.group(1)
        folder.mkdir(parents=True, exist_ok=True)
    text = re.sub(r"/path/to/([\w.-]+)", lambda m: str(ctx.workdir / "path_to" / m.group(1)), text)
    leftover = re.search(r"<[\w.-]+>|(?<![\w.])\.\.\.(?![\w.])", text)
    if leftover and not text.startswith("sbatch "):
        raise CommandError(f"placeholder {leftover.group(0)!r} has no fixture")
    return text


def check_command(cmd: Command, ctx: Context) -> str:
    """Check one command; returns a short note, raises CommandError naming what is wrong."""
    argv = shlex.split(substitute(cmd.text, ctx))
    env = {}
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
        key, _, value = argv.pop(0).partition("=")
        env[key] = value
    if not argv:
        raise CommandError("no command")
    if argv[0] == "make":
        return check_make(argv[1:], env, ctx)
    if argv[:2] == ["uv", "run"]:
        rest = argv[2:]
        while rest and rest[0].startswith("-"):
            if rest[0] not in UV_RUN_FLAGS:
                raise CommandError(f"`uv run {rest[0]}` is not an option the README may use")
            rest = rest[1:]
        return check_program(rest, ctx)
    if argv[0] == "sbatch":
        return check_sbatch(argv[1:], ctx)
    raise CommandError(f"no checker for `{argv[0]}` (teach tools/readme_commands.py)")


# --- make ------------------------------------------------------------------------------------

RECORDER = "import json, os, sys\nopen(os.environ['README_ARGV'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"


def recorded_make(args: list[str], env: dict[str, str], ctx: Context) -> list[list[str]]:
    """Run make with its tools replaced by an argv recorder; the argv each recipe line ran."""
    recorder = ctx.workdir / "record_argv.py"
    recorder.write_text(RECORDER)
    log = ctx.workdir / "argv.jsonl"
    log.unlink(missing_ok=True)
    res = subprocess.run(
        ["make", "-s", *args, "CHECK=1", "UV=true", f"RUN={sys.executable} {recorder}"],
        cwd=REPO,
        env={**os.environ, **env, "README_ARGV": str(log)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if res.returncode != 0:
        raise CommandError(f"make failed: {(res.stderr or res.stdout).strip()[-800:]}")
    if not log.is_file():
        raise CommandError("make ran no command through $(RUN)")
    return [json.loads(line) for line in log.read_text().splitlines()]


def _tool(name: str):
    if str(REPO / "tools") not in sys.path:
        sys.path.insert(0, str(REPO / "tools"))
    return importlib.import_module(name)


def _call(fn, *args):
    """Run a tool's function; its ``sys.exit("error: ...")`` becomes a CommandError."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            return fn(*args)
    except SystemExit as e:
        if e.code not in (0, None):
            raise CommandError(str(e.code)) from None
        return None


def check_make(args: list[str], env: dict[str, str], ctx: Context) -> str:
    target = next((a for a in args if "=" not in a and not a.startswith("-")), "help")
    notes = []
    for argv in recorded_make(args, env, ctx):
        if argv[0] == "pytest":
            notes.append(check_pytest(argv[1:]))
            continue
        if argv[:1] != ["python"] or len(argv) < 2 or not argv[1].startswith("tools/"):
            raise CommandError(f"make {target} ran {argv}, which the checker does not know")
        tool = Path(argv[1]).stem
        if "--check" not in argv:
            raise CommandError(f"make {target} does not pass CHECK=1 on to tools/{tool}.py")
        notes.append(check_tool(tool, argv[2:], ctx))
    return "; ".join(notes)


def check_tool(tool: str, argv: list[str], ctx: Context) -> str:
    if tool == "run":
        run = _tool("run")
        args = _call(run.parse, argv)
        cmd, _ = _call(run.build, args)
        overrides = cmd[3:]
        _call(run.check, args.model, args.command, overrides)
        if args.command == "train":
            ctx.checkpoints[args.model] = fake_run(ctx, args.model, overrides)
        return f"{args.command} {args.model}: composes"
    if tool == "sweep":
        _call(_tool("sweep").main, argv)
        return "sweep: every trial composes"
    if tool == "slurm":
        slurm = _tool("slurm")
        _call(slurm.main, argv)
        split = argv.index("--") if "--" in argv else len(argv)
        args = slurm.build_parser().parse_args(argv[:split])
        script = ctx.workdir / f"{args.model}.sbatch"
        script.write_text(
            slurm.render(
                args.model,
                args.exp or None,
                int(args.gpus),
                int(args.nodes or 1),
                argv[split + 1 :],
                ctx.workdir / "runs" / args.model / "slurm",
            )
        )
        ctx.sbatch[args.model] = script
        return f"slurm {args.model}: composes"
    if tool == "bench":
        _call(_tool("bench").main, argv)
        return "bench: model and kwargs accepted"
    raise CommandError(f"no checker for tools/{tool}.py")


def fake_run(ctx: Context, model: str, overrides: list[str]) -> Path:
    """A run directory as training leaves it: .hydra/overrides.yaml and checkpoints/last.ckpt."""
    import torch
    import yaml

    run = ctx.workdir / "runs" / model / f"run{len(ctx.checkpoints)}"
    (run / ".hydra").mkdir(parents=True, exist_ok=True)
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save({"global_step": 0, "state_dict": {}}, ckpt)
    return ckpt


def check_pytest(args: list[str]) -> str:
    from _pytest.mark.expression import Expression

    takes_value = {"-m", "-k", "-p", "--timeout"}
    flags = {"-q", "-x", "-v", "-s"}
    i = 0
    while i < len(args):
        a = args[i]
        if a in takes_value:
            if i + 1 >= len(args):
                raise CommandError(f"pytest {a} has no value")
            if a in ("-m", "-k"):
                try:
                    Expression.compile(args[i + 1])
                except SyntaxError as e:  # what pytest raises for a bad expression
                    raise CommandError(f"pytest {a} {args[i + 1]!r}: {e}") from None
            i += 2
            continue
        if a.startswith("-"):
            if a not in flags:
                raise CommandError(f"pytest option {a!r} is not one the checker knows")
        elif not (REPO / a.split("::")[0]).exists():
            raise CommandError(f"pytest path {a!r} does not exist")
        i += 1
    return "pytest " + " ".join(shlex.quote(a) for a in args)


# --- uv run <program> ------------------------------------------------------------------------


def console_scripts() -> dict[str, str]:
    """``name -> module:function`` of every package's [project.scripts]."""
    scripts = {}
    for pyproject in sorted((REPO / "packages").glob("*/pyproject.toml")):
        scripts.update(tomllib.loads(pyproject.read_text())["project"].get("scripts", {}))
    return scripts


def check_program(argv: list[str], ctx: Context) -> str:
    if not argv:
        raise CommandError("`uv run` without a program")
    prog, args = argv[0], argv[1:]
    if prog == "torchrun":
        return check_torchrun(args)
    if prog == "python" and args[:1] == ["-m"] and len(args) > 1:
        return check_module(args[1], args[2:], world=None)
    scripts = console_scripts()
    if prog not in scripts:
        raise CommandError(f"`{prog}` is not a console script of any package ({sorted(scripts)})")
    module, _, func = scripts[prog].partition(":")
    if module.rsplit(".", 1)[-1] in HYDRA_TASKS:
        return check_module(module, args, world=None)
    return check_argparse(prog, module, func, args)


def check_module(module: str, overrides: list[str], world: int | None) -> str:
    package, _, task = module.partition(".")
    model = package.replace("_", "-")
    run = _tool("run")
    if model not in run.models() or task not in HYDRA_TASKS:
        raise CommandError(f"`-m {module}` is not <package>.train|eval|sample")
    cfg = _call(run.check, model, task, overrides)
    if world is not None and run.world_size(cfg.trainer) != world:
        raise CommandError(
            f"{world} processes but the config trains on {run.world_size(cfg.trainer)} devices "
            "(trainer.devices x trainer.num_nodes)"
        )
    return f"{module}: composes"


def check_torchrun(args: list[str]) -> str:
    from torch.distributed.run import get_args_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            ns = get_args_parser().parse_args(args)
    except SystemExit:
        raise CommandError(f"torchrun: {err.getvalue().strip()}") from None
    if not ns.module:
        raise CommandError("torchrun: the README runs packages as modules (-m <package>.train)")
    nproc = int(ns.nproc_per_node) if str(ns.nproc_per_node).isdigit() else 1
    nodes = int(str(ns.nnodes).split(":")[-1])
    return check_module(ns.training_script, ns.training_script_args, world=nproc * nodes)


class _Parsed(Exception):
    pass


def check_argparse(prog: str, module: str, func: str, args: list[str]) -> str:
    """Run the script's entry with its parser stopped right after a successful parse."""
    originals = {
        name: getattr(argparse.ArgumentParser, name)
        for name in ("parse_args", "parse_intermixed_args")
    }

    def stopping(name):
        def parse_then_stop(self, *a, **kw):
            originals[name](self, *a, **kw)
            raise _Parsed

        return parse_then_stop

    fn = getattr(importlib.import_module(module), func)
    saved = sys.argv
    sys.argv = [prog, *args]
    for name in originals:
        setattr(argparse.ArgumentParser, name, stopping(name))
    try:
        with (
            contextlib.redirect_stderr(io.StringIO()) as err,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            fn()
    except _Parsed:
        return f"{prog}: arguments parse"
    except SystemExit:
        raise CommandError(f"{prog}: {err.getvalue().strip()[-600:]}") from None
    finally:
        for name, method in originals.items():
            setattr(argparse.ArgumentParser, name, method)
        sys.argv = saved
    raise CommandError(f"{prog} finished without parsing its arguments with argparse")


# --- sbatch ----------------------------------------------------------------------------------


def check_sbatch(args: list[str], ctx: Context) -> str:
    if len(args) != 1:
        raise CommandError("sbatch takes the one script make slurm printed")
    m = re.fullmatch(r"slurm/([\w-]+)_<time>\.sbatch", args[0])
    if not m or m.group(1) not in ctx.sbatch:
        raise CommandError(
            f"{args[0]} is not the script an earlier `make slurm` of this section writes "
            "(slurm/<package>_<time>.sbatch)"
        )
    script = ctx.sbatch[m.group(1)]
    res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    if res.returncode != 0:
        raise CommandError(f"{script} is not valid bash: {res.stderr.strip()}")
    return f"sbatch {m.group(1)}: script is valid bash"


# --- repo paths ------------------------------------------------------------------------------

TOP_LEVEL = ("Makefile", "pyproject.toml", "uv.lock", "README.md")
GENERATED = ("runs", "sweeps", "bench", "slurm", "data", "outputs", "music_features")


def named_paths(text: str) -> list[str]:
    """Repo paths the README names in `code` spans and fenced blocks (patterns keep <x>)."""
    roots = {p.name for p in REPO.iterdir() if not p.name.startswith(".git")}
    found = []
    for token in re.findall(r"[\w.<>*-]+(?:/[\w.<>*-]+)+/?|[\w.-]+\.(?:toml|lock|md|py)", text):
        first = token.split("/")[0]
        if first in GENERATED or (first not in roots and token not in TOP_LEVEL):
            continue
        found.append(token.rstrip("/"))
    return sorted(set(found))


def missing_paths(text: str) -> list[str]:
    missing = []
    for path in named_paths(text):
        pattern = re.sub(r"<[^>/]+>", "*", path)
        if not any(REPO.glob(pattern)) and not (REPO / path).exists():
            missing.append(path)
    return missing


def check_section(commands: list[Command], ctx: Context) -> list[str]:
    """Check one section's commands in order; every failure as ``<line>: <command>: <reason>``."""
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    failures = []
    for cmd in commands:
        try:
            check_command(cmd, ctx)
        except CommandError as e:
            failures.append(f"README.md:{cmd.line}: {cmd.text}: {e}")
    return failures
