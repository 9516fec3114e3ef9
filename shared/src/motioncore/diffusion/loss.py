"""The one diffusion training loss (k-diffusion's ``Denoiser.loss`` as the model).

Data flow for a batch ``x0 [B, ...]``::

    t ~ U{0..T-1} [B]  ->  noise ~ N(0, I) (+ offset noise)  ->  x_t = add_noise(x0, noise, t)
    -> x_in = where(clean, x0, x_t)  ->  pred = model(x_in, t, cond)
    -> target (epsilon | x0 | v)  ->  masked MSE/L1 per example  * Min-SNR-gamma weight  -> [B]

Draw order, with ``generator`` or the global RNG: t first, then noise (then offset noise).
Callers that must draw something else between the noise and the model call, or that draw noise
before t, pass ``t`` and/or ``noise`` themselves; nothing else is drawn here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from motioncore.diffusion.schedule import NoiseSchedule
from motioncore.losses.masked import align_mask, masked_l1, masked_mse

LOSS_KINDS = {"mse": masked_mse, "l1": masked_l1}


@dataclass(frozen=True)
class DiffusionLoss:
    """What :func:`diffusion_loss` computed: ``loss`` [B] and the tensors behind it."""

    loss: Tensor
    pred: Tensor
    target: Tensor
    t: Tensor
    x_t: Tensor


def diffusion_loss(
    model: Callable[[Tensor, Tensor, Any], Tensor],
    schedule: NoiseSchedule,
    x0: Tensor,
    cond: Any = None,
    mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    *,
    kind: str = "mse",
    t: Tensor | None = None,
    noise: Tensor | None = None,
    noise_mask: Tensor | None = None,
    clean: Tensor | None = None,
) -> DiffusionLoss:
    """Per-example denoising loss of ``model(x_t, t, cond)`` at random noise levels.

    Args:
        mask: loss mask (bool validity or float weights) aligned from the left with ``x0``,
            e.g. ``[B, T]`` frames; padded entries count in neither numerator nor denominator.
        generator: drives t and noise (global RNG when None).
        kind: ``mse`` or ``l1``, both computed in float32.
        t: timesteps [B] to use instead of drawing them (e.g. one per clip shared by its frames).
        noise: noise to use instead of drawing it (offset noise is then the caller's).
        noise_mask: entries where noise is kept; elsewhere (padding) x_t stays x0 * sqrt(abar).
        clean: bool mask of entries given to the model clean (CondMDI keyframe training,
            ``x_in = where(clean, x0, x_t)``); ``x_t`` of the result is this model input.

    Returns:
        :class:`DiffusionLoss`; ``loss`` is weighted by ``schedule.loss_weights(t)``
        (Min-SNR-gamma when ``schedule.min_snr_gamma`` is set, else ones). Reduce it yourself.
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"loss kind={kind!r} is unknown; use one of {tuple(LOSS_KINDS)}")
    if t is None:
        t = schedule.sample_timesteps(x0.shape[0], x0.device, generator)
    elif t.shape != x0.shape[:1]:
        raise ValueError(f"t has shape {tuple(t.shape)}; need one timestep per example [{len(x0)}]")
    if noise is None:
        noise = schedule.sample_noise(x0, generator)
    if noise_mask is not None:
        noise = noise * align_mask(noise_mask, noise.shape)
    x_t = schedule.add_noise(x0, noise, t)
    if clean is not None:
        x_t = torch.where(clean, x0, x_t)
    pred = model(x_t, t, cond)
    target = schedule.training_target(x0, noise, t)
    per_example = LOSS_KINDS[kind](pred.float(), target.float(), mask)
    return DiffusionLoss(per_example * schedule.loss_weights(t), pred, target, t, x_t)
