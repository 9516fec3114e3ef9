"""Optional extra guidance losses for ``model.extra_loss`` (the training loop's loss hook).

A hook is any callable ``(x0_pred [B, F, C, h, w], x0 [B, F, C, h, w], batch) -> scalar``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class PoseRegionL1:
    """``weight * sum(m |x0_pred - x0|) / sum(m)`` with ``m = 1 - background heatmap``: an L1
    on the x0 estimate where the pose guidance says the body is (needs ``pose`` guidance)."""

    def __init__(self, weight: float = 0.1):
        self.weight = weight

    def __call__(self, x0_pred: torch.Tensor, x0: torch.Tensor, batch: dict) -> torch.Tensor:
        if "pose" not in batch["guidance"]:
            raise KeyError("PoseRegionL1 needs 'pose' in guidance_types")
        body = 1 - batch["guidance"]["pose"][:, :, -1:]
        b, f = body.shape[:2]
        mask = F.interpolate(body.flatten(0, 1), size=x0.shape[-2:], mode="area").view(
            b, f, 1, *x0.shape[-2:]
        )
        err = (mask * (x0_pred - x0).abs()).sum() / (mask.sum() * x0.shape[2]).clamp(min=1e-6)
        return self.weight * err
