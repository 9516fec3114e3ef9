"""``make bench MODEL=<package>``: run the package's benchmarks and write bench/<package>.json.

A package exposes ``<import>.bench.benchmarks(**kwargs) -> list[dict]``; each row has ``name``,
``seconds`` (median), optionally ``flops`` (per timed call), ``peak_mem_gb``, ``upstream_seconds``,
``target_ratio`` and ``notes``. This tool adds the machine's 2048^2 matmul peak (fp32 and bf16),
the ratio to upstream and the achieved fraction of peak, prints a table and writes the JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from pathlib import Path

import torch

from motioncore.bench import matmul_peak_gflops

REPO = Path(__file__).resolve().parents[1]


def machine() -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    info = {
        "device": torch.cuda.get_device_name()
        if device == "cuda"
        else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "peak_gflops_fp32": round(matmul_peak_gflops(torch.float32, device=device), 1),
        "peak_gflops_bf16": round(matmul_peak_gflops(torch.bfloat16, device=device), 1),
    }
    return info


def annotate(row: dict, peak: dict) -> dict:
    row = dict(row)
    if row.get("upstream_seconds"):
        row["ratio_vs_upstream"] = round(row["seconds"] / row["upstream_seconds"], 3)
        if row.get("target_ratio") is not None:
            row["meets_target"] = row["ratio_vs_upstream"] <= row["target_ratio"]
    if row.get("flops"):
        gflops = row["flops"] / row["seconds"] / 1e9
        row["achieved_gflops"] = round(gflops, 1)
        row["fraction_of_fp32_peak"] = round(gflops / peak["peak_gflops_fp32"], 3)
        row["fraction_of_bf16_peak"] = round(gflops / peak["peak_gflops_bf16"], 3)
    return row


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", default=str(REPO / "bench"))
    args = parser.parse_args(argv[:split])
    kwargs = dict(kv.split("=", 1) for kv in argv[split + 1 :])
    valid = sorted(p.parent.name for p in (REPO / "packages").glob("*/pyproject.toml"))
    if args.model not in valid:
        sys.exit(f"error: unknown MODEL={args.model!r}. Valid models: {', '.join(valid)}")
    module = importlib.import_module(f"{args.model.replace('-', '_')}.bench")
    peak = machine()
    print(f"machine: {peak}")
    rows = [annotate(r, peak) for r in module.benchmarks(**kwargs)]
    for r in rows:
        extra = {k: v for k, v in r.items() if k not in ("name", "seconds")}
        print(f"{r['name']:<60} {r['seconds']:>9.3f} s  {extra}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.model}.json"
    path.write_text(json.dumps({"machine": peak, "rows": rows}, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
