"""The text-to-pose network and its sampler: iterative x0 refinement from the first pose.

Reference text-to-pose.md, "Inference": ``x_T`` is the first pose, its missing keypoints
filled by the correction MLP, repeated to the predicted length; for ``t = T-1 ... 0`` the refiner predicts ``x0`` (with classifier-free guidance
``u + s (c - u)``, Ho & Salimans 2022, Eq. 6, cond and uncond in one batched forward) and, while
``t > 0``, re-blends ``x_t' = beta_t' x_T + (1 - beta_t') x0`` for the next visited step ``t'``.
The text is encoded once per sample, before the loop. There is no Gaussian noise, so this is
not a diffusers sampler; the CFG forward is motioncore's ``guided_output``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from motioncore.diffusion import guided_output, require_finite
from motioncore.masking import length_mask
from text_to_pose.data.holistic import N_KEYPOINTS
from text_to_pose.data.tokenizer import BOS, PAD
from text_to_pose.model.encoders import LengthDistribution, PoseCorrection, PoseEncoder, TextEncoder
from text_to_pose.model.schedule import blend_betas, refinement_steps


class TextToPose(nn.Module):
    """Text encoder + length distribution + pose encoder with step embedding and output MLP +
    first-pose correction. ``model(x_t, t, cond) -> x0``, with
    ``cond = {"text", "text_valid", "frame_valid"}`` (the motioncore call contract).

    ``residual`` (ours, off for upstream weights) adds the MLP output to ``x_t`` (still an
    ``x0`` prediction, easier to learn since ``x_t`` is a blend of ``x0``); upstream's MLP
    output is ``x0`` itself.
    """

    def __init__(self, vocab_size: int, hidden: int = 512, heads: int = 8, ff: int = 2048,
                 text_layers: int = 2, pose_layers: int = 4, text_dropout: float = 0.1,
                 pose_dropout: float = 0.0, max_text_len: int = 128, max_frames: int = 200,
                 num_steps: int = 10, length_scale: float = 100.0, residual: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.max_frames, self.num_steps, self.residual = max_frames, num_steps, residual
        features = N_KEYPOINTS * 3
        self.text_encoder = TextEncoder(vocab_size, hidden, heads, ff, text_layers, text_dropout,
                                        max_text_len)  # fmt: skip
        self.length = LengthDistribution(hidden, length_scale)
        self.pose_encoder = PoseEncoder(features, hidden, heads, ff, pose_layers, pose_dropout,
                                        max_frames)  # fmt: skip
        self.step = nn.Embedding(num_steps, hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, features))
        self.correction = PoseCorrection(features)
        self.register_buffer("betas", blend_betas(num_steps), persistent=False)

    def encode(self, ids: Tensor, valid: Tensor) -> dict[str, Tensor]:
        return {"text": self.text_encoder(ids, valid), "text_valid": valid}

    def length_distribution(self, cond: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``mu, log_var [B]`` of the frame count."""
        return self.length(self.length.pool(cond["text"], cond["text_valid"]))

    def predict_length(self, cond: dict[str, Tensor]) -> Tensor:
        """Predicted frame count (float, the distribution's mean) per sample."""
        return self.length_distribution(cond)[0]

    def forward(self, x_t: Tensor, t: Tensor, cond: dict[str, Tensor]) -> Tensor:
        """Tokens ``[frames | step | text]``; the first ``T`` outputs -> MLP -> ``x0``."""
        frames = x_t.shape[1]
        step = self.step(t)[:, None]
        extra = torch.cat([step, cond["text"].to(step.dtype)], dim=1)
        step_valid = torch.ones_like(cond["text_valid"][:, :1])
        extra_valid = torch.cat([step_valid, cond["text_valid"]], dim=1)
        encoded = self.pose_encoder(x_t, cond["frame_valid"], extra, extra_valid)
        # contiguous: a linear layer on the strided slice runs as a bmm over a batch-expanded
        # copy of the weight (3.5% of bf16 sampling in the profile)
        out = self.head(encoded[:, :frames].contiguous()).view_as(x_t)
        return x_t + out if self.residual else out

    def blend(self, x0: Tensor, x_T: Tensor, t: Tensor, jitter: Tensor | None = None) -> Tensor:
        """``x_t = beta_t x_T + (1 - beta_t) x0`` (per-sample ``t``; ``jitter`` scales beta by
        ``1 + jitter`` as in upstream training)."""
        beta = self.betas[t]
        if jitter is not None:
            beta = beta * (1 + jitter)
        beta = beta.view(-1, *([1] * (x0.ndim - 1)))
        return beta * x_T + (1 - beta) * x0

    def clamp_lengths(self, lengths: Tensor) -> Tensor:
        """Round and clamp predicted lengths to ``[2, max_frames]`` (the positional table; the
        upstream clamp of 1000 exceeded its 200-row table)."""
        return lengths.round().long().clamp(2, self.max_frames)


