"""Benchmark helpers: a spawned row reports its own peak memory, not its parent's."""

from __future__ import annotations

import math
import time

import pytest
import torch

from motioncore.bench import (
    current_process_peak_rss_gb,
    peak_rss_gb,
    run_in_fresh_process,
    time_fn,
)


def test_spawned_peak_excludes_the_parents_memory():
    ballast = torch.ones(256 * 1024**2 // 4 * 4)  # 1 GiB held by this (parent) process
    parent = current_process_peak_rss_gb()
    assert parent > 1.0
    child = peak_rss_gb(time.sleep, 0)
    assert 0 < child < parent - 0.8, (child, parent)
    del ballast


def test_time_fn_reports_the_median_of_repeats():
    calls = []
    timing = time_fn(lambda: calls.append(time.sleep(0.01)), repeats=3, warmup=2)
    assert len(calls) == 5 and timing["repeats"] == 3
    assert 0.01 <= timing["min_s"] <= timing["median_s"] < 1.0


def test_fresh_process_returns_the_result_and_reports_failures():
    result, peak = run_in_fresh_process(math.sqrt, 16.0)
    assert result == 4.0 and peak > 0
    with pytest.raises(RuntimeError, match="ValueError: math domain error"):
        run_in_fresh_process(math.sqrt, -1.0)
