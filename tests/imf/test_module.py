"""The GAN step (one backward, separate optimisers), the overfit check and configs."""

from __future__ import annotations

import math
import warnings

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from imf.data import ClipPairs, SyntheticSpec, render_clip, to_model_frames
from imf.module import IMFModule, check_precision, redraw_current
from motioncore.losses import hinge_d_loss
from motioncore.media import write_video
from motioncore.metrics import ssim


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


def test_ssim_term_adds_its_weighted_loss_and_its_gradient_raises_ssim(tiny_module_kwargs):
    clip = render_clip(SyntheticSpec(image_size=32, frames=4, sprites=1), np.random.default_rng(0))
    frames = to_model_frames(clip, 32)
    batch = {"reference": frames[[0, 0]], "current": frames[[2, 3]]}
    kwargs = {**tiny_module_kwargs, "lambda_gan": 0.0, "lambda_perceptual": 0.0}
    torch.manual_seed(0)
    plain_module = IMFModule(**kwargs).eval()
    torch.manual_seed(0)
    module = IMFModule(**kwargs, lambda_ssim=3.0).eval()
    assert "train/ssim_loss" not in plain_module.step_losses(batch, use_gan=False)
    out = module.step_losses(batch, use_gan=False)
    with torch.no_grad():
        pred = module.generator(batch["current"], batch["reference"])
    expected = 1 - ssim((pred + 1) / 2, (batch["current"] + 1) / 2, data_range=1.0).mean()
    torch.testing.assert_close(out["train/ssim_loss"], expected)
    torch.testing.assert_close(
        out["generator"], plain_module.step_losses(batch, use_gan=False)["generator"] + 3 * expected
    )
    opt = torch.optim.Adam(module.generator.parameters(), lr=1e-3)
    for _ in range(5):
        opt.zero_grad()
        module.step_losses(batch, use_gan=False)["train/ssim_loss"].backward()
        opt.step()
    assert float(module.step_losses(batch, use_gan=False)["train/ssim_loss"]) < float(expected)


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


class RecordLR(pl.Callback):
    """The learning rates each training iteration ran with."""

    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, *args):
        self.lrs.append([o.param_groups[0]["lr"] for o in trainer.optimizers])


def test_cosine_schedule_decays_both_learning_rates(tiny_module_kwargs):
    kwargs = {**tiny_module_kwargs, "lr_schedule": "cosine", "lr_min_ratio": 0.1}
    module = IMFModule(**kwargs)
    record = RecordLR()
    trainer = pl.Trainer(
        max_steps=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=[record],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(OnePair(), batch_size=4))
    # Iteration s of 4 runs at base * (0.1 + 0.9 * (1 + cos(pi s / 4)) / 2), the curve of the
    # former hand-written decay; after the last one the rates sit at the 0.1 floor.
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * s / 4)) / 2 for s in range(5)]
    final = [[o.param_groups[0]["lr"] for o in trainer.optimizers]]
    for (lr_g, lr_d), factor in zip(record.lrs + final, expected, strict=True):
        assert lr_g == pytest.approx(module.hparams.lr_g * factor)
        assert lr_d == pytest.approx(module.hparams.lr_d * factor)
    constant = IMFModule(**tiny_module_kwargs)
    _fit(constant, 2)
    assert constant.trainer.optimizers[0].param_groups[0]["lr"] == constant.hparams.lr_g
    with pytest.raises(ValueError, match="lr_schedule"):
        IMFModule(**{**tiny_module_kwargs, "lr_schedule": "linear"})


class TinyClips(pl.LightningDataModule):
    """Two rendered 8-frame clips as the test split (evaluation pairs of ClipPairs)."""

    def __init__(self, tmp_path):
        super().__init__()
        spec = SyntheticSpec(image_size=32, frames=8, sprites=1)
        paths = []
        for i in range(2):
            paths.append(tmp_path / f"clip{i}.mp4")
            write_video(paths[-1], render_clip(spec, np.random.default_rng(i)), 8)
        self.test_set = ClipPairs(paths, image_size=32, pairs_per_clip=3, train=False)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=3)


def test_seed_rounds_redraw_the_test_frames(tiny_module_kwargs, tmp_path):
    """SEEDS=3 (the runner sets eval_round 0, 1, 2): round 0 is the one-seed evaluation,
    rounds 1 and 2 evaluate other frames, each its own."""
    torch.manual_seed(0)
    module = IMFModule(**{**tiny_module_kwargs, "rd_qualities": [], "sample_clips": 0})
    data = TinyClips(tmp_path)
    trainer = pl.Trainer(
        logger=False,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    psnrs = []
    for eval_round in (None, 0, 1, 2):
        if eval_round is not None:
            module.eval_round = eval_round
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.test(module, datamodule=data, verbose=False)
        metrics = trainer.callback_metrics
        psnrs.append((float(metrics["test/psnr"]), float(metrics["baseline/psnr"])))
    single, round0, round1, round2 = psnrs
    assert round0 == single
    assert len({round0, round1, round2}) == 3
    batch = next(iter(data.test_dataloader()))
    redrawn = redraw_current(batch, data.test_set.clips, 5)
    assert torch.equal(redrawn["reference"], batch["reference"])
    for clip, frame, current in zip(redrawn["clip"], redrawn["frame"], redrawn["current"]):
        assert 1 <= frame < 8 and torch.equal(current, data.test_set.clips[clip][frame])


def test_discriminator_accuracy_is_a_training_log_entry(tiny_module_kwargs):
    from imf.module import discriminator_accuracy

    ones, twos = [torch.ones(2, 1, 4, 4)], [torch.ones(2, 1, 2, 2)] * 2
    assert float(discriminator_accuracy(ones, [-o for o in ones])) == 1.0  # D has won
    assert float(discriminator_accuracy(twos, twos)) == 0.5  # everything called real
    module = IMFModule(**{**tiny_module_kwargs, "guard": {"enabled": False}})
    pair = OnePair()
    batch = {"reference": pair.reference, "current": pair.current}
    out = module.step_losses(batch, use_gan=True)
    expected = discriminator_accuracy(out["real_logits"], out["fake_logits"])
    assert float(out["train/d_accuracy"]) == float(expected)  # logged with the guard off too
    assert "train/d_accuracy" not in module.step_losses(batch, use_gan=False)
