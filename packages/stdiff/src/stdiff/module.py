"""LightningModule of STDiff: end-to-end eps-L1 training, stochastic multi-future prediction,
best-of-N / mean-of-N evaluation against the copy-last-frame baseline."""

from __future__ import annotations

import itertools
from pathlib import Path

import lightning.pytorch as pl
import torch
from diffusers.optimization import get_cosine_with_hard_restarts_schedule_with_warmup
from torch import Tensor

from motioncore.diffusion import NoiseSchedule, diffusion_loss, sample
from motioncore.metrics import lpips_or_none, psnr, ssim
from motioncore.train import plain, round_seed
from stdiff.media import write_prediction_media
from stdiff.model.stdiff import STDiffModel

# PSNR of a perfect prediction is infinite; cap it so means over frames stay finite.
PSNR_CAP_DB = 100.0


class STDiffModule(pl.LightningModule):
    """Args:
    STDiff: the model config with upstream's keys (``Diffusion.unet_config``, ``DiffNet``).
    noise: :class:`motioncore.diffusion.NoiseSchedule` arguments (1000 linear-beta DDPM steps,
        epsilon prediction as upstream).
    optim: AdamW ``lr``, ``betas``, ``weight_decay``, ``eps``; schedule ``warmup_steps`` and
        ``num_cycles`` of diffusers' cosine-with-hard-restarts.
    eval: ``num_samples`` (N futures per video), ``sampler``/``num_steps`` used in test,
        ``chunk`` (frames predicted per motion rollout; later chunks re-observe the last To
        predictions), ``bf16`` (CPU/GPU bf16 autocast for sampling), ``channels_last``
        (channels-last UNet weights and activations while sampling; the same numbers).
    gradient_checkpointing: recompute the UNet's ResNet blocks in backward (less activation
        memory for the 64 x 512 model, about a third more compute).
    train_channels_last: keep the UNet's weights channels-last from construction on, so training
        runs oneDNN's convolutions without NCHW reorders (64 x 512 bf16 training step with
        checkpointing: 62 s vs 71 s); the same loss and gradients up to rounding.
    channels: channels of the data's frames (``${data.channels}``); the UNet and the motion
        encoder follow it (see :class:`stdiff.model.stdiff.STDiffModel`).
    """

    def __init__(
        self,
        STDiff: dict,
        noise: dict,
        optim: dict,
        eval: dict,
        gradient_checkpointing: bool = False,
        channels: int | None = None,
        train_channels_last: bool = False,
    ):
        super().__init__()
        # plain containers: checkpoints must load with torch.load(weights_only=True)
        hparams = {
            "STDiff": plain(STDiff),
            "noise": plain(noise),
            "optim": plain(optim),
            "eval": plain(eval),
            "gradient_checkpointing": bool(gradient_checkpointing),
            "channels": None if channels is None else int(channels),
            "train_channels_last": bool(train_channels_last),
        }
        self.save_hyperparameters(hparams)
        self.model = STDiffModel(hparams["STDiff"], hparams["channels"])
        self.model.unet.enable_gradient_checkpointing(bool(gradient_checkpointing))
        if train_channels_last:
            self.model.unet.to(memory_format=torch.channels_last)
        self.schedule = NoiseSchedule(**hparams["noise"])
        self.optim_cfg = dict(hparams["optim"])
        self.eval_cfg = dict(hparams["eval"])
        _check_counts(
            **{f"eval.{k}": self.eval_cfg[k] for k in ("num_samples", "num_steps", "chunk")}
        )
        self._media_batch: dict[str, Tensor] | None = None

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Refuse, by name, weights trained on frames with another number of channels."""
        key = "model.unet.unet.conv_out.weight"
        if key in state_dict and state_dict[key].shape[0] != self.model.channels:
            c = state_dict[key].shape[0]
            raise ValueError(
                f"the checkpoint was trained on {c}-channel frames but this model is built for "
                f"{self.model.channels} (data.channels={self.model.channels}); set "
                f"data.channels={c}"
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ---- training ------------------------------------------------------------------------
    def _entropy(self, generator: torch.Generator | None = None) -> int:
        return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))

    def diffusion_loss(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> Tensor:
        """L1 to the prediction type's target over all sampled future frames (upstream's loss),
        with the schedule's offset noise and Min-SNR-gamma weights when configured."""
        vo, idx_o, vp, idx_p = batch["vo"], batch["idx_o"], batch["vp"], batch["idx_p"]
        b, k = vp.shape[:2]
        x0 = vp.flatten(0, 1)

        def model(x_t, t, _):
            noisy = x_t.unflatten(0, (b, k))
            pred = self.model(vo, idx_o, idx_p, noisy, t, clean_vp=vp,
                              entropy=self._entropy(generator))  # fmt: skip
            return pred.flatten(0, 1)

        # noise before t (upstream's order, so seeded runs are unchanged); t is drawn in there
        noise = self.schedule.sample_noise(x0, generator)
        out = diffusion_loss(model, self.schedule, x0, generator=generator, kind="l1", noise=noise)
        return out.loss.mean()

    def training_step(self, batch, _):
        loss = self.diffusion_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["vo"].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        g = torch.Generator().manual_seed(batch_idx)
        loss = self.diffusion_loss(batch, g)
        self.log("val/loss", loss, batch_size=batch["vo"].shape[0])
        if batch_idx == 0:
            self._media_batch = {k: v[:2] for k, v in batch.items()}

    def configure_optimizers(self):
        cfg = self.optim_cfg
        opt = torch.optim.AdamW(
            self.parameters(),
            lr=cfg["lr"],
            betas=tuple(cfg["betas"]),
            weight_decay=cfg["weight_decay"],
            eps=cfg["eps"],
        )
        sched = get_cosine_with_hard_restarts_schedule_with_warmup(
            opt,
            cfg["warmup_steps"],
            int(self.trainer.estimated_stepping_batches),
            cfg["num_cycles"],
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- prediction ----------------------------------------------------------------------
    @torch.no_grad()
    def predict(
        self,
        vo: Tensor,
        idx_o: Tensor,
        idx_p: Tensor,
        num_samples: int = 1,
        sampler: str | None = None,
        num_steps: int | None = None,
        chunk: int | None = None,
        generator: torch.Generator | None = None,
        bf16: bool | None = None,
    ) -> Tensor:
        """N stochastic futures [B, N, K, C, H, W] at any sorted future times ``idx_p`` [B, K]
        (fractional times allowed), rolled out ``chunk`` frames per motion-SDE call.

        Per frame: one SDE path gives the motion map, then the diffusion sampler denoises from
        fresh noise conditioned on it and on the previous predicted frame (upstream inference).
        """
        if idx_p.ndim != 2 or idx_p.shape[0] != vo.shape[0]:
            raise ValueError(f"idx_p must be [B, K] with B={vo.shape[0]}, got {tuple(idx_p.shape)}")
        if (idx_p[:, 1:] <= idx_p[:, :-1]).any() or (idx_p[:, 0] <= idx_o[:, -1]).any():
            raise ValueError("idx_p must be increasing and after the last observed time")
        bf16 = self.eval_cfg.get("bf16", False) if bf16 is None else bf16
        chunk = self.eval_cfg["chunk"] if chunk is None else chunk
        num_steps = self.eval_cfg["num_steps"] if num_steps is None else num_steps
        _check_counts(num_samples=num_samples, num_steps=num_steps, chunk=chunk)
        n, to = num_samples, vo.shape[1]
        obs, times = vo.repeat_interleave(n, 0), idx_o.repeat_interleave(n, 0)
        targets = idx_p.repeat_interleave(n, 0)
        out = []
        device_type = vo.device.type
        channels_last = self.eval_cfg.get("channels_last", True)
        with (
            torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16),
            self.model.unet.channels_last(channels_last),
        ):
            for start in range(0, targets.shape[1], chunk):
                tp = targets[:, start : start + chunk]
                m_feat = self.model.motion(obs, times, tp, entropy=self._entropy(generator))
                prev = self.model.first_prev(obs)
                frames = []
                for j in range(tp.shape[1]):
                    frame = self._denoise_frame(m_feat[:, j], prev, sampler, num_steps, generator)
                    frames.append(frame)
                    prev = self.model.degrade(frame)
                frames = torch.stack(frames, 1)
                out.append(frames)
                if self.model.super_res:  # later chunks observe small frames, as the first one
                    obs, frames = self.model.motion_input(obs), self.model.motion_input(frames)
                obs = torch.cat([obs, frames], 1)[:, -to:]
                times = torch.cat([times, tp], 1)[:, -to:]
        preds = torch.cat(out, 1)
        return preds.unflatten(0, (vo.shape[0], n))

    def _denoise_frame(self, m_feat, prev, sampler, num_steps, generator) -> Tensor:
        clip = self.eval_cfg.get("clip_x0", True)

        def eps(x, t, cond):
            out = self.model.denoise(x, t, cond["m"], cond["prev"]).float()
            if not clip:
                return out
            # clip the implied x0 to the data range, as upstream's DDPMScheduler(clip_sample=True)
            # does, for every sampler: eps errors at high noise otherwise blow x0 up by
            # 1 / sqrt(abar_t) (~160x at t = 999 of the linear schedule)
            x0 = self.schedule.predict_x0(out, x, t).clamp(-1, 1)
            return self.schedule.output_from_x0(x0, x, t)

        shape = (prev.shape[0], self.model.channels, *prev.shape[-2:])
        with self.model.unet.reuse_motion():
            x = sample(
                eps,
                self.schedule,
                shape,
                cond={"m": m_feat, "prev": prev},
                num_steps=num_steps,
                sampler=sampler or self.eval_cfg["sampler"],
                generator=generator,
                device=prev.device,
            )
        return x.clamp(-1, 1)

    # ---- evaluation ----------------------------------------------------------------------
    def test_step(self, batch, batch_idx):
        vo, idx_o, vp, idx_p = batch["vo"], batch["idx_o"], batch["vp"], batch["idx_p"]
        n = self.eval_cfg["num_samples"]
        g = torch.Generator().manual_seed(round_seed(self, batch_idx))  # SEEDS=N: one per round
        preds = self.predict(vo, idx_o, idx_p, n, generator=g)  # [B, N, K, C, H, W]
        for name, value in video_metrics(preds, vp, vo[:, -1]).items():
            self.log(name, value, batch_size=vo.shape[0])
        if batch_idx == 0:
            out = Path(self.trainer.default_root_dir) / "samples"
            write_prediction_media(out, "test", vo, vp, preds)

    def write_samples(self, out_dir: Path) -> list[Path]:
        """Validation media: N futures for the first two validation clips."""
        if self._media_batch is None:
            return []
        b = {k: v.to(self.device) for k, v in self._media_batch.items()}
        g = torch.Generator().manual_seed(0)
        preds = self.predict(
            b["vo"], b["idx_o"], b["idx_p"], min(3, self.eval_cfg["num_samples"]), generator=g
        )
        return write_prediction_media(out_dir, "val", b["vo"], b["vp"], preds)


