"""The blend schedule of the refiner (reference text-to-pose.md, "Schedule").

HEAD upstream reuses the cosine beta schedule of Nichol & Dhariwal (2021, Eq. 17, s = 0.008)
not as a noise variance but as the share of ``x_T`` (the first pose repeated) in
``x_t = beta_t * x_T + (1 - beta_t) * x_0``; ``beta_{T-1} = 1``, so the last step is the
static first pose. diffusers computes these betas (``betas_for_alpha_bar``); the upstream clip
is [1e-4, 1].
"""

from __future__ import annotations

import torch
from diffusers.schedulers.scheduling_ddpm import betas_for_alpha_bar


def blend_betas(num_steps: int) -> torch.Tensor:
    """``[num_steps]`` blend weights toward ``x_T``, increasing to exactly 1."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    betas = betas_for_alpha_bar(num_steps, max_beta=1.0, alpha_transform_type="cosine")
    betas = betas.float().clamp(1e-4, 1.0)
    betas[-1] = 1.0
    return betas


def refinement_steps(num_steps: int, steps: int | None) -> list[int]:
    """The schedule indices visited at sampling, from ``num_steps - 1`` down to 0; ``steps``
    fewer than ``num_steps`` visits an evenly strided subset (always both ends)."""
    steps = num_steps if steps is None else steps
    if not 1 <= steps <= num_steps:
        raise ValueError(f"steps must be in 1..{num_steps} (model.num_steps), got {steps}")
    if steps == 1:
        return [num_steps - 1]
    grid = torch.linspace(num_steps - 1, 0, steps).round().long()
    return [int(t) for t in grid]
