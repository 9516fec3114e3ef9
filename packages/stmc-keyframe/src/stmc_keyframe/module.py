"""LightningModule: keyframe-conditioned text-to-motion diffusion on SMPL-RIFKE.

Training (CondMDI on STMC's denoiser): x0 prediction under a cosine schedule; with
``diffusion.keyframe_conditioned`` a keyframe mask is drawn per sample by a
``motioncore.masking`` scheme, expanded to features through the SMPL-RIFKE joint table,
dropped whole with ``keyframe_mask_prob``; clean data replaces x_t at observed entries and the
mask is a denoiser input. Text is dropped to "" with ``drop_cond`` for classifier-free
guidance. Evaluation samples in-betweens for held-out motions placed at a random world pose
and compares them with linear interpolation of the same keyframes.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import hydra
import lightning.pytorch as pl
import numpy as np
import torch

from motioncore.diffusion import Guidance, Keyframes, NoiseSchedule, diffusion_loss, sample
from motioncore.losses import masked_mse
from motioncore.masking import (
    SCHEMES,
    expand_to_features,
    joint_to_feature_matrix,
    keyframe_dropout,
    keyframe_joint_mask,
    length_mask,
    loss_mask,
)
from motioncore.metrics import (
    foot_skating_ratio,
    keyframe_error,
    mpjpe,
    trajectory_error,
    transition_jerk,
)
from motioncore.train import plain, round_seed
from stmc_keyframe.data.amass import FPS
from stmc_keyframe.keyframes import (
    anchor_to_keyframes,
    correct_trajectory,
    interpolate_keyframes,
    keyframe_guidance_loss,
    keyframe_jerk_ratio,
    lock_feet,
    observed_features,
    smooth_features,
)
from stmc_keyframe.model.text_encoder import TextEncoder
from stmc_keyframe.representation import smplrifke
from stmc_keyframe.representation.skeleton import FOOT_JOINTS, N_BODY_JOINTS
from stmc_keyframe.schema import diffusion_config
from stmc_keyframe.timeline import (
    Interval,
    make_timeline_scheduler,
    process_timeline,
    sample_timelines,
)

log = logging.getLogger(__name__)


def check_diffusion_config(d: dict) -> dict:
    """``d`` typed by :class:`~stmc_keyframe.schema.DiffusionConfig`; unknown keys and
    inconsistent keyframe settings fail with a message naming the fix."""
    d = diffusion_config(d)
    if bool(d["keyframe_conditioned"]) != bool(d["denoiser"].get("keyframe_conditioned", False)):
        raise ValueError(
            f"diffusion.keyframe_conditioned={d['keyframe_conditioned']} but "
            f"diffusion.denoiser.keyframe_conditioned={d['denoiser'].get('keyframe_conditioned')}: "
            "set both to the same value"
        )
    if d["keyframe_selection_scheme"] not in SCHEMES:
        raise ValueError(f"diffusion.keyframe_selection_scheme must be one of {SCHEMES}")
    if not 0.0 <= float(d["keyframe_mask_prob"]) <= 1.0:
        raise ValueError("diffusion.keyframe_mask_prob must be in [0, 1]")
    if d["posterior_noise"] not in ("std", "upstream"):
        raise ValueError(
            "diffusion.posterior_noise must be 'std' (textbook) or 'upstream' (variance)"
        )
    smplrifke.joint_feature_table(d["keyframe_features"])  # validates the mode
    return d


def _identity_text_stats(module, state_dict, prefix, *args) -> None:
    """Checkpoints written before text z-scoring have no text statistics: identity keeps their
    behaviour (the state dict is the caller's; only missing keys are added)."""
    for key, fill in (("text_mean", 0.0), ("text_std", 1.0)):
        if prefix + "stats_set" in state_dict and prefix + key not in state_dict:
            state_dict[prefix + key] = torch.full_like(getattr(module, key), fill)


class StmcKeyframeModule(pl.LightningModule):
    def __init__(
        self,
        diffusion: dict,
        text_encoder: dict,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        drop_cond: float = 0.1,
        evaluation: dict | None = None,
    ):
        super().__init__()
        diffusion = check_diffusion_config(plain(diffusion))
        text_encoder, evaluation = dict(plain(text_encoder)), dict(plain(evaluation or {}))
        self.save_hyperparameters({"diffusion": diffusion, "text_encoder": text_encoder, "lr": lr,
                                   "weight_decay": weight_decay, "drop_cond": drop_cond,
                                   "evaluation": evaluation})  # fmt: skip
        self.d = diffusion
        self.evaluation = {"scheme": "gmd_keyframes", "n_keyframes": 5, "trans_length": 20,
                           "n_media": 4, "seed": 0, "n_timelines": 8, **evaluation}  # fmt: skip
        self.text_encoder = TextEncoder(**text_encoder)
        self.denoiser = hydra.utils.instantiate(diffusion["denoiser"])
        if self.denoiser.tx_dim != self.text_encoder.dim:
            raise ValueError(
                f"diffusion.denoiser.tx_dim={self.denoiser.tx_dim} but the {self.text_encoder.name} "
                f"text encoder gives {self.text_encoder.dim}-d embeddings; set them equal"
            )
        self.schedule: NoiseSchedule = hydra.utils.instantiate(diffusion["schedule"])
        if self.schedule.prediction_type != "sample":
            raise ValueError(
                "STMC/CondMDI predict x0: set diffusion.schedule.prediction_type=sample"
            )
        table = smplrifke.joint_feature_table(diffusion["keyframe_features"])
        self.register_buffer(
            "joint_table", joint_to_feature_matrix(table, smplrifke.N_FEATS), persistent=False
        )
        self.register_buffer("mean", torch.zeros(smplrifke.N_FEATS))
        self.register_buffer("std", torch.ones(smplrifke.N_FEATS))
        # STMC z-scores the text embeddings too (its text_stats); identity until set
        self.register_buffer("text_mean", torch.zeros(self.text_encoder.dim))
        self.register_buffer("text_std", torch.ones(self.text_encoder.dim))
        self.register_buffer("stats_set", torch.tensor(False))
        self.register_load_state_dict_pre_hook(_identity_text_stats)
        self._test_out: list[dict] = []

    # ---- data helpers --------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if not bool(self.stats_set) and dm is not None and getattr(dm, "stats", None) is not None:
            mean, std = dm.stats
            self.mean.copy_(mean)
            self.std.copy_(std.clamp(min=1e-4))  # constant features (e.g. unused DOFs) stay finite
            # one embedding per training crop, as STMC's save_stats over its dataset
            emb = self.text_encoder([it.text for it in dm.train_set.items])
            self.text_mean.copy_(emb.mean(0))
            self.text_std.copy_(emb.std(0).clamp(min=1e-4))
            self.stats_set.fill_(True)
        if stage == "fit" and not bool(self.stats_set):
            raise RuntimeError(
                "normalisation statistics are missing: the DataModule must set .stats"
            )

    def normalize(self, feats: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) / self.std * valid[..., None]

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Text embeddings as the denoiser takes them: z-scored with the text statistics."""
        return self.normalize_text(self.text_encoder(texts).to(self.device))

    def normalize_text(self, emb: torch.Tensor) -> torch.Tensor:
        return (emb - self.text_mean) / self.text_std

    def keyframe_mask(
        self,
        lengths: torch.Tensor,
        max_len: int,
        scheme: str,
        n_keyframes: int,
        trans_length: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Joint-level [B, T, 22] mask of a motioncore scheme."""
        return keyframe_joint_mask(
            scheme, lengths.cpu(), max_len, N_BODY_JOINTS, n_keyframes=n_keyframes,
            trans_length=trans_length, n_random_frames=self.d["n_random_frames"],
            generator=generator,
        ).to(self.device)  # fmt: skip

    # ---- training ------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        lengths = batch["lengths"]
        valid = length_mask(lengths, batch["feats"].shape[1]).to(self.device)
        x0 = self.normalize(batch["feats"], valid)
        texts = [
            t if float(torch.rand(())) >= self.hparams.drop_cond else "" for t in batch["text"]
        ]
        text = self.encode_text(texts)
        # t and noise before the keyframe mask: the RNG order of every earlier run
        t = self.schedule.sample_timesteps(len(x0), self.device)
        noise = self.schedule.sample_noise(x0)
        if self.d["keyframe_conditioned"]:
            jm = self.keyframe_mask(lengths, x0.shape[1], self.d["keyframe_selection_scheme"],
                                    self.d["n_keyframes"], self.d["trans_length"])  # fmt: skip
            jm = keyframe_dropout(jm, float(self.d["keyframe_mask_prob"]))
            obs = expand_to_features(jm, self.joint_table) & valid[..., None]
        else:
            obs = torch.zeros_like(x0, dtype=torch.bool)
        where = loss_mask(valid, obs, bool(self.d["zero_keyframe_loss"]))
        out = diffusion_loss(self.denoiser, self.schedule, x0,
                             {"text": text, "valid": valid, "obs_mask": obs}, where, t=t,
                             noise=noise, noise_mask=valid, clean=obs)  # fmt: skip
        loss = out.loss.mean()
        free = valid[..., None] & ~obs
        ratio = obs.sum() / (valid.sum() * smplrifke.N_FEATS)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(x0))
        self.log("train/keyframe_ratio", ratio, batch_size=len(x0))
        non_keyframe = masked_mse(out.pred, out.target, free).mean()
        self.log("train/non_keyframe_loss", non_keyframe, batch_size=len(x0))
        return loss

    @torch.no_grad()
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        lengths = batch["lengths"]
        valid = length_mask(lengths, batch["feats"].shape[1]).to(self.device)
        x0 = self.normalize(batch["feats"], valid)
        g = torch.Generator().manual_seed(batch_idx)
        t = self.schedule.sample_timesteps(len(x0), self.device, g)
        noise = self.schedule.sample_noise(x0, g)
        obs = torch.zeros_like(x0, dtype=torch.bool)
        if self.d["keyframe_conditioned"]:
            jm = self.keyframe_mask(lengths, x0.shape[1], self.d["keyframe_selection_scheme"],
                                    self.d["n_keyframes"], self.d["trans_length"], g)  # fmt: skip
            obs = expand_to_features(jm, self.joint_table) & valid[..., None]
        cond = {"text": self.encode_text(batch["text"]), "valid": valid, "obs_mask": obs}
        out = diffusion_loss(self.denoiser, self.schedule, x0, cond, valid, t=t, noise=noise,
                             noise_mask=valid, clean=obs)  # fmt: skip
        self.log("val/loss", out.loss.mean(), batch_size=len(x0))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.denoiser.parameters(), lr=self.hparams.lr,
                                 weight_decay=self.hparams.weight_decay)  # fmt: skip

    # ---- sampling ------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        texts: list[str],
        lengths: torch.Tensor,
        keyframe_joints: torch.Tensor | None = None,
        keyframe_joint_mask: torch.Tensor | None = None,
        reference: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        reconstruction_weight: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Sample motions for ``texts`` (optionally through global keyframes).

        Args:
            keyframe_joints: [B, T, 22 or 24, 3] global joints (Z up, floor at 0), read only at
                observed frames; ``keyframe_joint_mask`` [B, T, 22] says which joints are given.
            reference: normalised features [B, T, 205] for observed non-position features
                (``keyframe_features=pos_rot_vel``); None observes positions only.

        Returns ``feats`` [B, T, 205] (unnormalised), ``joints`` [B, T, 24, 3] in the world
        (anchored to the keyframes when given) and ``keyframes`` [B, T] (frames observed).
        """
        d = self.d
        lengths = torch.as_tensor(lengths)
        b, n = len(texts), int(lengths.max())
        valid = length_mask(lengths, n).to(self.device)
        text = self.encode_text(list(texts))
        empty = self.encode_text([""]).expand(b, -1)
        kf = self._keyframe_inputs(keyframe_joints, keyframe_joint_mask, valid, reference,
                                   reconstruction_weight)  # fmt: skip
        cond = {"text": text, "valid": valid, "obs_mask": kf["obs"]}
        uncond = {"text": empty, "valid": valid, "obs_mask": kf["obs"]}
        scale = float(d["guidance_scale"] if guidance_scale is None else guidance_scale)
        x = sample(
            self.denoiser, self.schedule, (b, n, smplrifke.N_FEATS), cond=cond,
            guidance=Guidance(uncond=uncond, scale=scale, **kf["guide"]), keyframes=kf["keyframes"],
            num_steps=self.resolve_num_steps(num_steps), generator=generator, device=self.device,
            sampler=make_timeline_scheduler(self.schedule, d["sampler"], d["posterior_noise"]),
        )  # fmt: skip
        return self._finish(x, lengths, valid, kf)

    @torch.no_grad()
    def generate_timelines(
        self,
        timelines: list[list[Interval]],
        keyframe_joints: torch.Tensor | None = None,
        keyframe_joint_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        posterior_noise: str | None = None,
        sampler: str = "ddpm",
        overlap_s: float = 0.5,
        bf16: bool = False,
        reconstruction_weight: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """STMC timelines (one motion each, in one batch), optionally through global keyframes.

        ``keyframe_joints`` [S, N, 22 or 24, 3] / ``keyframe_joint_mask`` [S, N, 22] are in
        timeline frames (N = the longest timeline, frame 0 = its first interval's start, 20 fps).
        Keyframes enter the collage as in :meth:`generate`: observed pose features injected into
        the full sequence before every step (so every crop sees them, and a keyframe-trained
        denoiser gets the mask), reconstruction guidance through the decoder, then anchoring and
        the trajectory correction. Returns what :meth:`generate` returns plus ``lengths`` [S].
        """
        d = self.d
        probe = [process_timeline(tl, FPS, overlap_s).n_frames for tl in timelines]
        lengths = torch.tensor(probe)
        valid = length_mask(lengths, int(lengths.max())).to(self.device)
        if keyframe_joints is not None and keyframe_joints.shape[1] != valid.shape[1]:
            raise ValueError(
                f"keyframes span {keyframe_joints.shape[1]} frames but the timelines "
                f"{valid.shape[1]}: give keyframes in timeline frames (20 fps from the first "
                "interval's start)"
            )
        kf = self._keyframe_inputs(keyframe_joints, keyframe_joint_mask, valid, None,
                                   reconstruction_weight)  # fmt: skip
        guidance = Guidance(**kf["guide"]) if kf["guide"] else None
        x, _ = sample_timelines(
            self, timelines, FPS, overlap_s,
            guidance_scale=float(d["guidance_scale"] if guidance_scale is None else guidance_scale),
            num_steps=self.resolve_num_steps(num_steps),
            posterior_noise=posterior_noise or d["posterior_noise"],
            generator=generator, sampler=sampler, bf16=bf16, keyframes=kf["keyframes"],
            guidance=guidance, obs_mask=kf["obs"] if kf["keyframes"] is not None else None,
        )  # fmt: skip
        return {**self._finish(x, lengths, valid, kf), "lengths": lengths}

    def resolve_num_steps(self, num_steps: int | None) -> int:
        """``num_steps`` or the configured ``diffusion.num_steps``; at least one step."""
        n = int(self.d["num_steps"] if num_steps is None else num_steps)
        if n <= 0:
            raise ValueError(
                f"num_steps={n}: sampling needs at least one denoising step; "
                "pass num_steps=N with N >= 1 (e.g. num_steps=50)"
            )
        return n

    def _keyframe_inputs(self, keyframe_joints, keyframe_joint_mask, valid, reference,
                         reconstruction_weight) -> dict:  # fmt: skip
        """Observed features, their mask, sampler keyframes and reconstruction guidance."""
        b, n = valid.shape
        out = {"obs": torch.zeros(b, n, smplrifke.N_FEATS, dtype=torch.bool, device=self.device),
               "kf_frames": torch.zeros(b, n, dtype=torch.bool, device=self.device),
               "keyframes": None, "guide": {}, "target": None}  # fmt: skip
        if keyframe_joints is None:
            return out
        jm = keyframe_joint_mask.to(self.device) & valid[..., None]
        kf_frames = jm.any(-1)
        feat_mask = expand_to_features(jm, self.joint_table)
        values, obs = observed_features(keyframe_joints.to(self.device), feat_mask, self.mean,
                                        self.std, reference)  # fmt: skip
        target = keyframe_joints[..., :N_BODY_JOINTS, :].to(self.device)
        weight = (
            self.d["reconstruction_weight"]
            if reconstruction_weight is None
            else reconstruction_weight
        )
        injection = "clean" if self.d["keyframe_conditioned"] else "noised"
        return {"obs": obs, "kf_frames": kf_frames, "target": target,
                "keyframes": Keyframes(values, obs.float(), injection=injection),
                "guide": {"loss": keyframe_guidance_loss(self.mean, self.std, target, kf_frames),
                          "weight": float(weight)}}  # fmt: skip

    def _finish(self, x, lengths, valid, kf) -> dict[str, torch.Tensor]:
        """Denormalise, optional minimum-jerk smoothing through the keyframes, decode; with
        keyframes anchor and post-process."""
        d = self.d
        feats = self.denormalize(x)
        observed = kf["target"] is not None
        values = self.denormalize(kf["keyframes"].values) if observed else None
        feats = smooth_features(feats, lengths, float(d["smooth_sigma"]), values,
                                kf["obs"] if observed else None,
                                float(d["smooth_sigma_keyframes"]) or None)  # fmt: skip
        feats = feats * valid[..., None]
        joints = smplrifke.decode(feats).joints
        if kf["target"] is not None:
            joints = anchor_to_keyframes(joints, kf["target"], kf["kf_frames"])
            if d["foot_lock"]:
                joints = lock_feet(joints, lengths, FOOT_JOINTS)
            if d["trajectory_correction"]:
                joints = correct_trajectory(joints, kf["target"], kf["kf_frames"], lengths)
        return {"feats": feats, "joints": joints * valid[..., None, None],
                "keyframes": kf["kf_frames"]}  # fmt: skip

    # ---- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def test_step(self, batch: dict, batch_idx: int) -> None:
        ev = self.evaluation
        lengths = batch["lengths"]
        n = batch["feats"].shape[1]
        valid = length_mask(lengths, n).to(self.device)
        g = torch.Generator().manual_seed(round_seed(self, int(ev["seed"]) + batch_idx))
        # place each held-out motion at a random world pose: the model must find it from keyframes
        heading = torch.rand(len(lengths), generator=g) * 2 * math.pi
        origin = (torch.rand(len(lengths), 2, generator=g) - 0.5) * 4
        feats = batch["feats"].to(self.device)
        gt = smplrifke.decode(feats, heading.to(self.device), origin.to(self.device)).joints
        gt = gt * valid[..., None, None]
        jm = self.keyframe_mask(lengths, n, ev["scheme"], ev["n_keyframes"], ev["trans_length"], g)
        jm &= valid[..., None]
        reference = self.normalize(feats, valid)
        out = self.generate(
            batch["text"], lengths, gt, jm, reference, generator=g,
            num_steps=ev.get("num_steps"), guidance_scale=ev.get("guidance_scale"),
        )  # fmt: skip
        kf = jm.any(-1)
        base = interpolate_keyframes(gt[:, :, :N_BODY_JOINTS], kf, lengths)
        self._test_out.append({
            "pred": out["joints"][:, :, :N_BODY_JOINTS].cpu(), "base": base.cpu(),
            "gt": gt[:, :, :N_BODY_JOINTS].cpu(), "kf": kf.cpu(), "lengths": lengths.cpu(),
            "boundaries": batch["boundaries"], "text": batch["text"], "feats": out["feats"].cpu(),
        })  # fmt: skip
        if batch_idx == 0 and int(ev["n_timelines"]) > 0:
            self._timeline_test(batch, gt, jm, g)

    def _timeline_test(self, batch: dict, gt: torch.Tensor, jm: torch.Tensor, g) -> None:
        """Keyframes inside timelines: the first ``evaluation.n_timelines`` test motions become
        timelines of whole-body intervals cut at their annotation boundaries (each labelled with
        the motion's text), sampled through the same keyframes as above. Logs the keyframe error
        and the jerk within 3 frames of a keyframe over the jerk elsewhere (1 = no pop)."""
        ev, k = self.evaluation, min(int(self.evaluation["n_timelines"]), len(batch["text"]))
        lengths = batch["lengths"][:k]
        timelines = []
        for i in range(k):
            cuts = [0, *sorted(set(batch["boundaries"][i])), int(lengths[i])]
            # frame f given as (f + 0.5) / fps seconds: int(fps * s) == f exactly
            timelines.append([Interval(batch["text"][i], (a + 0.5) / FPS, (b + 0.5) / FPS)
                              for a, b in zip(cuts[:-1], cuts[1:], strict=True)])  # fmt: skip
        n = int(lengths.max())
        target, mask = gt[:k, :n], jm[:k, :n]
        out = self.generate_timelines(timelines, target, mask, generator=g,
                                      num_steps=ev.get("num_steps"),
                                      guidance_scale=ev.get("guidance_scale"))  # fmt: skip
        pred, kf = out["joints"][:, :, :N_BODY_JOINTS], mask.any(-1)
        truth = target[:, :, :N_BODY_JOINTS]
        err = keyframe_error(pred.cpu(), truth.cpu(), kf.cpu()).nanmean()
        ratio = keyframe_jerk_ratio(pred.cpu(), kf.cpu(), lengths).nanmean()
        # the data's own ratio at the same keyframes: how much of the ratio is where they fall
        ratio_gt = keyframe_jerk_ratio(truth.cpu(), kf.cpu(), lengths).nanmean()
        jerk = transition_jerk(pred.cpu(), batch["boundaries"][:k], lengths=lengths).nanmean()
        for name, value in (("timeline_keyframe_error_m", err), ("timeline_keyframe_jerk_ratio", ratio),
                            ("timeline_keyframe_jerk_ratio_gt", ratio_gt),
                            ("timeline_transition_jerk", jerk)):  # fmt: skip
            self.log(f"test/{name}", float(value), batch_size=k)

    def on_test_epoch_start(self) -> None:
        self._test_out = []

    def on_test_epoch_end(self) -> None:
        outs = self._test_out
        n = max(o["pred"].shape[1] for o in outs)

        def cat(key):
            return torch.cat([torch.nn.functional.pad(o[key], (0, 0) * (o[key].ndim - 2) + (0, n - o[key].shape[1]))
                              for o in outs])  # fmt: skip

        gt, kf, lengths = cat("gt"), cat("kf"), torch.cat([o["lengths"] for o in outs])
        boundaries = [b for o in outs for b in o["boundaries"]]
        valid = length_mask(lengths, n)
        for prefix, joints in (("test", cat("pred")), ("baseline", cat("base"))):
            for name, value in motion_metrics(joints, gt, kf, valid, lengths, boundaries).items():
                self.log(f"{prefix}/{name}", value)
        # linear interpolation is smooth by construction: the data's own jerk is the yardstick
        self.log(
            "test/transition_jerk_gt",
            float(transition_jerk(gt, boundaries, lengths=lengths).nanmean()),
        )
        self._write_media(cat("pred"), cat("gt"), kf, lengths, [t for o in outs for t in o["text"]])

    def _write_media(self, pred, gt, kf, lengths, texts) -> None:
        from stmc_keyframe.visualize import write_gif

        out_dir = Path(self.trainer.default_root_dir) / "samples"
        out_dir.mkdir(parents=True, exist_ok=True)
        for i in range(min(int(self.evaluation["n_media"]), len(pred))):
            n = int(lengths[i])
            np.save(out_dir / f"test_{i:03d}_joints.npy", pred[i, :n].cpu().numpy())
            write_gif(out_dir / f"test_{i:03d}.gif", pred[i, :n], texts[i], ghost=gt[i, :n],
                      keyframes=kf[i, :n])  # fmt: skip


def motion_metrics(joints, gt, kf, valid, lengths, boundaries) -> dict[str, float]:
    """The issue's test metrics for joints [B, T, 22, 3] against ground truth."""
    traj = trajectory_error(joints[:, :, 0], gt[:, :, 0], kf, up_axis=2)
    skate = foot_skating_ratio(joints, lengths, foot_joints=FOOT_JOINTS, up_axis=2)
    jerk = transition_jerk(joints, boundaries, lengths=lengths)
    between = valid & ~kf
    return {
        "keyframe_error_m": float(keyframe_error(joints, gt, kf).nanmean()),
        "traj_error_m": float(traj["traj_error_m"]),
        "traj_fail_20cm": float(traj["traj_fail_20cm"]),
        "traj_fail_50cm": float(traj["traj_fail_50cm"]),
        "foot_skating_ratio": float(skate.mean()),
        "transition_jerk": float(jerk.nanmean()),
        "inbetween_mpjpe_m": float(mpjpe(joints, gt, between).mean()),
    }
