"""Benchmark helpers used by every package's ``bench.py`` and by ``make bench``.

Timings are medians over repeats after warm-up; memory is the peak of the workload alone
(CUDA: ``max_memory_allocated``; CPU: peak RSS of a fresh spawned process running it).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_fn(
    fn: Callable[[], Any], repeats: int = 5, warmup: int = 1, device: str = "cpu"
) -> dict[str, float]:
    """Median/min wall seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats}


def matmul_peak_gflops(
    dtype: torch.dtype = torch.float32, n: int = 2048, device: str = "cpu"
) -> float:
    """Achieved GFLOP/s of an n x n matmul: the machine's peak that bench rows are a fraction of."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = time_fn(lambda: a @ b, repeats=5, warmup=2, device=device)["min_s"]
    return 2 * n**3 / t / 1e9


def current_process_peak_rss_gb() -> float:
    """Peak RSS (GB) of this process since its last exec: Linux's ``VmHWM``.

    Not ``ru_maxrss``: Linux folds the pre-exec memory of a spawned child (the parent's pages it
    was forked with) into ``ru_maxrss``, so every spawned row would report at least the parent's
    peak. ``ru_maxrss`` remains the fallback where /proc is missing (macOS reports bytes).
    """
    try:
        with open("/proc/self/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            kb /= 1024
    return kb / 1024**2


def _child(conn, fn, args):
    try:
        result = fn(*args)
        conn.send((result, current_process_peak_rss_gb()))
    except BaseException as e:  # report, do not hang the parent
        conn.send(f"error: {type(e).__name__}: {e}")


def run_in_fresh_process(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``(fn(*args), peak RSS GB)`` from a fresh spawned process (threads as in the parent).

    ``fn`` must be a module-level function (spawn pickles it by reference) and its result
    picklable.
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args))
    proc.start()
    result = parent.recv()
    proc.join()
    if isinstance(result, str):
        raise RuntimeError(f"benchmark workload failed in its subprocess: {result}")
    return result


def peak_rss_gb(fn: Callable[..., Any], *args: Any) -> float:
    """Peak resident memory (GB) of a fresh spawned process that runs ``fn(*args)``."""
    return float(run_in_fresh_process(fn, *args)[1])


def load_average() -> str:
    """The 1/5/15-minute load averages, for bench notes (timings under load are pessimistic)."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def peak_cuda_gb(fn: Callable[[], Any]) -> float:
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 1024**3
