"""The two encoders of IMF: dense multi-scale features E_F and the latent token E_T."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from imf.model.blocks import block_classes, make_norm
from imf.model.stylegan import EqualConv2d, EqualLinear, ResBlockDown, ScaledLeakyReLU

TOKEN_ENCODER_LAYOUTS = ("paper", "johndpope")


class DenseFeatureEncoder(nn.Module):
    """E_F: ``f_r = E_F(x_r)``, multi-scale features of the reference frame (IMF sec. 3.2).

    A 7x7 stem, ``hidden_blocks`` DownConvResBlocks whose outputs are not returned (the paper
    has one, 64 channels, 256 -> 128 px), then one DownConvResBlock per returned level. With the
    paper setting (stem 64, hidden 1, channels 128/256/512/512) a 256 px frame gives
    f1 128@64^2, f2 256@32^2, f3 512@16^2, f4 512@8^2. ``block_style`` picks the paper's
    residual blocks or the reimplementation's (see :mod:`imf.model.blocks`).
    """

    def __init__(
        self,
        channels: Sequence[int],
        stem_channels: int = 64,
        hidden_blocks: int = 1,
        norm: str = "batch",
        res_blocks: int = 2,
        block_style: str = "paper",
    ):
        super().__init__()
        _, down_block, _ = block_classes(block_style)
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_channels, 7, padding=3), make_norm(norm, stem_channels), nn.ReLU()
        )
        hidden = [
            down_block(stem_channels, stem_channels, norm, res_blocks) for _ in range(hidden_blocks)
        ]
        self.hidden = nn.Sequential(*hidden)
        widths = [stem_channels, *channels]
        self.levels = nn.ModuleList(
            down_block(a, b, norm, res_blocks) for a, b in zip(widths[:-1], widths[1:])
        )
        self.stride = 2 ** (hidden_blocks + 1)  # of the finest returned level

    def forward(self, x: Tensor) -> list[Tensor]:
        """``[B, 3, H, W]`` -> features fine to coarse, level l at ``H / (stride * 2^(l-1))``."""
        h = self.hidden(self.stem(x))
        features = []
        for level in self.levels:
            h = level(h)
            features.append(h)
        return features


class LatentTokenEncoder(nn.Module):
    """E_T: ``t = E_T(x)``, one ``token_dim`` vector per frame (IMF sec. 3.2; LIA's EncoderApp).

    A conv stem, residual blocks halving the resolution down to 4x4, a 4x4 valid conv to 1x1
    (the paper; the public reimplementation uses global average pooling instead), then an MLP
    of ``mlp_layers`` linear layers and a final projection to ``token_dim`` (LIA's fc stack has
    no activations between its linear layers; ``mlp_activation`` adds them).

    ``layout="johndpope"`` is the public reimplementation's E_T, kept so its checkpoints import:
    a plain 3x3 conv stem with LeakyReLU(0.2), LIA ResBlocks that down-sample with the
    [1, 3, 3, 1] blur and a stride-2 conv, a 3x3 EqualConv2d followed by global average
    pooling, and LeakyReLU(0.2) after each of the MLP's EqualLinears.
    """

    def __init__(
        self,
        image_size: int,
        channels: Sequence[int],
        token_dim: int = 32,
        mlp_layers: int = 4,
        mlp_activation: bool = False,
        layout: str = "paper",
    ):
        super().__init__()
        if layout not in TOKEN_ENCODER_LAYOUTS:
            raise ValueError(f"layout must be one of {TOKEN_ENCODER_LAYOUTS}, got {layout!r}")
        blocks = image_size.bit_length() - 3  # log2(image_size / 4)
        if image_size < 8 or image_size & (image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
        widths = [channels[min(i, len(channels) - 1)] for i in range(blocks + 1)]
        blur = layout == "johndpope"
        self.blocks = nn.Sequential(
            *(ResBlockDown(a, b, blur) for a, b in zip(widths[:-1], widths[1:]))
        )
        width = widths[-1]
        if layout == "paper":
            self.stem = nn.Sequential(
                EqualConv2d(3, widths[0], 3, padding=1, bias=False), ScaledLeakyReLU(widths[0])
            )
            self.to_vector = nn.Sequential(
                EqualConv2d(width, width, 4, bias=False), ScaledLeakyReLU(width)
            )
            hidden = [
                EqualLinear(width, width, activation=mlp_activation) for _ in range(mlp_layers)
            ]
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1), nn.LeakyReLU(0.2))
            self.to_vector = nn.Sequential(
                EqualConv2d(width, width, 3, padding=1), nn.AdaptiveAvgPool2d(1)
            )
            hidden = [
                layer
                for _ in range(mlp_layers)
                for layer in (EqualLinear(width, width), nn.LeakyReLU(0.2))
            ]
        self.mlp = nn.Sequential(*hidden, EqualLinear(width, token_dim))

    def forward(self, x: Tensor) -> Tensor:
        h = self.to_vector(self.blocks(self.stem(x)))
        if h.shape[-2:] != (1, 1):
            raise ValueError(
                f"latent token encoder expected {4 * 2 ** (len(self.blocks))} px frames, got "
                f"{x.shape[-1]} px; build the model with model.generator.image_size={x.shape[-1]}"
            )
        return self.mlp(h.flatten(1))
