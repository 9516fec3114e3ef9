"""``make gpu-check``: prove every package on the GPUs of this machine in one short run.

For each of the five packages (run side by side on the same GPU, each part with its own time
budget): its quickstart for 20 training steps with ``trainer=gpu trainer.precision=bf16-mixed``,
an evaluation of the checkpoint on a few test batches, one sample, and one bench row on ``cuda``
(forward + backward of the package's own ``training_step`` on one real batch under bf16
autocast: step time and peak GPU memory). Then one package trains with DDP over every visible
GPU (``trainer=ddp``, devices = GPU count, even 1) and resumes from that run's ``last.ckpt``.
Prints one table and writes ``gpu_check.json``; a part that fails or runs out of its budget is a
``fail`` row with the last line of its log, never skipped.

``--dry-run`` (``make gpu-check DRY_RUN=1``) needs no GPU: it composes every config the real run
would use and runs the static device check (no hard-coded ``.cuda()`` / ``"cuda:0"``, no CPU
generator handed to a tensor created on another device, no ``.numpy()`` without ``.cpu()``).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = [REPO / "shared" / "src", *sorted((REPO / "packages").glob("*/src"))]
STEPS = 20
GPU_TRAIN = ["trainer=gpu", "trainer.precision=bf16-mixed", f"trainer.max_steps={STEPS}"]
# Seconds per part; the parts of one package run in sequence, packages side by side.
BUDGET = {"train": 200, "eval": 90, "sample": 90, "bench": 60, "ddp": 150, "resume": 90}
DDP_PACKAGE = "text-to-pose"


@dataclass
class Plan:
    """What the check runs for one package."""

    metric: str
    eval_overrides: list[str] = field(default_factory=lambda: ["trainer.limit_test_batches=2"])
    sample_overrides: list[str] = field(default_factory=list)
    sample_device_key: str | None = None  # sample configs that choose their own device


PLANS = {
    "text-to-pose": Plan("test/dtw_mje", sample_overrides=["steps=5"]),
    "stmc-keyframe": Plan(
        "test/inbetween_mpjpe_m", sample_overrides=["seconds=2"], sample_device_key="device"
    ),
    "stdiff": Plan("test/psnr", sample_overrides=["num_videos=1", "num_samples=1", "num_steps=5"]),
    "champ-guidance": Plan("test/psnr", sample_overrides=["num_inference_steps=5", "num_frames=8"]),
    "imf": Plan("test/psnr", sample_overrides=["max_frames=8"], sample_device_key="device"),
}


def import_name(package: str) -> str:
    return package.replace("-", "_")


# --------------------------------------------------------------------------------------------
# Static device check


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.problem}"


def _chain(node: ast.AST) -> tuple[bool, str | None]:
    """Walk the receiver chain of ``a.b(...)[i].c``: (passes through ``.cpu()``, root name)."""
    while isinstance(node, ast.Call | ast.Attribute | ast.Subscript | ast.BinOp | ast.UnaryOp):
        if isinstance(node, ast.BinOp | ast.UnaryOp):  # arithmetic keeps the device
            node = node.left if isinstance(node, ast.BinOp) else node.operand
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "cpu":
                return True, None
            node = func.value if isinstance(func, ast.Attribute) else func
        else:
            node = node.value
    return False, node.id if isinstance(node, ast.Name) else None


def _cpu_names(tree: ast.AST) -> set[str]:
    """Names assigned (anywhere in the file) from a chain that passes through ``.cpu()``,
    or from another such name: ``x = t.cpu(); x.numpy()`` is fine."""
    assigns = [
        (target.id, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    ]
    names: set[str] = set()
    while True:
        before = len(names)
        for name, value in assigns:
            on_cpu, root = _chain(value)
            if on_cpu or root in names:
                names.add(name)
        if len(names) == before:
            return names


def _numpy_receiver_on_cpu(node: ast.AST, cpu_names: set[str]) -> bool:
    on_cpu, root = _chain(node)
    return on_cpu or root in cpu_names


def _is_cpu_literal(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == "cpu"


def check_source(text: str, path: str = "<string>") -> list[Finding]:
    """Device hard-coding problems in one Python source (see the module docstring)."""
    findings = []
    tree = ast.parse(text, filename=path)
    cpu_names = _cpu_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"cuda:\d+", node.value):
                findings.append(Finding(path, node.lineno, f"hard-coded device {node.value!r}"))
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr = node.func.attr
        keywords = {k.arg: k.value for k in node.keywords}
        if attr == "cuda" and not node.args and not keywords:
            findings.append(
                Finding(path, node.lineno, "'.cuda()' hard-codes the device; use .to(device)")
            )
        elif attr == "numpy" and not _numpy_receiver_on_cpu(node.func.value, cpu_names):
            findings.append(
                Finding(path, node.lineno, "'.numpy()' without '.cpu()' fails on CUDA tensors")
            )
        elif (
            "generator" in keywords
            and "device" in keywords
            and not _is_cpu_literal(keywords["device"])
            and not (isinstance(keywords["generator"], ast.Constant))
        ):
            findings.append(
                Finding(
                    path,
                    node.lineno,
                    f"'{attr}(..., generator=..., device=...)': a CPU torch.Generator cannot "
                    "draw on another device; draw on CPU and move with .to(device)",
                )
            )
    return findings


def static_device_check(roots: list[Path] = SOURCE_ROOTS) -> list[Finding]:
    findings = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            rel = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
            findings += check_source(path.read_text(), rel)
    return findings


# --------------------------------------------------------------------------------------------
# The commands of the real run (also composed by the dry run)


def _env() -> dict[str, str]:
    """Child environment: the workspace sources importable even without an installed venv
    (a GPU machine may only have a Python with torch), experiments on the config path."""
    paths = [str(p) for p in SOURCE_ROOTS]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "MOTIONCORE_ROOT": str(REPO),
        "MOTIONCORE_EXPERIMENTS": str(REPO / "experiments"),
        "WANDB_MODE": "offline",
        "PYTHONUNBUFFERED": "1",
    }


def train_overrides(package: str, out: Path) -> list[str]:
    return [
        "experiment=quickstart",
        *GPU_TRAIN,
        "logger=csv",
        "test=false",
        f"paths.data_dir={out / 'data' / package}",
        f"hydra.run.dir={out / package / 'train'}",
    ]


def eval_overrides(package: str, out: Path, ckpt: Path) -> list[str]:
    return [
        "experiment=quickstart",
        "trainer=gpu",
        "logger=csv",
        *PLANS[package].eval_overrides,
        f"paths.data_dir={out / 'data' / package}",
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={out / package / 'eval'}",
    ]


def sample_overrides(package: str, out: Path, ckpt: Path) -> list[str]:
    plan = PLANS[package]
    extra = [f"{plan.sample_device_key}=cuda"] if plan.sample_device_key else []
    return [
        "experiment=quickstart",
        "trainer=gpu",
        "logger=none",
        *plan.sample_overrides,
        *extra,
        f"paths.data_dir={out / 'data' / package}",
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={out / package / 'sample'}",
    ]


def ddp_overrides(out: Path, gpus: int, global_batch: int, steps: int, ckpt: Path | None):
    run = out / DDP_PACKAGE / ("ddp" if ckpt is None else "ddp_resume")
    batch = max(1, global_batch // gpus) * gpus
    return [
        "experiment=quickstart",
        "trainer=ddp",
        f"trainer.devices={gpus}",
        "trainer.precision=bf16-mixed",
        f"trainer.max_steps={steps}",
        f"data.batch_size={batch}",
        "logger=csv",
        "test=false",
        f"paths.data_dir={out / 'data' / DDP_PACKAGE}",
        f"hydra.run.dir={run}",
        *([f"ckpt_path={ckpt}"] if ckpt is not None else []),
    ]


def compose(package: str, name: str, overrides: list[str]):
    """Compose ``<package>``'s ``name`` config exactly as its entry point would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    import motioncore.train.entry  # noqa: F401  (registers the experiments:// config source)

    os.environ.setdefault("MOTIONCORE_EXPERIMENTS", str(REPO / "experiments"))
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(f"{import_name(package)}.configs", version_base="1.3"):
            return hydra_compose(name, overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


def dry_run(out: Path) -> int:
    """Compose every config of the real run and run the static device check."""
    from omegaconf import OmegaConf

    problems = []
    fake_ckpt = out / "ckpt" / "last.ckpt"
    for package in PLANS:
        for name, overrides in (
            ("train", train_overrides(package, out)),
            ("eval", eval_overrides(package, out, fake_ckpt)),
            ("sample", sample_overrides(package, out, fake_ckpt)),
        ):
            try:
                cfg = compose(package, name, overrides)
                OmegaConf.to_container(cfg.trainer, resolve=True)
                assert cfg.trainer.accelerator == "gpu", "trainer=gpu did not select the GPU"
                print(f"[dry-run] {package} {name}: composed")
            except Exception as e:  # every failure is reported, none stops the others
                problems.append(f"{package} {name}: {type(e).__name__}: {e}")
    batch = compose(DDP_PACKAGE, "train", train_overrides(DDP_PACKAGE, out)).data.batch_size
    for ckpt in (None, fake_ckpt):
        try:
            cfg = compose(DDP_PACKAGE, "train", ddp_overrides(out, 2, batch, STEPS, ckpt))
            assert cfg.trainer.strategy == "ddp" and cfg.trainer.devices == 2
            assert cfg.data.batch_size % 2 == 0
            print(f"[dry-run] {DDP_PACKAGE} ddp{'' if ckpt is None else ' resume'}: composed")
        except Exception as e:
            problems.append(f"{DDP_PACKAGE} ddp: {type(e).__name__}: {e}")
    findings = static_device_check()
    problems += [f"device check: {f}" for f in findings]
    for p in problems:
        print(f"[dry-run] FAIL {p}")
    print(f"[dry-run] {'ok' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


# --------------------------------------------------------------------------------------------
# The real run


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def run_part(cmd: list[str], log: Path, timeout: float) -> tuple[bool, float, str]:
    """Run one part; (passed, seconds, last line of its log)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as f:
        try:
            code = subprocess.call(
                cmd, cwd=REPO, env=_env(), stdout=f, stderr=subprocess.STDOUT, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            code = None
    seconds = time.perf_counter() - start
    tail = _last_line(log.read_text(errors="replace"))
    if code is None:
        return False, seconds, f"timed out after {timeout:.0f} s; last output: {tail}"
    return code == 0, seconds, tail


def bench_row(package: str, run_dir: Path) -> dict:
    """One bf16 forward+backward of ``training_step`` on a real batch, on CUDA (in-process)."""
    import hydra
    import torch
    from omegaconf import OmegaConf

    import motioncore.train.entry  # noqa: F401
    from motioncore.bench import time_fn

    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = hydra.utils.instantiate(cfg.model).to("cuda").train()
    batch = next(iter(datamodule.train_dataloader()))
    batch = module.transfer_batch_to_device(batch, torch.device("cuda"), 0)
    params = [p for p in module.parameters() if p.requires_grad]

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = module.training_step(batch, 0)
        loss = out["loss"] if isinstance(out, dict) else out
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        del grads

    torch.cuda.reset_peak_memory_stats()
    seconds = time_fn(step, repeats=3, warmup=1, device="cuda")["median_s"]
    return {"step_s": round(seconds, 4), "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30}


def _metric(run_dir: Path, key: str) -> float | None:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    value = json.loads(path.read_text()).get(key)
    return value if isinstance(value, int | float) else None


def _text_to_pose_text(out: Path) -> list[str]:
    """A HamNoSys text of the built-in data (so the check does not depend on the tokenizer)."""
    for index in sorted((out / "data" / "text-to-pose").rglob("index.jsonl")):
        for line in index.read_text().splitlines():
            row = json.loads(line)
            if row.get("text"):
                return [f"text={json.dumps(row['text'], ensure_ascii=False)}"]
    return []


def check_package(package: str, out: Path) -> dict:
    """train -> eval -> sample -> bench for one package; one result row."""
    py = sys.executable
    mod = import_name(package)
    row: dict = {"package": package, "parts": {}}
    logs = out / package

    def part(name: str, cmd: list[str]) -> bool:
        ok, seconds, tail = run_part(cmd, logs / f"{name}.log", BUDGET[name])
        row["parts"][name] = {"passed": ok, "seconds": round(seconds, 1), "last_line": tail}
        return ok

    ckpt = logs / "train" / "checkpoints" / "last.ckpt"
    if part("train", [py, "-m", f"{mod}.train", *train_overrides(package, out)]):
        part("eval", [py, "-m", f"{mod}.eval", *eval_overrides(package, out, ckpt)])
        row["metric"] = PLANS[package].metric
        row["metric_value"] = _metric(logs / "eval", PLANS[package].metric)
        extra = _text_to_pose_text(out) if package == "text-to-pose" else []
        cmd = [py, "-m", f"{mod}.sample", *sample_overrides(package, out, ckpt), *extra]
        row["sample_written"] = part("sample", cmd) and any(
            p.is_file() for p in (logs / "sample").rglob("*") if p.suffix != ".log"
        )
        result = logs / "bench.json"
        bench_cmd = [
            py,
            str(Path(__file__)),
            "bench-row",
            package,
            str(logs / "train"),
            str(result),
        ]
        if part("bench", bench_cmd):
            row.update(json.loads(result.read_text()))
    for name in ("eval", "sample", "bench"):
        row["parts"].setdefault(
            name, {"passed": False, "seconds": 0.0, "last_line": "not run: training failed"}
        )
    row["passed"] = all(p["passed"] for p in row["parts"].values())
    return row


def check_ddp(out: Path, gpus: int) -> dict:
    py = sys.executable
    mod = import_name(DDP_PACKAGE)
    batch = compose(DDP_PACKAGE, "train", train_overrides(DDP_PACKAGE, out)).data.batch_size
    row: dict = {"package": f"{DDP_PACKAGE} ddp x{gpus}", "parts": {}}
    first = out / DDP_PACKAGE / "ddp" / "checkpoints" / "last.ckpt"
    for name, ckpt, steps in (("ddp", None, STEPS), ("resume", first, STEPS + 10)):
        cmd = [py, "-m", f"{mod}.train", *ddp_overrides(out, gpus, batch, steps, ckpt)]
        ok, seconds, tail = run_part(cmd, out / DDP_PACKAGE / f"{name}.log", BUDGET[name])
        row["parts"][name] = {"passed": ok, "seconds": round(seconds, 1), "last_line": tail}
        if not ok:
            break
    resumed = out / DDP_PACKAGE / "ddp_resume" / "checkpoints" / "last.ckpt"
    if row["parts"].get("resume", {}).get("passed"):
        import torch

        step = torch.load(resumed, map_location="cpu", weights_only=False)["global_step"]
        row["resumed_global_step"] = step
        if step != STEPS + 10:
            row["parts"]["resume"]["passed"] = False
            row["parts"]["resume"]["last_line"] = f"resumed run ended at step {step}, not 30"
    row["parts"].setdefault("resume", {"passed": False, "seconds": 0.0, "last_line": "not run"})
    row["passed"] = all(p["passed"] for p in row["parts"].values())
    return row


def print_table(rows: list[dict]) -> None:
    head = f"{'package':<24} {'step s':>8} {'GPU GB':>7} {'metric':>26} {'sample':>6}  result"
    print(head)
    print("-" * len(head))
    for r in rows:
        metric = r.get("metric_value")
        metric_s = f"{r.get('metric', '')}={metric:.4g}" if metric is not None else "-"
        failed = [f"{k}: {v['last_line']}" for k, v in r["parts"].items() if not v["passed"]]
        print(
            f"{r['package']:<24} {r.get('step_s', float('nan')):>8.3f} "
            f"{r.get('peak_gpu_gb', float('nan')):>7.2f} {metric_s:>26} "
            f"{'yes' if r.get('sample_written') else '-':>6}  "
            f"{'pass' if r['passed'] else 'FAIL ' + '; '.join(failed)}"
        )


def real_run(out: Path) -> int:
    import torch

    if not torch.cuda.is_available():
        sys.exit("error: make gpu-check needs a CUDA GPU; on a CPU machine run DRY_RUN=1")
    gpus = torch.cuda.device_count()
    start = time.perf_counter()
    with ThreadPoolExecutor(len(PLANS)) as pool:
        rows = list(pool.map(lambda p: check_package(p, out), PLANS))
    rows.append(check_ddp(out, gpus))
    report = {
        "device": torch.cuda.get_device_name(),
        "gpus": gpus,
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print_table(rows)
    print(f"{report['device']} x{gpus}, {report['seconds']} s; wrote {out / 'gpu_check.json'}")
    return 0 if all(r["passed"] for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench-row"]:  # one package's bench row, in its own process
        Path(argv[3]).write_text(json.dumps(bench_row(argv[1], Path(argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="compose + static check, no GPU")
    parser.add_argument("--out", default=str(REPO / "gpu_check"), help="results folder")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return dry_run(out) if args.dry_run else real_run(out)


if __name__ == "__main__":
    sys.exit(main())
