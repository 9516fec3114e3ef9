"""IMFModule: GAN training of the IMF generator, evaluation metrics and sample media."""

from __future__ import annotations

import logging
from pathlib import Path

import imageio.v2 as imageio
import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call
from torch.optim.lr_scheduler import CosineAnnealingLR

from imf.augment import AdaptiveAugment
from imf.guardrails import CollapseGuard, TrainingCollapsed, restore, snapshot
from imf.model import IMFGenerator, MultiScalePatchDiscriminator
from imf.rate_distortion import rate_distortion, write_report
from motioncore.losses import VGGPerceptualLoss, hinge_d_loss, hinge_g_loss
from motioncore.media import to_uint8, write_video
from motioncore.metrics import lpips_or_none, psnr, ssim
from motioncore.train import plain, round_seed

log = logging.getLogger(__name__)

LR_SCHEDULES = ("constant", "cosine")
SAMPLE_FPS = 12.0


def check_precision(precision: str) -> None:
    """fp16 AMP needs one GradScaler step per backward; IMF steps two optimisers per backward."""
    if precision in ("16-mixed", "16", "16-true"):
        raise ValueError(
            f"trainer.precision={precision} is not supported: IMF steps two optimisers after one "
            "backward, which fp16 loss scaling does not allow. Use trainer.precision=bf16-mixed "
            "(or 32-true)."
        )


def discriminator_accuracy(real_logits: list[Tensor], fake_logits: list[Tensor]) -> Tensor:
    """Share of patches D classifies right (real > 0, fake < 0), averaged over its scales;
    0.5 is a D that cannot tell, 1.0 one that has won."""
    return (
        torch.stack(
            [
                ((r > 0).float().mean() + (f < 0).float().mean()) / 2
                for r, f in zip(real_logits, fake_logits)
            ]
        )
        .mean()
        .detach()
    )


def redraw_current(batch: dict[str, Tensor], clips: list[Tensor], seed: int) -> dict[str, Tensor]:
    """The batch with each pair's current frame drawn anew, uniformly from frames 1.. of its
    clip (the reference stays the clip's first frame, the codec setting).

    Evaluation is deterministic, so ``make eval SEEDS=N`` varies the test frames instead: round 0
    keeps the dataset's evenly spaced pairs, round r > 0 draws with ``round_seed`` and the rounds'
    spread is that over the choice of test frames.
    """
    generator = torch.Generator().manual_seed(seed)
    picks = [
        int(torch.randint(1, len(clips[c]), (1,), generator=generator))
        for c in batch["clip"].tolist()
    ]
    current = torch.stack([clips[c][t] for c, t in zip(batch["clip"].tolist(), picks)])
    return {
        **batch,
        "current": current.to(batch["current"]),
        "frame": torch.tensor(picks, device=batch["frame"].device),
    }


