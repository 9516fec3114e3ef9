"""The GAN step (one backward, separate optimisers), the overfit check and configs."""

from __future__ import annotations

import warnings

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from imf.data import SyntheticSpec, render_clip, to_model_frames
from imf.module import IMFModule, check_precision
from motioncore.losses import hinge_d_loss


class OnePair(Dataset):
    def __init__(self, size: int = 32, batch: int = 4):
        g = torch.Generator().manual_seed(0)
        base = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
        self.reference, self.current = base, torch.roll(base, shifts=3, dims=-1)

    def __len__(self) -> int:
        return len(self.current)

    def __getitem__(self, i):
        return {"reference": self.reference[i], "current": self.current[i]}


def _fit(module: IMFModule, steps: int) -> pl.Trainer:
    trainer = pl.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(OnePair(), batch_size=4))
    return trainer


def test_gan_step_updates_both_nets_and_counts_generator_steps(tiny_module_kwargs):
    torch.manual_seed(0)
    module = IMFModule(**tiny_module_kwargs)
    before_g = [p.detach().clone() for p in module.generator.parameters()]
    before_d = [p.detach().clone() for p in module.discriminator.parameters()]
    trainer = _fit(module, 3)
    assert trainer.global_step == 3  # D updates are not counted as extra steps
    assert any(not torch.equal(a, b) for a, b in zip(before_g, module.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_d, module.discriminator.parameters()))
    opt_g, opt_d = trainer.optimizers
    assert opt_d.state[next(module.discriminator.parameters())]["step"] == 3
    assert opt_g.state[next(module.generator.parameters())]["step"] == 3
    assert int(module.ada.steps) == 3
    for key in (
        "train/loss",
        "train/l1",
        "train/perceptual",
        "train/g_adv",
        "train/d_loss",
        "train/ada_p",
    ):
        assert key in trainer.callback_metrics


def test_generator_adversarial_term_never_reaches_discriminator(tiny_module_kwargs):
    torch.manual_seed(0)
    module = IMFModule(**tiny_module_kwargs)
    fake = torch.rand(2, 3, 32, 32, requires_grad=True) * 2 - 1
    sum(t.mean() for t in module.discriminate_frozen(fake)).backward()
    assert all(p.grad is None for p in module.discriminator.parameters())
    # Same logits as the trainable path, so the generator sees the real D.
    module.discriminator.eval()
    frozen = module.discriminate_frozen(fake.detach())
    live = module.discriminator(fake.detach())
    for a, b in zip(frozen, live):
        torch.testing.assert_close(a, b)


def test_single_backward_gives_discriminator_its_own_gradient(tiny_module_kwargs):
    torch.manual_seed(0)
    module = IMFModule(**tiny_module_kwargs)
    module.ada.p.fill_(0)
    disc = module.discriminator.eval()
    real, fake = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32, requires_grad=True)
    loss_d = hinge_d_loss(disc(real), disc(fake.detach()))
    alone = torch.autograd.grad(loss_d, list(disc.parameters()))
    g_adv = -sum(t.mean() for t in module.discriminate_frozen(fake))
    combined = torch.autograd.grad(
        hinge_d_loss(disc(real), disc(fake.detach())) + g_adv, list(disc.parameters())
    )
    for a, b in zip(alone, combined):
        torch.testing.assert_close(a, b)


def test_overfit_one_batch_l1_falls_threefold(tiny_module_kwargs):
    """100 Adam steps of the module's own loss on one batch of synthetic frames (same
    reference, four current frames): the L1 term falls at least 3x."""
    torch.manual_seed(0)
    clip = render_clip(SyntheticSpec(image_size=32, frames=8, sprites=1), np.random.default_rng(0))
    frames = to_model_frames(clip, 32)
    batch = {"reference": frames[[0, 0, 0, 0]], "current": frames[[2, 4, 6, 7]]}
    kwargs = {**tiny_module_kwargs, "lambda_gan": 0.0, "lambda_perceptual": 0.0}
    module = IMFModule(**kwargs).train()
    opt = torch.optim.Adam(module.generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    history = []
    for _ in range(100):
        out = module.step_losses(batch, use_gan=False)
        opt.zero_grad()
        out["total"].backward()
        opt.step()
        history.append(float(out["train/l1"]))
    assert sum(history[-5:]) / 5 < history[0] / 3


def test_fp16_is_rejected_and_bf16_autocast_trains(tiny_module_kwargs):
    with pytest.raises(ValueError, match="bf16-mixed"):
        check_precision("16-mixed")
    check_precision("bf16-mixed")
    module = IMFModule(**tiny_module_kwargs)
    trainer = pl.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        precision="bf16-mixed",
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(OnePair(), batch_size=4))
    assert trainer.global_step == 1
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_cosine_schedule_decays_both_learning_rates(tiny_module_kwargs):
    kwargs = {**tiny_module_kwargs, "lr_schedule": "cosine", "lr_min_ratio": 0.1}
    module = IMFModule(**kwargs)
    assert module.lr_factor(0, 10) == 1.0
    assert module.lr_factor(5, 10) == pytest.approx(0.55)
    assert module.lr_factor(10, 10) == pytest.approx(0.1)
    assert IMFModule(**tiny_module_kwargs).lr_factor(5, 10) == 1.0  # constant (the default)
    trainer = _fit(module, 4)
    opt_g, opt_d = trainer.optimizers
    # The last step (global step 3 of 4) ran with the cosine factor of step 3.
    factor = module.lr_factor(3, 4)
    assert opt_g.param_groups[0]["lr"] == pytest.approx(module.hparams.lr_g * factor)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(module.hparams.lr_d * factor)
    with pytest.raises(ValueError, match="lr_schedule"):
        IMFModule(**{**tiny_module_kwargs, "lr_schedule": "linear"})
