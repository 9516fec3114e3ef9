"""GAN collapse guardrails: each signal is noticed, named, and rolled back or stopped."""

from __future__ import annotations

import pytest
import torch

from imf.guardrails import CollapseGuard, TrainingCollapsed, restore, snapshot


def _run(guard: CollapseGuard, checks: int, **values) -> list[str | None]:
    out = []
    for check in range(1, checks + 1):
        for _ in range(guard.every):
            guard.observe(**{k: (v(check) if callable(v) else v) for k, v in values.items()})
        out.append(guard.check(check * guard.every))
    return out


def test_saturated_discriminator_needs_patience_checks():
    guard = CollapseGuard(every=2, patience=3)
    seen = _run(guard, 3, l1=0.1, grad_norm=1.0, d_accuracy=0.995)
    assert seen[:2] == [None, None]
    assert "discriminator accuracy 0.995 (limit 0.98) for 3 checks" in seen[2]
    assert (
        _run(CollapseGuard(every=2, patience=3), 5, l1=0.1, grad_norm=1.0, d_accuracy=0.9)
        == [None] * 5
    )


def test_exploding_and_non_finite_generator_gradients():
    seen = _run(CollapseGuard(every=1, patience=2), 2, l1=0.1, grad_norm=5e3)
    assert seen[0] is None and "generator gradient norm 5000" in seen[1]
    seen = _run(CollapseGuard(every=1, patience=5), 1, l1=0.1, grad_norm=float("nan"))
    assert "not finite" in seen[0]


def test_rising_reconstruction_l1():
    guard = CollapseGuard(every=1, l1_rise_checks=3)
    seen = _run(guard, 4, l1=lambda c: 0.1 * c, grad_norm=1.0)
    assert seen[:3] == [None] * 3 and "reconstruction L1 rose at 3 checks" in seen[3]
    wobbly = _run(CollapseGuard(every=1, l1_rise_checks=3), 6, l1=lambda c: c % 2, grad_norm=1.0)
    assert wobbly == [None] * 6


def test_bad_guard_settings_are_named():
    with pytest.raises(ValueError, match="model.guard.action"):
        CollapseGuard(action="ignore")


def test_module_rolls_back_then_stops(tiny_module_kwargs):
    from imf.module import IMFModule

    module = IMFModule(
        **tiny_module_kwargs, guard=dict(every=1, patience=1, grad_norm=1e-9, max_rollbacks=1)
    )
    opt = torch.optim.Adam(module.generator.parameters())
    out = {"train/l1": torch.tensor(0.1)}
    for p in module.generator.parameters():
        p.grad = torch.ones_like(p)
    module.guard.grad_norm = 1e9  # a good check: snapshot taken
    assert not module._guard_rolled_back(out, [opt, None], use_gan=False)
    good = {k: v.clone() for k, v in module.generator.state_dict().items()}
    with torch.no_grad():
        for p in module.generator.parameters():
            p.add_(1.0)
    module.guard.grad_norm = 1e-9  # now every check is flagged
    assert module._guard_rolled_back(out, [opt, None], use_gan=False)
    after = module.generator.state_dict()
    assert all(torch.equal(after[k], v) for k, v in good.items())
    with pytest.raises(TrainingCollapsed, match="again after 1 rollbacks: generator gradient norm"):
        module._guard_rolled_back(out, [opt, None], use_gan=False)


def test_snapshot_restores_optimizer_state():
    layer = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(layer.parameters())
    layer(torch.ones(1, 2)).sum().backward()
    opt.step()
    state = snapshot({"layer": layer}, [opt])
    opt.step()
    restore(state, {"layer": layer}, [opt])
    assert opt.state_dict()["state"][0]["step"] == 1


def test_discriminator_signal_can_be_switched_off():
    guard = CollapseGuard(every=1, patience=1, d_accuracy=None)
    assert _run(guard, 3, l1=0.1, grad_norm=1.0, d_accuracy=1.0) == [None] * 3
