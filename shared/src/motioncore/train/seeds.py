"""Multi-seed evaluation: ``seeds=N`` (``make eval SEEDS=N``) repeats the test loop N times.

Round ``r`` (0..N-1) seeds the global RNGs with ``r`` and sets ``module.eval_round = r``; a
module makes its test-time sampling depend on the round by deriving its generators' seeds with
:func:`round_seed` (round 0 keeps the seeds a single evaluation uses, so ``seeds=1`` reproduces
the one-seed numbers). Keys written for every logged ``test/<m>`` and ``baseline/<m>``:

    test/<m>          mean over the rounds
    test/<m>/std      sample standard deviation (ddof=1)
    test/<m>/ci95     half-width of the 95% Student-t confidence interval of the mean
    baseline/<m>...   likewise
    delta/<m>         mean of (model - baseline) paired per round, with delta/<m>/std and /ci95
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats

PREFIXES = ("test/", "baseline/")
ROUND_STRIDE = 1_000_003  # a prime larger than any batch index, so rounds never share seeds


def round_seed(module: object, seed: int) -> int:
    """The seed a module's test step uses in the current evaluation round."""
    return seed + ROUND_STRIDE * int(getattr(module, "eval_round", 0))


def mean_std_ci95(values: Sequence[float]) -> tuple[float, float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0, 0.0
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std, float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)


def summarize_seeds(rounds: Sequence[dict[str, float | str]]) -> dict[str, float | str]:
    """Per-round metric dicts -> mean/std/ci95 of each test/baseline key plus paired deltas.

    A key that is non-finite (written as a string) in any round is reported as that string.
    """
    out: dict[str, float | str] = {}
    keys = sorted({k for r in rounds for k in r if k.startswith(PREFIXES)})
    for key in keys:
        values = [r.get(key, "nan") for r in rounds]
        _put(out, key, values)
        if key.startswith("test/"):
            name = key[len("test/") :]
            base = [r.get(f"baseline/{name}") for r in rounds]
            if all(b is not None for b in base):
                diffs = [
                    v - b if isinstance(v, float) and isinstance(b, float) else "nan"
                    for v, b in zip(values, base)
                ]
                _put(out, f"delta/{name}", diffs)
    return out


def _put(out: dict, key: str, values: list) -> None:
    bad = [v for v in values if not isinstance(v, float)]
    if bad:
        out[key] = out[f"{key}/std"] = out[f"{key}/ci95"] = str(bad[0])
        return
    out[key], out[f"{key}/std"], out[f"{key}/ci95"] = mean_std_ci95(values)
