"""Adaptive discriminator augmentation: p rises and falls toward the target; augments are
differentiable."""

from __future__ import annotations

import pytest
import torch

from imf.augment import AdaptiveAugment


def _update(ada: AdaptiveAugment, sign: float, batch: int = 8) -> float | None:
    ada.accumulate([torch.full((batch, 1, 4, 4), sign)])
    return ada.step(batch)


def test_p_rises_when_discriminator_overfits_and_falls_back():
    ada = AdaptiveAugment(target=0.6, speed_kimg=1.0, interval=2)
    assert float(ada.p) == 0
    assert _update(ada, 1.0) is None  # first of two steps of the interval
    assert _update(ada, 1.0) == pytest.approx(1.0)
    step = 8 * 2 / 1000
    assert float(ada.p) == pytest.approx(step)
    for _ in range(4):
        _update(ada, 1.0)
    assert float(ada.p) == pytest.approx(3 * step)
    for _ in range(2):
        _update(ada, -1.0)  # D no longer confident on reals: r_t = -1 < target
    assert float(ada.p) == pytest.approx(2 * step)
    for _ in range(40):
        _update(ada, -1.0)
    assert float(ada.p) == 0  # clamped at 0


def test_rt_is_mean_sign_and_p_is_clamped_to_p_max():
    ada = AdaptiveAugment(target=0.5, speed_kimg=0.001, interval=1, p_max=0.5)
    ada.accumulate([torch.tensor([[1.0, 1.0, -1.0, -1.0]]), torch.tensor([[1.0, 1.0]])])
    assert ada.step(4) == pytest.approx(1 / 3)  # (4 - 2) / 6
    assert float(ada.p) == 0  # r_t below target: p stays at its floor
    ada.accumulate([torch.tensor([[1.0, 1.0, 1.0, -1.0]])])
    assert ada.step(4) == 0.5
    assert float(ada.p) == 0  # r_t == target: no move
    _update(ada, 1.0)
    assert float(ada.p) == 0.5


def test_step_uses_the_distributed_reduction():
    ada = AdaptiveAugment(target=0.0, speed_kimg=1.0, interval=1)
    ada.accumulate([torch.ones(1, 4)])
    calls = []

    def reduce(t):
        calls.append(t.clone())
        return t * torch.tensor([-3.0, 1.0])  # the other ranks were negative

    assert ada.step(2, reduce) == pytest.approx(-3.0)
    assert len(calls) == 1 and float(ada.p) == 0


def test_augment_identity_at_p0_random_and_differentiable_above():
    ada = AdaptiveAugment(p_init=0.0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert torch.equal(ada(x), x)
    ada.p.fill_(1.0)
    x.requires_grad_()
    out = ada(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    assert out.min() >= -1 and out.max() <= 1
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    disabled = AdaptiveAugment(enabled=False, p_init=1.0)
    assert torch.equal(disabled(x), x)


def test_bad_ada_settings_are_rejected():
    with pytest.raises(ValueError, match="interval"):
        AdaptiveAugment(interval=0)