def _check_counts(**values) -> None:
    """Sampler counts must be integers >= 1: 0 or a negative step count would otherwise mean
    "the default" or return the starting noise."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be an integer >= 1 (e.g. {name}=20)")


def video_metrics(preds: Tensor, target: Tensor, last_observed: Tensor) -> dict[str, Tensor]:
    """Best-of-N and mean-of-N PSNR/SSIM(/LPIPS), diversity, and the copy-last-frame baseline.

    ``preds`` [B, N, K, C, H, W] and ``target`` [B, K, C, H, W] in [-1, 1]. Best-of-N keeps, per
    video, the trajectory with the best mean over frames (upstream's protocol); mean-of-N is the
    expected quality of a single sample.
    """
    b, n, k = preds.shape[:3]
    flat_t = target[:, None].expand_as(preds).flatten(0, 2)
    flat_p = preds.flatten(0, 2)
    base = last_observed[:, None].expand_as(target).flatten(0, 1)
    out: dict[str, Tensor] = {}

    def per_traj(fn, x, y):
        return fn(x.float(), y.float()).view(b, n, k).mean(-1)  # [B, N]

    scores = {
        "psnr": (
            per_traj(lambda x, y: psnr(x, y, 2.0).clamp(max=PSNR_CAP_DB), flat_p, flat_t),
            max,
        ),
        "ssim": (per_traj(lambda x, y: ssim(x, y, 2.0), flat_p, flat_t), max),
    }
    lp = lpips_or_none(flat_p, flat_t)
    if lp is not None:
        scores["lpips"] = (lp.view(b, n, k).mean(-1), min)
        out["baseline/lpips"] = lpips_or_none(base, target.flatten(0, 1)).mean()
    for name, (s, better) in scores.items():
        best = s.max(1).values if better is max else s.min(1).values
        out[f"test/{name}"] = best.mean()
        out[f"test/{name}_mean_of_n"] = s.mean()
    out["baseline/psnr"] = psnr(base, target.flatten(0, 1), 2.0).clamp(max=PSNR_CAP_DB).mean()
    out["baseline/ssim"] = ssim(base, target.flatten(0, 1), 2.0).mean()
    if n > 1:
        pairs = list(itertools.combinations(range(n), 2))
        dist = torch.stack([(preds[:, i] - preds[:, j]).abs().mean() / 2 for i, j in pairs])
        out["test/diversity"] = dist.mean()
    return out
