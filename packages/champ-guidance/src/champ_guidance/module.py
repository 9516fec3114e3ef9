"""LightningModule: CHAMP training (stage 1 / stage 2), sampling, metrics and sample media."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning.pytorch as pl
import numpy as np
import torch
from diffusers.optimization import get_scheduler

from champ_guidance.beats import beat_alignment_score, kinematic_beats, motion_speed
from champ_guidance.media import save_clip_media
from champ_guidance.model.champ import ChampModel
from motioncore.diffusion import Guidance, NoiseSchedule, diffusion_loss, sample
from motioncore.metrics import psnr, ssim
from motioncore.train import plain, round_seed

log = logging.getLogger(__name__)


def check_sampler_knobs(
    num_inference_steps: int, context_window: int, context_overlap: int
) -> None:
    """Range checks where the values enter (0 steps used to mean "the default")."""
    if num_inference_steps < 1:
        raise ValueError(
            f"num_inference_steps={num_inference_steps} must be >= 1 (upstream samples with 20)"
        )
    if context_window < 1:
        raise ValueError(f"context_window={context_window} must be >= 1 frames (upstream: 24)")
    if not 0 <= context_overlap < context_window:
        raise ValueError(
            f"context_overlap={context_overlap} must be in [0, context_window={context_window})"
        )


class ChampModule(pl.LightningModule):
    """Objective (both stages, as upstream): v-prediction on a zero-terminal-SNR schedule,
    Min-SNR-gamma weighted MSE, offset noise, and reference dropout (``uncond_ratio``) that
    trains the unconditional branch of classifier-free guidance.

    Stage 1 trains the guidance encoders and both UNets on independent frames; stage 2 adds
    temporal modules, trains only them, and shares one timestep across a clip's frames.
    """

    def __init__(
        self,
        net: dict,
        schedule: dict,
        stage: int = 1,
        stage1_ckpt: str | None = None,
        learning_rate: float = 1e-5,
        weight_decay: float = 1e-2,
        lr_warmup_steps: int = 0,
        lr_scheduler: str = "constant_with_warmup",
        uncond_ratio: float = 0.1,
        guidance_scale: float = 3.5,
        num_inference_steps: int = 20,
        sampler: str = "ddim",
        context_window: int = 24,
        context_overlap: int = 4,
        extra_loss: dict | None = None,
        beat_sigma_seconds: float = 0.1,
        eval_seed: int = 0,
        trainable: list[str] | None = None,
    ):
        super().__init__()
        # plain containers, so checkpoints load with torch.load(weights_only=True)
        net, schedule, extra_loss = plain(net), plain(schedule), plain(extra_loss)
        self.save_hyperparameters()
        check_sampler_knobs(num_inference_steps, context_window, context_overlap)
        if stage not in (1, 2):
            raise ValueError(f"stage={stage} must be 1 (frames) or 2 (temporal modules)")
        if stage == 2 and not net["temporal"].get("enabled", False):
            raise ValueError(
                "stage=2 trains the temporal modules: set model.net.temporal.enabled=true"
            )
        self.net = ChampModel(**net)
        self.schedule = NoiseSchedule(**schedule)
        self.extra_loss = hydra.utils.instantiate(extra_loss) if extra_loss else None
        if stage == 2:
            self._load_stage1(stage1_ckpt)
            self.net.requires_grad_(False)
            for p in self.net.temporal_parameters():
                p.requires_grad_(True)
        if trainable:
            self._train_only(list(trainable))
        n = sum(p.numel() for p in self.parameters() if p.requires_grad)
        log.info("trainable parameters: %d of %d", n, sum(p.numel() for p in self.parameters()))

    def _train_only(self, prefixes: list[str]) -> None:
        """Freeze every parameter of ``net`` outside ``prefixes`` (``model.trainable``, e.g.
        ``[guidance_encoders.music, temporal]`` for music fine-tuning on imported weights);
        parameters frozen for a reason (CLIP, the reference UNet's bankless tail) stay frozen."""
        names = [n for n, _ in self.net.named_parameters()]
        for prefix in prefixes:
            if not any(n == prefix or n.startswith(prefix + ".") for n in names):
                top = sorted({n.split(".")[0] for n in names})
                raise ValueError(
                    f"model.trainable entry {prefix!r} matches no parameter of the model; "
                    f"name modules under net, e.g. one of {top} or guidance_encoders.<type>"
                )
        for name, p in self.net.named_parameters():
            if not any(name == q or name.startswith(q + ".") for q in prefixes):
                p.requires_grad_(False)

    def _load_stage1(self, path: str | None) -> None:
        if path is None:
            log.warning("stage 2 without model.stage1_ckpt: the spatial weights are not trained")
            return
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"model.stage1_ckpt={path} does not exist (a stage-1 last.ckpt)"
            )
        state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        result = self.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if ".temporal." not in k]
        if missing or result.unexpected_keys:
            raise RuntimeError(
                f"{path} does not fit this model: missing {missing[:5]}, unexpected "
                f"{result.unexpected_keys[:5]} (only temporal-module weights may be new in stage 2)"
            )

    # ---- training ----------------------------------------------------------------------------
    def _loss(self, batch: dict, keep: torch.Tensor, generator: torch.Generator | None = None):
        frames = batch["frames"]
        b, f = frames.shape[:2]
        x0 = self.net.codec.encode(frames.flatten(0, 1), sample=True)
        cond = self.net.encode_conditions(batch["reference"], batch["guidance"], keep)
        t = None  # stage 1: one timestep per frame, drawn in diffusion_loss
        if self.hparams.stage == 2:
            t = self.schedule.sample_timesteps(b, x0.device, generator).repeat_interleave(f)
        out = diffusion_loss(self.net.denoise, self.schedule, x0, cond, generator=generator, t=t)
        loss = out.loss.mean()
        extra = None
        if self.extra_loss is not None:
            x0_pred = self.schedule.predict_x0(out.pred.float(), out.x_t, out.t)
            extra = self.extra_loss(
                x0_pred.view(b, f, *x0.shape[1:]), x0.view(b, f, *x0.shape[1:]), batch
            )
        return loss, extra

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        b = batch["frames"].shape[0]
        keep = (torch.rand(b, device=self.device) >= self.hparams.uncond_ratio).float()
        loss, extra = self._loss(batch, keep)
        self.log("train/diffusion_loss", loss, prog_bar=True, batch_size=b)
        if extra is not None:
            self.log("train/extra_loss", extra, batch_size=b)
            loss = loss + extra
        self.log("train/loss", loss, batch_size=b)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.net.context.clear()  # drop the reference bank after backward

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        g = torch.Generator().manual_seed(batch_idx)
        keep = torch.ones(batch["frames"].shape[0], device=self.device)
        loss, _ = self._loss(batch, keep, g)
        self.log("val/loss", loss, batch_size=batch["frames"].shape[0])
        self.net.context.clear()

    # ---- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        reference: torch.Tensor,
        guidance: dict,
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int = 0,
        window: int | None = None,
        overlap: int | None = None,
    ) -> torch.Tensor:
        """Frames ``[B, F, 3, H, W]`` in [-1, 1] for a reference ``[B, 3, H, W]`` and guidance
        ``{type: [B, F, ...]}``: the configured ``sampler`` (DDIM by default) with CFG, conditions
        encoded once."""
        num_steps = self.hparams.num_inference_steps if num_steps is None else int(num_steps)
        window = self.hparams.context_window if window is None else int(window)
        overlap = self.hparams.context_overlap if overlap is None else int(overlap)
        check_sampler_knobs(num_steps, window, overlap)
        b = reference.shape[0]
        f = next(iter(guidance.values())).shape[1]
        cond = self.net.encode_conditions(
            reference, guidance, torch.ones(b, device=reference.device), chunk=window
        )

        def model(x, t, c):
            return self.net.denoise_windows(x, t, c, window, overlap)

        x = sample(
            model,
            self.schedule,
            (b * f, *self.net.latent_shape),
            cond=cond,
            guidance=Guidance(
                uncond=self.net.unconditional(cond),
                scale=self.hparams.guidance_scale if guidance_scale is None else guidance_scale,
            ),
            num_steps=num_steps,
            sampler=self.hparams.sampler,
            generator=torch.Generator().manual_seed(seed),
            device=reference.device,
        )
        frames = self.net.codec.decode(x).clamp(-1, 1)
        return frames.view(b, f, *frames.shape[1:])

    # ---- evaluation --------------------------------------------------------------------------
    def test_step(self, batch: dict, batch_idx: int) -> None:
        target = batch["frames"]
        b, f = target.shape[:2]
        pred = self.generate(
            batch["reference"],
            batch["guidance"],
            seed=round_seed(self, self.hparams.eval_seed + batch_idx),  # SEEDS=N: one per round
        )
        baseline = batch["reference"][:, None].expand_as(target)
        for prefix, frames in (("test", pred), ("baseline", baseline)):
            a, t = (frames.flatten(0, 1) + 1) / 2, (target.flatten(0, 1) + 1) / 2
            self.log(f"{prefix}/psnr", psnr(a, t, data_range=1.0).mean(), batch_size=b)
            self.log(f"{prefix}/ssim", ssim(a, t, data_range=1.0).mean(), batch_size=b)
            self.log(f"{prefix}/l1", (a - t).abs().mean(), batch_size=b)
            if "music_beats" in batch:
                self.log(
                    f"{prefix}/beat_alignment", self._beat_alignment(frames, batch), batch_size=b
                )
        if "music_beats" in batch:
            self.log(
                "test/beat_alignment_ground_truth",
                self._beat_alignment(target, batch),
                batch_size=b,
            )
        if batch_idx == 0:
            out = Path(self.trainer.default_root_dir) / "samples"
            save_clip_media(
                out / "test_000",
                batch["reference"][0],
                pred[0],
                target[0],
                fps=float(batch["fps"][0]),
            )

    def _beat_alignment(self, frames: torch.Tensor, batch: dict) -> float:
        scores = []
        for clip, beats, fps in zip(frames, batch["music_beats"], batch["fps"], strict=True):
            music = np.flatnonzero(beats.cpu().numpy() > 0.5)
            sigma = self.hparams.beat_sigma_seconds * float(fps)
            scores.append(beat_alignment_score(kinematic_beats(motion_speed(clip)), music, sigma))
        return float(np.mean(scores))

    def write_samples(self, out_dir: Path) -> list[Path]:
        """Sample the first validation clip (SampleMedia callback)."""
        dm = self.trainer.datamodule
        item = dm.val_set[0]
        to = lambda x: x[None].to(self.device)  # noqa: E731
        pred = self.generate(
            to(item["reference"]),
            {k: to(v) for k, v in item["guidance"].items()},
            seed=self.hparams.eval_seed,
        )
        return save_clip_media(
            out_dir / "val_000", item["reference"], pred[0], item["frames"], fps=item["fps"]
        )

    # ---- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(
            params,
            lr=self.hparams.learning_rate,
            weight_decay=self.hparams.weight_decay,
            betas=(0.9, 0.999),
            eps=1e-8,
        )
        sched = get_scheduler(  # the upstream training script's --lr_scheduler choices
            self.hparams.lr_scheduler,
            opt,
            num_warmup_steps=self.hparams.lr_warmup_steps,
            num_training_steps=int(self.trainer.estimated_stepping_batches),
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
