"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data", sec. 3) with kornia's differentiable augmentations.

Not part of the IMF paper (the author trained without it, reference imf.md); off by default
in the paper config and a switch (``model.ada.enabled``) everywhere.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import Tensor, nn


class AdaptiveAugment(nn.Module):
    """Augments every image the discriminator sees with probability ``p`` per transform, and
    moves ``p`` toward the overfitting target.

    The overfitting heuristic is ``r_t = E[sign(D(x_real))]`` (ADA eq. in sec. 3.1), averaged
    over all patch logits of all scales since the last update. Every ``interval`` D steps
    ``p <- clip(p + sign(r_t - target) * batch * interval / (speed_kimg * 1000), 0, p_max)``:
    ``p`` rises while D is over-confident on real data and falls once it is not, so it can go
    both ways (the public reimplementation's statistic was always 1, so its ``p`` only rose).
    ``p``, and the running sign statistics, are buffers: they are checkpointed and resume.
    """

    def __init__(
        self,
        enabled: bool = True,
        target: float = 0.6,
        speed_kimg: float = 500.0,
        interval: int = 4,
        p_init: float = 0.0,
        p_max: float = 1.0,
        translate: float = 0.125,
        degrees: float = 10.0,
        scale: float = 0.1,
        color: float = 0.2,
        cutout: float = 0.25,
    ):
        super().__init__()
        if interval < 1 or speed_kimg <= 0 or not 0 <= p_init <= p_max <= 1:
            raise ValueError(
                "ada needs interval >= 1, speed_kimg > 0 and 0 <= p_init <= p_max <= 1"
            )
        self.enabled, self.target, self.speed_kimg = enabled, target, speed_kimg
        self.interval, self.p_max = interval, p_max
        self.register_buffer("p", torch.tensor(float(p_init)))
        self.register_buffer("sign_sum", torch.tensor(0.0))
        self.register_buffer("sign_count", torch.tensor(0.0))
        self.register_buffer("steps", torch.tensor(0))
        self.transforms = nn.ModuleList(
            [
                K.RandomHorizontalFlip(),
                K.RandomAffine(
                    degrees=degrees,
                    translate=(translate, translate),
                    scale=(1 - scale, 1 + scale),
                    padding_mode="reflection",
                ),
                K.ColorJiggle(brightness=color, contrast=color, saturation=color),
                K.RandomErasing(scale=(cutout**2, cutout**2), ratio=(1.0, 1.0), value=0.5),
            ]
        )

    def forward(self, images: Tensor) -> Tensor:
        """Augment ``[B, 3, H, W]`` images in [-1, 1]; differentiable w.r.t. the images."""
        p = float(self.p)
        if not self.enabled or p <= 0:
            return images
        x = (images + 1) / 2
        for transform in self.transforms:
            transform.p = p
            x = transform(x)
        return x.clamp(0, 1) * 2 - 1

    @torch.no_grad()
    def accumulate(self, real_logits: list[Tensor]) -> None:
        """Add the signs of the discriminator's logits on real images to the running ``r_t``."""
        for logits in real_logits:
            self.sign_sum += logits.detach().float().sign().sum()
            self.sign_count += logits.numel()

    @torch.no_grad()
    def step(self, batch_size: int, reduce=None) -> float | None:
        """Count one D step; every ``interval`` steps update ``p`` and return ``r_t``.

        ``reduce`` sums a tensor over DDP ranks (e.g. ``strategy.reduce(t, reduce_op="sum")``)
        so every rank computes the same ``r_t`` and keeps the same ``p``; ``batch_size`` is
        the global batch.
        """
        self.steps += 1
        if not self.enabled or int(self.steps) % self.interval:
            return None
        stats = torch.stack([self.sign_sum, self.sign_count])
        if reduce is not None:
            stats = reduce(stats)
        r_t = float(stats[0] / stats[1].clamp_min(1))
        adjust = batch_size * self.interval / (self.speed_kimg * 1000)
        direction = float(r_t > self.target) - float(r_t < self.target)
        self.p.copy_((self.p + direction * adjust).clamp(0.0, self.p_max))
        self.sign_sum.zero_()
        self.sign_count.zero_()
        return r_t
