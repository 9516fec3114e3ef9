"""D_F: the frame decoder, aligned features -> RGB frame (IMF sec. 3.2, supp. Fig. 1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from imf.model.blocks import block_classes


class FrameDecoder(nn.Module):
    """U-Net-style up path over the aligned features ``f_c`` (fine to coarse).

    ``x = Up(f_c^L)``; for each finer level ``x = Up(cat(x, FeatRes^3(f_c^l)))``; then
    ``extra_up`` more UpConvResBlocks (halving the width) back to the frame resolution and a
    3x3 conv with a sigmoid. Paper (256 px): 512->512 (8->16), 1024->512 (->32),
    768->256 (->64), 384->128 (->128), 128->64 (->256), conv 64->3.
    Returns images in [-1, 1] (the sigmoid output mapped linearly). ``block_style`` picks the
    paper's residual blocks or the reimplementation's (see :mod:`imf.model.blocks`).
    """

    def __init__(
        self,
        channels: Sequence[int],
        extra_up: int = 1,
        refine_blocks: int = 3,
        norm: str = "batch",
        res_blocks: int = 2,
        block_style: str = "paper",
    ):
        super().__init__()
        feat_block, _, up_block = block_classes(block_style)
        channels = list(channels)
        self.first = up_block(channels[-1], channels[-1], norm, res_blocks)
        self.refine, self.up = nn.ModuleList(), nn.ModuleList()
        previous = channels[-1]
        for width in channels[-2::-1]:
            self.refine.append(
                nn.Sequential(*(feat_block(width, norm) for _ in range(refine_blocks)))
            )
            self.up.append(up_block(previous + width, width, norm, res_blocks))
            previous = width
        tail = []
        for _ in range(extra_up):
            tail.append(up_block(previous, max(previous // 2, 16), norm, res_blocks))
            previous = max(previous // 2, 16)
        self.tail = nn.Sequential(*tail)
        self.to_rgb = nn.Conv2d(previous, 3, 3, padding=1)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = self.first(features[-1])
        for refine, up, skip in zip(self.refine, self.up, features[-2::-1]):
            x = up(torch.cat([x, refine(skip)], dim=1))
        return torch.sigmoid(self.to_rgb(self.tail(x))) * 2 - 1
