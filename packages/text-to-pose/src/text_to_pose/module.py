"""LightningModule of text-to-pose: losses, training/validation steps, sampling, metrics, media.

Training step (reference text-to-pose.md, "Training step", bugs fixed): text dropout for
classifier-free guidance (all texts when pretraining); text encoding; length loss on the
distribution head over the masked mean encoding; first-pose correction (a random block of
keypoints hidden on a copy, reconstructed by the correction MLP); ``x_T`` = first pose repeated
(a new tensor, never a view that gets mutated); one random step per sample; jittered blend
``x_t``; ``x0`` prediction; confidence-weighted masked L2 (summed over xyz) times ``log(T)^2``
(Ham2Pose Sec. 5.4) + smoothness L1 between consecutive valid frames (no wrap-around).

Evaluation samples every test text from its reference first pose with the predicted length
and reports DTW-MJE / nDTW-MJE (motioncore.metrics) and the absolute length error; the
``baseline/`` keys hold the first pose repeated to the true length on the same data.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import Tensor

from motioncore.losses import masked_l1, masked_mse
from motioncore.masking import length_mask
from motioncore.metrics import dtw_mje_batch, ndtw_mje_batch
from motioncore.train import round_seed
from text_to_pose.data.holistic import LEFT_SHOULDER, LEG_POINTS, N_KEYPOINTS, RIGHT_SHOULDER
from text_to_pose.data.pose_io import write_sequence
from text_to_pose.data.tokenizer import HamNoSysTokenizer
from text_to_pose.model.text_to_pose import TextToPose, refine_from_first_pose, unconditional_ids
from text_to_pose.render import render_gif


def prediction_confidence(poses: Tensor, lengths: Tensor) -> Tensor:
    """Confidence ``[B, T, 75]`` of generated poses: 1 inside the length, legs hidden."""
    conf = length_mask(lengths, poses.shape[1]).float()[..., None].repeat(1, 1, N_KEYPOINTS)
    conf[..., LEG_POINTS] = 0
    return conf


def pose_metrics(pred: Tensor, pred_lengths: Tensor, batch: dict) -> dict[str, Tensor]:
    """Per-sample DTW-MJE, nDTW-MJE and absolute length error against the batch references."""
    pred_conf = prediction_confidence(pred, pred_lengths)
    args = (pred.float(), batch["pose"], pred_lengths, batch["lengths"], pred_conf > 0,
            batch["confidence"])  # fmt: skip
    return {
        "dtw_mje": dtw_mje_batch(*args),
        "ndtw_mje": ndtw_mje_batch(*args, shoulders=(LEFT_SHOULDER, RIGHT_SHOULDER)),
    }


LENGTH_LOSSES = ("regression", "sample_mse")


class TextToPoseModule(pl.LightningModule):
    """Args beyond the network sizes (see ``configs/model/default.yaml``):

    length_loss: ``sample_mse`` is upstream's MSE of a reparameterised sample of
        ``N(mu, exp(log_var))`` (which drives the variance to 0); ``regression`` (ours) is the
        MSE of ``mu`` plus a Gaussian NLL that fits the log-variance head to the error of the
        detached mean, so the variance is a calibrated uncertainty and leaves ``mu`` alone.
    correction_weight, correction_block: weight of the first-pose correction loss and the
        largest block of contiguous keypoints it hides (upstream 1 and 21).
    pretrain: drop every text (the model learns to refine any pose sequence); the length
        head and the text encoder then see only the empty text.
    """

    def __init__(
        self,
        hidden: int = 512,
        heads: int = 8,
        ff: int = 2048,
        text_layers: int = 2,
        pose_layers: int = 4,
        text_encoder_dropout: float = 0.1,
        pose_encoder_dropout: float = 0.0,
        max_text_len: int = 64,
        max_frames: int = 200,
        num_steps: int = 10,
        residual: bool = True,
        length_scale: float = 100.0,
        length_loss: str = "regression",
        lr: float = 1e-4,
        text_drop_prob: float = 0.1,
        noise_epsilon: float = 1e-2,
        smoothness_weight: float = 1e-3,
        length_weight: float = 2e-5,
        correction_weight: float = 1.0,
        correction_block: int = 21,
        pretrain: bool = False,
        guidance: float = 2.5,
        sample_steps: int | None = None,
        bf16_sampling: bool = False,
        fps: float = 25.0,
        media_samples: int = 4,
    ) -> None:
        super().__init__()
        if length_loss not in LENGTH_LOSSES:
            raise ValueError(
                f"model.length_loss={length_loss!r} is not one of {LENGTH_LOSSES} (regression: "
                "MSE of the mean + Gaussian NLL of the variance head; sample_mse: upstream)"
            )
        self.save_hyperparameters()
        self.tokenizer = HamNoSysTokenizer()
        self.model = TextToPose(
            len(self.tokenizer), hidden, heads, ff, text_layers, pose_layers,
            text_encoder_dropout, pose_encoder_dropout, max_text_len, max_frames, num_steps,
            length_scale, residual,
        )  # fmt: skip
        # Running mean of training lengths: the trivial length predictor of baseline/.
        self.register_buffer("seen_length_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("seen_length_count", torch.zeros((), dtype=torch.float64))
        self.loss_scale = math.log(num_steps) ** 2 if num_steps > 1 else 1.0
        self._test_media_written = False

    # ----------------------------------------------------------------- losses
    def losses(self, batch: dict, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        hp, x0 = self.hparams, batch["pose"]
        conf, lengths, frame_valid = batch["confidence"], batch["lengths"], batch["frame_valid"]
        ids, valid = batch["text_ids"], batch["text_valid"]
        b, device = x0.shape[0], x0.device

        def rand(*shape):
            return torch.rand(*shape, generator=generator).to(device)

        def randn(*shape):
            return torch.randn(*shape, generator=generator).to(device)

        drop_prob = 1.0 if hp.pretrain else hp.text_drop_prob
        if (self.training or hp.pretrain) and drop_prob > 0:  # classifier-free guidance dropout
            drop = rand(b) < drop_prob
            u_ids, u_valid = unconditional_ids(ids)
            ids = torch.where(drop[:, None], u_ids, ids)
            valid = torch.where(drop[:, None], u_valid, valid)
        cond = self.model.encode(ids, valid)
        cond["frame_valid"] = frame_valid
        length_loss = self.length_loss(cond, lengths.float(), randn)
        correction_loss = self.correction_loss(x0[:, 0], conf[:, 0], rand)

        x_T = x0[:, :1].expand_as(x0).clone()
        t = (rand(b) * self.model.num_steps).long().clamp(max=self.model.num_steps - 1)
        jitter = hp.noise_epsilon * randn(b) if self.training else None
        x_t = self.model.blend(x0, x_T, t, jitter)
        if self.training and hp.noise_epsilon > 0:
            x_t = x_t * (1 + hp.noise_epsilon * randn(*x_t.shape))
            x_t = torch.cat([x0[:, :1], x_t[:, 1:]], dim=1)  # keep the first pose exact
        pred = self.model(x_t, t, cond)

        # Confidence-weighted, padding-free; x3 turns the mean over xyz into the upstream sum.
        pose_loss = 3 * masked_mse(pred, x0, conf) * self.loss_scale
        pair_conf = conf[:, 1:] * conf[:, :-1]
        smooth = 3 * masked_l1(pred[:, 1:], pred[:, :-1], pair_conf) * self.loss_scale
        total = (pose_loss + hp.smoothness_weight * smooth + hp.length_weight * length_loss
                 + hp.correction_weight * correction_loss)  # fmt: skip
        return {
            "loss": total.mean(),
            "pose": pose_loss.mean(),
            "smooth": smooth.mean(),
            "length": length_loss.mean(),
            "correction": correction_loss.mean(),
        }

    def length_loss(self, cond: dict, lengths: Tensor, randn) -> Tensor:
        """Per-sample length loss (see ``length_loss`` in the class docstring)."""
        head = self.model.length
        pooled = head.pool(cond["text"], cond["text_valid"])
        mu, log_var = head(pooled)
        if self.hparams.length_loss == "sample_mse":
            sample = mu + torch.exp(log_var / 2) * randn(*mu.shape) if self.training else mu
            return (sample - lengths).square()
        log_var = head(pooled.detach())[1]  # the NLL trains the variance head only
        nll = 0.5 * (log_var + (lengths - mu.detach()).square() * torch.exp(-log_var))
        return (mu - lengths).square() + nll

    def correction_loss(self, first: Tensor, conf: Tensor, rand) -> Tensor:
        """Hide a random block of up to ``correction_block`` contiguous keypoints of each first
        pose (a copy: upstream zeroed the target in place) and reconstruct it (all keypoints
        are scored, confidence-weighted, as upstream)."""
        b, k = first.shape[:2]
        start = (rand(b) * k).long()
        size = (rand(b) * (self.hparams.correction_block + 1)).long()
        index = torch.arange(k, device=first.device)[None]
        hidden = (index >= start[:, None]) & (index < (start + size)[:, None])
        corrected = self.model.correction(first.masked_fill(hidden[..., None], 0.0))
        return 3 * masked_mse(corrected, first, conf)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        out = self.losses(batch)
        self.seen_length_sum += batch["lengths"].sum().double()
        self.seen_length_count += len(batch["lengths"])
        b = len(batch["lengths"])
        for k, v in out.items():
            self.log(f"train/{k}", v, prog_bar=k == "loss", batch_size=b)
        return out["loss"]

    # ----------------------------------------------------------------- sampling
    def generate(self, batch: dict, force_length: bool = False) -> tuple[Tensor, Tensor]:
        """Poses for the batch texts from their reference first poses (a pretraining run,
        which never saw a text, generates from the empty text without guidance)."""
        hp = self.hparams
        ids, valid, guidance = batch["text_ids"], batch["text_valid"], hp.guidance
        if hp.pretrain:
            ids, valid = (x[:, :1] for x in unconditional_ids(ids))
            guidance = 1.0
        return refine_from_first_pose(
            self.model, batch["pose"][:, 0], ids, valid,
            lengths=batch["lengths"] if force_length else None, guidance=guidance,
            steps=hp.sample_steps, bf16=hp.bf16_sampling,
        )  # fmt: skip

    def generate_text(self, texts: list[str], first_pose: Tensor, length: int | None = None,
                      guidance: float | None = None, steps: int | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
        """Poses for HamNoSys ``texts`` from ``first_pose [B, 75, 3]`` (normalised)."""
        if length is not None and not 2 <= length <= self.model.max_frames:
            raise ValueError(
                f"length must be in 2..{self.model.max_frames} (model.max_frames), got {length}"
            )
        ids, valid = self.tokenizer.batch(texts, self.hparams.max_text_len)
        lengths = None if length is None else torch.full((len(texts),), length)
        return refine_from_first_pose(
            self.model, first_pose.to(self.device), ids.to(self.device), valid.to(self.device),
            lengths=lengths, guidance=self.hparams.guidance if guidance is None else guidance,
            steps=self.hparams.sample_steps if steps is None else steps,
            bf16=self.hparams.bf16_sampling,
        )  # fmt: skip

    def baseline_length(self) -> float:
        if self.seen_length_count > 0:
            return float(self.seen_length_sum / self.seen_length_count)
        return self.model.max_frames / 2

    # ----------------------------------------------------------------- eval
    def _evaluate(self, batch: dict, prefix: str) -> None:
        b = len(batch["lengths"])
        pred, pred_lengths = self.generate(batch)
        model_metrics = pose_metrics(pred, pred_lengths, batch)
        length_error = (pred_lengths - batch["lengths"]).abs().float()
        static = batch["pose"][:, :1].expand_as(batch["pose"])
        base = pose_metrics(static, batch["lengths"], batch)
        base_length_error = (batch["lengths"].float() - self.baseline_length()).abs()
        for name, values in (*model_metrics.items(), ("length_error_frames", length_error)):
            self.log(f"{prefix}/{name}", values.mean(), batch_size=b)
        if prefix == "test":
            for name, values in (*base.items(), ("length_error_frames", base_length_error)):
                self.log(f"baseline/{name}", values.mean(), batch_size=b)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.losses(batch, torch.Generator().manual_seed(batch_idx))
        self.log("val/loss", out["loss"], batch_size=len(batch["lengths"]), prog_bar=True)
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        # The sampler draws nothing, so only the loss's random steps and hidden keypoint blocks
        # change with the SEEDS=N round; the generated poses and their metrics do not.
        out = self.losses(batch, torch.Generator().manual_seed(round_seed(self, batch_idx)))
        self.log("test/loss", out["loss"], batch_size=len(batch["lengths"]))
        self._evaluate(batch, "test")
        if not self._test_media_written and self.trainer.is_global_zero:
            self._test_media_written = True
            self._write_media(batch, Path(self.trainer.default_root_dir) / "samples")

    def on_test_start(self) -> None:
        self._test_media_written = False

    # ----------------------------------------------------------------- media
    @torch.no_grad()
    def _write_media(self, batch: dict, out_dir: Path) -> list[Path]:
        """GIF (reference | prediction) and the predicted ``.pose`` for the first samples."""
        n = min(self.hparams.media_samples, len(batch["lengths"]))
        small = {k: v[:n] for k, v in batch.items()}
        pred, lengths = self.generate(small)
        conf = prediction_confidence(pred, lengths)
        paths = []
        for i in range(n):
            ref_len, length = int(small["lengths"][i]), int(lengths[i])
            name = small["ids"][i]
            reference = (small["pose"][i, :ref_len].cpu().numpy(),
                         small["confidence"][i, :ref_len].cpu().numpy())  # fmt: skip
            generated = (pred[i, :length].cpu().numpy(), conf[i, :length].cpu().numpy())
            paths.append(render_gif(out_dir / f"{name}.gif", [reference, generated],
                                    fps=self.hparams.fps))  # fmt: skip
            paths.append(write_sequence(out_dir / f"{name}.pose", *generated, self.hparams.fps))
        (out_dir / "texts.tsv").write_text(
            "".join(f"{small['ids'][i]}\t{small['texts'][i]}\n" for i in range(n)), "utf-8"
        )
        return paths

    def write_samples(self, out_dir: Path) -> list[Path]:
        """Called by motioncore's SampleMedia callback at validation epoch ends."""
        datamodule = self.trainer.datamodule
        if datamodule is None or datamodule.val_set is None:
            return []
        items = [datamodule.val_set[i] for i in range(min(self.hparams.media_samples,
                                                           len(datamodule.val_set)))]  # fmt: skip
        batch = datamodule.val_set.collate(items)
        batch = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
        was_training = self.training
        self.eval()
        try:
            return self._write_media(batch, out_dir)
        finally:
            self.train(was_training)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