class IMFModule(pl.LightningModule):
    """Generator + multi-scale patch discriminator with manual optimisation.

    Generator loss (IMF supp. sec. 2): ``lambda_l1 * |x_hat - x|_1 + lambda_perceptual *
    VGG-pyramid(x_hat, x) + lambda_ssim * (1 - SSIM(x_hat, x)) + lambda_gan * hinge_G(D(x_hat))``
    (the SSIM term is not in the paper and off by default); discriminator loss
    ``hinge_D(D(x), D(x_hat.detach()))``. Images are in [-1, 1].

    One step is the usual alternating GAN update written as a single backward: the generator's
    adversarial term sees D through *detached* parameters (so it only moves G) and D's loss sees
    the detached fake (so it only moves D); with both optimisers stepped after one backward,
    every parameter gets exactly its alternating-step gradient, each DDP rank reduces all
    parameters once per step, and no ``find_unused_parameters`` is needed. ``trainer.global_step``
    counts generator updates (the discriminator optimiser is stepped outside Lightning's step
    counter, so ``max_steps`` means training iterations).

    Args:
        generator / discriminator / ada / perceptual: keyword arguments of
            :class:`IMFGenerator`, :class:`MultiScalePatchDiscriminator`,
            :class:`AdaptiveAugment` and :class:`motioncore.losses.VGGPerceptualLoss`.
        lambda_l1 / lambda_perceptual / lambda_gan: loss weights (paper 10 / 10 / 1); a zero
            weight drops the term (and, for the GAN, the discriminator).
        lambda_ssim: weight of ``1 - SSIM`` (the evaluation's SSIM, Gaussian 11x11 window, on
            [0, 1] pixels); 0 (the paper) drops it. A cheap structural stand-in for the VGG
            term where that costs more than the generator (small images on CPU).
        gan_start_step: iterations of reconstruction-only warm-up before the GAN terms.
        lr_g / lr_d / betas: Adam (paper 2e-4, (0.5, 0.999)).
        grad_clip_g / grad_clip_d: max gradient norm, ``null`` = off (the paper uses none).
        lr_schedule: ``constant`` (the paper) or ``cosine``: both learning rates follow a
            half cosine from their value down to ``lr_min_ratio`` times it over
            ``trainer.max_steps`` iterations (torch's ``CosineAnnealingLR``, stepped once per
            iteration; short CPU runs end sharper with the decay).
        sample_clips: clips reconstructed into sample media at validation/test end.
        rd_qualities: qualities Q of the test-time rate-distortion curve (each test clip goes
            through the real ``.imf`` bitstream at every Q, see :mod:`imf.rate_distortion`);
            empty: no curve.
        rd_clips: test clips in the curve (``null``: all).
        guard: keyword arguments of :class:`imf.guardrails.CollapseGuard` (discriminator
            accuracy, generator gradient norm and L1 trend checks; rollback or stop).
    """

    def __init__(
        self,
        generator: dict,
        discriminator: dict,
        ada: dict,
        perceptual: dict,
        lambda_l1: float = 10.0,
        lambda_perceptual: float = 10.0,
        lambda_gan: float = 1.0,
        lambda_ssim: float = 0.0,
        gan_start_step: int = 0,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        grad_clip_g: float | None = None,
        grad_clip_d: float | None = None,
        lr_schedule: str = "constant",
        lr_min_ratio: float = 0.05,
        sample_clips: int = 2,
        rd_qualities: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
        rd_clips: int | None = None,
        guard: dict | None = None,
    ):
        super().__init__()
        # Plain containers, so checkpoints load with torch.load(weights_only=True).
        generator, discriminator, ada, perceptual = (
            plain(c) for c in (generator, discriminator, ada, perceptual)
        )
        betas = tuple(plain(betas))
        guard = dict(plain(guard) or {})
        rd_qualities = [float(q) for q in plain(rd_qualities)]
        if any(not q > 0 for q in rd_qualities):
            raise ValueError(f"model.rd_qualities must all be > 0, got {rd_qualities}")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = IMFGenerator(**generator)
        self.discriminator = (
            MultiScalePatchDiscriminator(**discriminator) if lambda_gan > 0 else None
        )
        self.ada = AdaptiveAugment(**ada)
        self.guard = CollapseGuard(**guard)
        self._last_good: tuple[int, dict] | None = None
        # Held outside the module tree: the frozen VGG must not bloat every checkpoint.
        self._perceptual = (VGGPerceptualLoss(**perceptual),) if lambda_perceptual > 0 else ()

    # ---------------------------------------------------------------- training
    def configure_optimizers(self):
        hp = self.hparams
        betas = tuple(hp.betas)
        optimizers = [torch.optim.Adam(self.generator.parameters(), lr=hp.lr_g, betas=betas)]
        if self.discriminator is not None:
            optimizers.append(
                torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr_d, betas=betas)
            )
        if hp.lr_schedule == "constant":
            return optimizers
        total = self.trainer.max_steps
        if not total or total < 1:
            total = int(self.trainer.estimated_stepping_batches)
        # diffusers' get_scheduler("cosine") decays to 0; eta_min keeps the lr_min_ratio floor.
        schedulers = [
            CosineAnnealingLR(opt, T_max=total, eta_min=opt.defaults["lr"] * hp.lr_min_ratio)
            for opt in optimizers
        ]
        return optimizers, schedulers

    def on_fit_start(self) -> None:
        check_precision(str(self.trainer.precision))

    def perceptual_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        (loss_fn,) = self._perceptual
        if loss_fn.mean.device != pred.device:
            loss_fn.to(pred.device)
        return loss_fn(pred.float(), target.float()).mean()

    def discriminate_frozen(self, images: Tensor) -> list[Tensor]:
        """D's logits with D's parameters detached: gradients reach the images only."""
        params = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        return functional_call(self.discriminator, params, (images,))

    def gan_active(self) -> bool:
        return self.discriminator is not None and self.global_step >= self.hparams.gan_start_step

    def step_losses(self, batch: dict[str, Tensor], use_gan: bool) -> dict[str, Tensor]:
        """Forward of one training iteration: ``total`` (the one tensor to backpropagate),
        ``generator`` and, with the GAN, ``discriminator`` and ``real_logits``, plus
        ``train/...`` entries for the logger. Shared by the training step and the benchmark."""
        hp = self.hparams
        reference, current = batch["reference"], batch["current"]
        pred = self.generator(current, reference)
        l1 = (pred - current).abs().mean()
        loss_g = hp.lambda_l1 * l1
        out = {"train/l1": l1}
        if self._perceptual:
            perceptual = self.perceptual_loss(pred, current)
            loss_g = loss_g + hp.lambda_perceptual * perceptual
            out["train/perceptual"] = perceptual
        if hp.lambda_ssim > 0:
            structural = (
                1 - ssim((pred.float() + 1) / 2, (current.float() + 1) / 2, data_range=1.0).mean()
            )
            loss_g = loss_g + hp.lambda_ssim * structural
            out["train/ssim_loss"] = structural
        total = loss_g
        if self.discriminator is not None and not use_gan:
            # Before gan_start_step D takes no part in the loss; a zero-weighted touch of every
            # D parameter keeps them in the graph, so DDP needs no find_unused_parameters (Adam
            # leaves a parameter with an all-zero gradient history unchanged).
            total = total + 0.0 * sum(p.sum() for p in self.discriminator.parameters())
        if use_gan:
            g_adv = hinge_g_loss(self.discriminate_frozen(self.ada(pred)))
            loss_g = loss_g + hp.lambda_gan * g_adv
            real_logits = self.discriminator(self.ada(current))
            fake_logits = self.discriminator(self.ada(pred.detach()))
            loss_d = hinge_d_loss(real_logits, fake_logits)
            total = loss_g + loss_d
            out.update(
                {
                    "train/g_adv": g_adv,
                    "train/d_loss": loss_d,
                    "train/d_accuracy": discriminator_accuracy(real_logits, fake_logits),
                    "discriminator": loss_d,
                    "real_logits": real_logits,
                    "fake_logits": fake_logits,
                }
            )
        out.update({"generator": loss_g, "total": total})
        return out

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        hp = self.hparams
        optimizers = self.optimizers()
        opt_g, opt_d = (optimizers, None) if self.discriminator is None else optimizers
        use_gan = self.gan_active()
        out = self.step_losses(batch, use_gan)
        opt_g.zero_grad(set_to_none=True)
        if opt_d is not None:
            opt_d.zero_grad(set_to_none=True)
        self.manual_backward(out["total"])
        if self.guard.enabled and self._guard_rolled_back(out, [opt_g, opt_d], use_gan):
            return out["total"].detach()  # this step's gradients came from collapsed weights
        if hp.grad_clip_g:
            self.clip_gradients(
                opt_g, gradient_clip_val=hp.grad_clip_g, gradient_clip_algorithm="norm"
            )
        logs = {k: v.detach() for k, v in out.items() if k.startswith("train/")}
        if use_gan:
            if hp.grad_clip_d:
                self.clip_gradients(
                    opt_d, gradient_clip_val=hp.grad_clip_d, gradient_clip_algorithm="norm"
                )
            opt_d.optimizer.step()  # raw optimiser: not counted in global_step (see class doc)
            self.ada.accumulate(out["real_logits"])
            reduce = None
            if self.trainer.world_size > 1:

                def reduce(t):
                    return self.trainer.strategy.reduce(t, reduce_op="sum")

            r_t = self.ada.step(len(batch["current"]) * self.trainer.world_size, reduce)
            if r_t is not None:
                logs["train/ada_rt"] = torch.tensor(r_t)
            logs["train/ada_p"] = self.ada.p.clone()
        opt_g.step()
        # Manual optimisation: Lightning steps no scheduler itself (one step per iteration).
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if scheduler is not None:
                scheduler.step()
        self.log_dict(logs)
        self.log("train/loss", out["generator"].detach(), prog_bar=True)
        return out["total"].detach()

    def _guard_rolled_back(self, out: dict[str, Tensor], optimizers: list, use_gan: bool) -> bool:
        """Feed the collapse guard; at a flagged check roll back (True) or raise."""
        grads = [p.grad for p in self.generator.parameters() if p.grad is not None]
        grad_norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])
        )
        signals = {"l1": float(out["train/l1"].detach()), "grad_norm": float(grad_norm)}
        if use_gan:
            signals["d_accuracy"] = float(out["train/d_accuracy"])
        self.log("train/g_grad_norm", grad_norm)
        self.guard.observe(**signals)
        step = self.global_step + 1
        if step % self.guard.every:
            return False
        raw = [getattr(o, "optimizer", o) for o in optimizers if o is not None]
        modules = {"generator": self.generator}
        if self.discriminator is not None:
            modules["discriminator"] = self.discriminator
        reason = self.guard.check(step)
        log.info("collapse guard, step %d: %s", step, self.guard.describe_last())
        if reason is None:
            self._last_good = (step, snapshot(modules, raw))
            return False
        if self.guard.action == "stop" or self._last_good is None:
            raise TrainingCollapsed(
                f"training collapsed: {reason}. Stopped (model.guard.action="
                f"{self.guard.action}); resume from the last checkpoint with a lower lr_g/lr_d or "
                "lambda_gan"
            )
        if self.guard.rollbacks >= self.guard.max_rollbacks:
            raise TrainingCollapsed(
                f"training collapsed again after {self.guard.rollbacks} rollbacks: {reason}. "
                "Stopped; lower lr_g/lr_d or lambda_gan, or raise model.guard.max_rollbacks"
            )
        good_step, state = self._last_good
        restore(state, modules, raw)
        self.guard.rollbacks += 1
        self.guard.reset_signals()
        log.warning(
            "collapse guard: %s; rolled back to the weights of step %d (rollback %d of %d)",
            reason,
            good_step,
            self.guard.rollbacks,
            self.guard.max_rollbacks,
        )
        return True

    # ---------------------------------------------------------------- evaluation
    @staticmethod
    def image_quality(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Per-image metrics on [0, 1] pixels: PSNR, SSIM, L1, and LPIPS when cached."""
        p01, t01 = (pred.float().clamp(-1, 1) + 1) / 2, (target.float() + 1) / 2
        out = {
            "psnr": psnr(p01, t01, data_range=1.0),
            "ssim": ssim(p01, t01, data_range=1.0),
            "l1": (p01 - t01).abs().flatten(1).mean(1),
        }
        lpips = lpips_or_none(pred.float(), target.float())
        if lpips is not None:
            out["lpips"] = lpips
        return out

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        reference, current = batch["reference"], batch["current"]
        pred = self.generator(current, reference)
        size = len(current)
        for name, values in self.image_quality(pred, current).items():
            self.log(f"{stage}/{name}", values.mean(), batch_size=size, on_epoch=True)
        if stage == "test":
            for name, values in self.image_quality(reference, current).items():
                self.log(f"baseline/{name}", values.mean(), batch_size=size, on_epoch=True)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        if getattr(self, "eval_round", 0):  # SEEDS=N: rounds after the first redraw the frames
            clips = self.trainer.datamodule.test_set.clips
            batch = redraw_current(batch, clips, round_seed(self, batch_idx))
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        samples = Path(self.trainer.default_root_dir) / "samples"
        curve = self.rate_distortion_curve()
        if curve is not None:
            for point in curve["points"]:
                tag = f"q{point['quality']:g}"
                for name, value in point.items():
                    if name != "quality":
                        self.log(f"test/{name}_{tag}", value)
            self.log("baseline/bpp", curve["baseline"]["bpp"])
            if self.trainer.is_global_zero:
                write_report(curve, samples)
        if self.trainer.is_global_zero:
            self.write_samples(samples, split="test")

    def rate_distortion_curve(self) -> dict | None:
        """The codec's RD curve over the test clips (``None`` without clips or qualities)."""
        dataset = getattr(self.trainer.datamodule, "test_set", None)
        qualities = self.hparams.rd_qualities
        if dataset is None or not qualities:
            return None
        clips = dataset.clips[: self.hparams.rd_clips]
        was_training = self.training
        self.eval()
        curve = rate_distortion(self.generator, clips, qualities, self.image_quality)
        self.train(was_training)
        return curve

    # ---------------------------------------------------------------- media
    @torch.no_grad()
    def reconstruct_clip(self, frames: Tensor, reference_index: int = 0, chunk: int = 16) -> Tensor:
        """Reconstruct every frame of ``[T, 3, S, S]`` from one reference frame and the tokens."""
        device = self.device
        cache = self.generator.encode_reference(
            frames[reference_index : reference_index + 1].to(device)
        )
        out = []
        for start in range(0, len(frames), chunk):
            tokens = self.generator.encode_tokens(frames[start : start + chunk].to(device))
            out.append(self.generator.decode(cache, tokens).float().cpu())
        return torch.cat(out)

    def write_samples(self, out_dir: Path, split: str = "val") -> list[Path]:
        """PNG strips (rows: target, reconstruction, zero-motion baseline) and a side-by-side
        mp4 (target | reconstruction) for the first ``sample_clips`` clips of ``split``."""
        datamodule = self.trainer.datamodule
        dataset = getattr(datamodule, f"{split}_set", None)
        if dataset is None:
            return []
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        was_training = self.training
        self.eval()
        paths = []
        for index, frames in enumerate(dataset.clips[: self.hparams.sample_clips]):
            recon = self.reconstruct_clip(frames)
            target, pred = to_uint8(frames), to_uint8(recon)
            picks = np.linspace(0, len(frames) - 1, min(8, len(frames))).round().astype(int)
            rows = [
                np.concatenate(list(a[picks]), axis=1)
                for a in (target, pred, np.repeat(target[:1], len(target), axis=0))
            ]
            png = out_dir / f"{split}_clip{index:02d}.png"
            imageio.imwrite(png, np.concatenate(rows, axis=0))
            mp4 = write_video(
                out_dir / f"{split}_clip{index:02d}.mp4",
                np.concatenate([target, pred], axis=2),
                SAMPLE_FPS,
            )
            paths += [png, mp4]
        self.train(was_training)
        return paths
