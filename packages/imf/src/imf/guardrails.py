"""GAN collapse guardrails: notice a collapsing run and roll back or stop, naming what was seen.

The public IMF reimplementation's GAN training collapses intermittently (mode collapse, blue
frames, exploding gradients). Every ``every`` iterations the guard averages three signals over
the iterations since the last check and flags the check when

- the discriminator's accuracy (real logits > 0 and fake logits < 0, both scales) is at least
  ``d_accuracy`` (D has won; G's adversarial gradient carries no information),
- the generator's gradient norm (before any clipping) exceeds ``grad_norm`` or is not finite,
- the reconstruction L1 has risen at every one of the last ``l1_rise_checks`` checks.

The first two must hold for ``patience`` consecutive checks (a non-finite gradient counts at
once). A flagged run is rolled back to the last good snapshot (weights and optimiser states of
the last unflagged check, held on the CPU) up to ``max_rollbacks`` times, after which (or with
``action: stop``) training stops with :class:`TrainingCollapsed`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

ACTIONS = ("rollback", "stop")


class TrainingCollapsed(RuntimeError):
    """Raised when the guard stops a run; the message names the signal and its values."""


@dataclass
class CollapseGuard:
    enabled: bool = True
    every: int = 50
    patience: int = 3
    d_accuracy: float | None = 0.98  # None: do not watch the discriminator
    grad_norm: float = 1.0e3
    l1_rise_checks: int = 5
    action: str = "rollback"
    max_rollbacks: int = 2
    rollbacks: int = 0
    _sums: dict = field(default_factory=dict)
    _counts: dict = field(default_factory=dict)  # per signal: D accuracy starts with the GAN
    _streaks: dict = field(default_factory=lambda: {"d_accuracy": 0, "grad_norm": 0})
    _l1_history: list = field(default_factory=list)
    last_means: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"model.guard.action must be one of {ACTIONS}, got {self.action!r}")
        if self.every < 1 or self.patience < 1 or self.l1_rise_checks < 1:
            raise ValueError("model.guard.every, patience and l1_rise_checks must be >= 1")

    def observe(self, **values: float) -> None:
        """Add one iteration's ``l1``, ``grad_norm`` and (with the GAN) ``d_accuracy``."""
        for name, value in values.items():
            self._sums[name] = self._sums.get(name, 0.0) + float(value)
            self._counts[name] = self._counts.get(name, 0) + 1
        if not math.isfinite(float(values.get("grad_norm", 0.0))):
            self._sums["grad_norm"] = math.inf

    def check(self, step: int) -> str | None:
        """At a check iteration: the reason the run looks collapsed, else ``None``."""
        if not self._counts:
            return None
        means = {k: v / self._counts[k] for k, v in self._sums.items()}
        self._sums, self._counts = {}, {}
        self.last_means = means
        reasons = []
        grad = means.get("grad_norm", 0.0)
        if not math.isfinite(grad):
            reasons.append(f"generator gradient norm is not finite at step {step}")
        for name, limit, text in (
            ("d_accuracy", self.d_accuracy, "discriminator accuracy"),
            ("grad_norm", self.grad_norm, "generator gradient norm"),
        ):
            value = means.get(name) if limit is not None else None
            over = value is not None and (value >= limit if name == "d_accuracy" else value > limit)
            self._streaks[name] = self._streaks[name] + 1 if over else 0
            if over and self._streaks[name] >= self.patience:
                reasons.append(
                    f"{text} {value:.4g} (limit {limit:g}) for {self._streaks[name]} checks "
                    f"of {self.every} steps up to step {step}"
                )
        if "l1" in means:
            self._l1_history = (self._l1_history + [means["l1"]])[-(self.l1_rise_checks + 1) :]
            history = self._l1_history
            if len(history) > self.l1_rise_checks and all(
                b > a for a, b in zip(history[:-1], history[1:])
            ):
                rise = " -> ".join(f"{v:.4f}" for v in history)
                reasons.append(f"reconstruction L1 rose at {self.l1_rise_checks} checks ({rise})")
        return "; ".join(reasons) or None

    def describe_last(self) -> str:
        """The signals the last check averaged, e.g. ``d_accuracy 0.52, grad_norm 6.1, l1 0.15``
        (the training log's trace of the guard)."""
        names = [n for n in ("d_accuracy", "grad_norm", "l1") if n in self.last_means]
        return ", ".join(f"{n} {self.last_means[n]:.4g}" for n in names) or "no iterations"

    def reset_signals(self) -> None:
        """After a rollback: the streaks and L1 history belong to the discarded weights."""
        self._streaks = {k: 0 for k in self._streaks}
        self._l1_history = []


def snapshot(modules: dict[str, nn.Module], optimizers: list) -> dict:
    """CPU copy of the modules' weights and the optimisers' states."""
    return {
        "modules": {
            name: {k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()}
            for name, m in modules.items()
        },
        "optimizers": [copy.deepcopy(_cpu(o.state_dict())) for o in optimizers],
    }


def restore(state: dict, modules: dict[str, nn.Module], optimizers: list) -> None:
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    for opt, opt_state in zip(optimizers, state["optimizers"]):
        opt.load_state_dict(opt_state)


def _cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cpu(v) for v in value)
    return value