def unconditional_ids(ids: Tensor) -> tuple[Tensor, Tensor]:
    """``[BOS, PAD, ...]`` rows shaped like ``ids``: the empty text, padded to the same width so
    that cond and uncond batch together."""
    uncond = torch.full_like(ids, PAD)
    uncond[:, 0] = BOS
    return uncond, uncond != PAD


def bf16_copy(model: TextToPose) -> TextToPose:
    """A frozen copy of ``model`` for bfloat16 sampling: the text encoder, pose encoder, step
    embedding and output MLP in bf16; layer-norm parameters, the length head and the first-pose
    correction stay fp32 (layer norms take bf16 inputs and accumulate in fp32; the length is
    pooled in fp32, so it is not rounded to bf16's 8 bits). Casting once per sampling call
    replaces autocast, which re-casts every fp32 activation at each matmul of each step (15% of
    bf16 sampling time in the profile). The refiner adds its bf16 output MLP to the fp32 ``x_t``,
    so ``x0`` keeps fp32 precision where the prediction is small."""
    fast = copy.deepcopy(model).requires_grad_(False)
    for part in (fast.text_encoder, fast.pose_encoder, fast.step, fast.head):
        part.to(torch.bfloat16)
    for module in fast.modules():
        if isinstance(module, nn.LayerNorm):
            module.float()
    return fast


def _likely_causes(guidance: float, bf16: bool) -> str:
    causes = [f"a too large guidance scale ({guidance}; typical 1-5)"] if guidance != 1.0 else []
    if bf16:
        causes.append("bfloat16 overflow (sample with bf16=false)")
    causes.append("non-finite weights in the checkpoint (evaluate an earlier one) or first poses")
    return f"Likely cause: {'; or '.join(causes)}. Fix that and rerun."


@torch.no_grad()
def refine_from_first_pose(
    model: TextToPose,
    first_pose: Tensor,
    ids: Tensor,
    valid: Tensor,
    lengths: Tensor | None = None,
    guidance: float = 2.5,
    steps: int | None = None,
    bf16: bool = False,
) -> tuple[Tensor, Tensor]:
    """Generate poses for ``B`` texts from their first poses ``[B, 75, 3]``.

    Args:
        ids, valid: tokenised texts ``[B, L]``.
        lengths: force the frame counts; ``None`` uses the length predictor.
        guidance: CFG scale ``s``; 1 disables the unconditional branch.
        steps: refinement steps (default ``model.num_steps``; fewer visits a strided subset).
        bf16: run the text and pose Transformers on a bfloat16 copy (:func:`bf16_copy`, made
            once per call; ``model`` keeps its weights).

    Returns:
        ``poses [B, T, 75, 3]`` (zero past each length) and ``lengths [B]``.
    """
    if not math.isfinite(guidance):
        raise ValueError(f"guidance must be a finite number (1 = no guidance), got {guidance}")
    schedule = refinement_steps(model.num_steps, steps)
    refiner = bf16_copy(model) if bf16 else model
    cond_ids, cond_valid = ids, valid
    if guidance != 1.0:  # encode cond and uncond texts in one call, once per sample
        u_ids, u_valid = unconditional_ids(ids)
        cond_ids, cond_valid = torch.cat([ids, u_ids]), torch.cat([valid, u_valid])
    encoded = refiner.encode(cond_ids, cond_valid)
    b = ids.shape[0]
    cond = {k: v[:b] for k, v in encoded.items()}
    uncond = {k: v[b:] for k, v in encoded.items()} if guidance != 1.0 else None
    if lengths is None:
        lengths = model.clamp_lengths(refiner.predict_length(cond))
    lengths = lengths.to(first_pose.device)
    frames = int(lengths.max())
    frame_valid = length_mask(lengths, frames)
    cond["frame_valid"] = frame_valid
    if uncond is not None:
        uncond["frame_valid"] = frame_valid
    first_pose = model.correction.fill(first_pose.float())
    x_T = first_pose[:, None].expand(b, frames, *first_pose.shape[1:])
    x_t = x_T
    for i, step in enumerate(schedule):
        t = torch.full((b,), step, dtype=torch.long, device=first_pose.device)
        x0 = guided_output(refiner, x_t, t, cond, uncond, guidance).float()
        require_finite(
            x0,
            f"the refined poses at step {i + 1} of {len(schedule)} (t={step})",
            _likely_causes(guidance, bf16),
        )
        if i + 1 < len(schedule):
            x_t = model.blend(x0, x_T, t.fill_(schedule[i + 1]))
    return x0 * frame_valid[..., None, None], lengths
