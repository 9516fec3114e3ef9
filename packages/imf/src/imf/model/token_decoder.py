"""IMF_D: the latent token decoder, token -> multi-scale motion features (IMF sec. 3.2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from imf.model.stylegan import StyledConv


class LatentTokenDecoder(nn.Module):
    """StyleGAN2-style synthesis trunk driven by the token: ``m^l = IMF_D(t)^l``.

    A learned constant at half the coarsest motion resolution, one StyledConv, then per level
    (coarse to fine) an up-sampling StyledConv and a StyledConv on the trunk, and a side-branch
    StyledConv that emits ``m^l`` while the trunk continues from the pre-branch features (the
    paper's branching; the public reimplementation chains the branch into the trunk). Every
    conv is modulated and demodulated by the token; no noise is injected.

    ``layout="johndpope"`` is the public reimplementation's IMF_D, kept so its checkpoints
    import: the branch conv is chained into the trunk (the trunk continues from ``m^l``) and the
    up-sampling convs use StyleGAN2's transposed conv + blur.

    Args:
        channels: motion channels per level, fine to coarse (paper 256, 512, 512, 512).
        coarsest_size: spatial size of the coarsest level (paper 8 for 256 px frames).
    """

    def __init__(
        self,
        channels: Sequence[int],
        coarsest_size: int,
        token_dim: int = 32,
        const_channels: int = 32,
        layout: str = "paper",
    ):
        super().__init__()
        if layout not in ("paper", "johndpope"):
            raise ValueError(f"layout must be 'paper' or 'johndpope', got {layout!r}")
        self.chained = layout == "johndpope"
        upsample_mode = "transposed" if self.chained else "bilinear"
        if coarsest_size < 2 or coarsest_size % 2:
            raise ValueError(f"coarsest motion size must be even and >= 2, got {coarsest_size}")
        coarse_to_fine = list(channels)[::-1]
        self.const = nn.Parameter(
            torch.randn(1, const_channels, coarsest_size // 2, coarsest_size // 2)
        )
        self.first = StyledConv(const_channels, coarse_to_fine[0], token_dim)
        self.up, self.trunk, self.taps = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        previous = coarse_to_fine[0]
        for width in coarse_to_fine:
            self.up.append(StyledConv(previous, width, token_dim, True, upsample_mode))
            self.trunk.append(StyledConv(width, width, token_dim))
            self.taps.append(StyledConv(width, width, token_dim))
            previous = width

    def forward(self, token: Tensor) -> list[Tensor]:
        """``[B, token_dim]`` -> motion features fine to coarse."""
        # repeat, not expand: a view of a parameter made under no_grad has requires_grad but
        # no grad_fn, which module hooks (FlopCounterMode's tracker) reject.
        h = self.first(self.const.repeat(token.shape[0], 1, 1, 1), token)
        motion = []
        for up, trunk, tap in zip(self.up, self.trunk, self.taps):
            h = trunk(up(h, token), token)
            m = tap(h, token)
            if self.chained:
                h = m
            motion.append(m)
        return motion[::-1]
