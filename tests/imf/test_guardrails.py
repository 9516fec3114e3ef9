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


# train/d_accuracy, train/g_grad_norm and train/l1 as logged every 20 iterations (the value at
# iterations 19, 39, ..., 799) by the healthy 800-step quickstart measured at commit 162c803
# (test SSIM 0.490, PSNR 19.35); the GAN starts at iteration 640.
HEALTHY_GRAD_NORM = [7.093, 5.913, 6.725, 6.312, 5.884, 9.389, 7.144, 4.084, 9.941, 6.065,
                     7.138, 7.962, 6.508, 7.368, 8.614, 7.324, 8.284, 9.083, 4.841, 6.723,
                     7.878, 10.28, 5.636, 3.431, 4.872, 9.847, 6.402, 4.557, 5.326, 5.473,
                     5.296, 5.017, 9.056, 6.046, 7.076, 5.573, 7.081, 6.965, 7.825, 5.222]  # fmt: skip
HEALTHY_L1 = [0.3456, 0.2769, 0.3045, 0.241, 0.2063, 0.253, 0.2366, 0.1895, 0.2522, 0.1948,
              0.194, 0.1832, 0.1937, 0.1815, 0.1791, 0.1933, 0.1772, 0.1872, 0.1608, 0.1768,
              0.1775, 0.2042, 0.1387, 0.1236, 0.1536, 0.222, 0.1577, 0.1336, 0.1413, 0.1498,
              0.1305, 0.1473, 0.1775, 0.1633, 0.1597, 0.1376, 0.1534, 0.1571, 0.1794, 0.1461]  # fmt: skip
HEALTHY_D_ACCURACY = [0.5176, 0.5049, 0.5107, 0.5234, 0.5166, 0.5088, 0.5303, 0.5205]


def _replay(guard: CollapseGuard, d_accuracy: list[float]) -> list[str]:
    """Feed the logged trace as per-iteration values (each held for its 20 iterations)."""
    gan_from = len(HEALTHY_L1) - len(d_accuracy)
    reasons = []
    for step in range(1, 20 * len(HEALTHY_L1) + 1):
        i = (step - 1) // 20
        values = {"l1": HEALTHY_L1[i], "grad_norm": HEALTHY_GRAD_NORM[i]}
        if i >= gan_from:
            values["d_accuracy"] = d_accuracy[i - gan_from]
        guard.observe(**values)
        if step % guard.every == 0 and (reason := guard.check(step)):
            reasons.append(reason)
    return reasons


def test_quickstart_guard_passes_the_healthy_run_and_flags_a_won_discriminator(
    compose, repo_root, monkeypatch
):
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(repo_root / "experiments"))
    from motioncore.train import hydra_entry  # noqa: F401  (registers experiments://)

    configs = repo_root / "packages" / "imf" / "src" / "imf" / "configs"
    cfg = compose(configs, "train", ["experiment=quickstart", "paths.output_dir=/tmp/x"])
    settings = dict(cfg.model.guard)
    assert settings["d_accuracy"] is not None  # the quickstart watches its discriminator
    assert _replay(CollapseGuard(**settings), HEALTHY_D_ACCURACY) == []
    reasons = _replay(CollapseGuard(**settings), [0.995] * 8)  # D wins as soon as it starts
    assert reasons and "discriminator accuracy 0.995 (limit 0.98) for 3 checks" in reasons[0]
    assert "up to step 750" in reasons[0]  # checks 650 (its 10 GAN iterations), 700, 750


def test_each_check_writes_its_signals_to_the_log(tiny_module_kwargs, caplog):
    from imf.module import IMFModule

    module = IMFModule(**tiny_module_kwargs, guard=dict(every=2))
    opt = torch.optim.Adam(module.generator.parameters())
    for p in module.generator.parameters():
        p.grad = torch.full_like(p, 1e-3)
    out = {"train/l1": torch.tensor(0.25), "train/d_accuracy": torch.tensor(0.5)}
    with caplog.at_level("INFO", logger="imf.module"):
        module._guard_rolled_back(out, [opt, None], use_gan=True)  # iteration 1: no check
        assert "collapse guard" not in caplog.text
        module.guard.every = 1
        module._guard_rolled_back(out, [opt, None], use_gan=True)
    assert "collapse guard, step 1: d_accuracy 0.5, grad_norm" in caplog.text
    assert caplog.text.rstrip().endswith("l1 0.25")
