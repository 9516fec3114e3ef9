"""The two encoders of IMF: dense multi-scale features E_F and the latent token E_T."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from imf.model.blocks import DownConvResBlock, make_norm
from imf.model.stylegan import EqualConv2d, EqualLinear, ResBlockDown, ScaledLeakyReLU


class DenseFeatureEncoder(nn.Module):
    """E_F: ``f_r = E_F(x_r)``, multi-scale features of the reference frame (IMF sec. 3.2).

    A 7x7 stem, ``hidden_blocks`` DownConvResBlocks whose outputs are not returned (the paper
    has one, 64 channels, 256 -> 128 px), then one DownConvResBlock per returned level. With the
    paper setting (stem 64, hidden 1, channels 128/256/512/512) a 256 px frame gives
    f1 128@64^2, f2 256@32^2, f3 512@16^2, f4 512@8^2.
    """

    def __init__(
        self,
        channels: Sequence[int],
        stem_channels: int = 64,
        hidden_blocks: int = 1,
        norm: str = "batch",
        res_blocks: int = 2,
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_channels, 7, padding=3), make_norm(norm, stem_channels), nn.ReLU()
        )
        hidden = [
            DownConvResBlock(stem_channels, stem_channels, norm, res_blocks)
            for _ in range(hidden_blocks)
        ]
        self.hidden = nn.Sequential(*hidden)
        widths = [stem_channels, *channels]
        self.levels = nn.ModuleList(
            DownConvResBlock(a, b, norm, res_blocks) for a, b in zip(widths[:-1], widths[1:])
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
    """

    def __init__(
        self,
        image_size: int,
        channels: Sequence[int],
        token_dim: int = 32,
        mlp_layers: int = 4,
        mlp_activation: bool = False,
    ):
        super().__init__()
        blocks = image_size.bit_length() - 3  # log2(image_size / 4)
        if image_size < 8 or image_size & (image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
        widths = [channels[min(i, len(channels) - 1)] for i in range(blocks + 1)]
        self.stem = nn.Sequential(
            EqualConv2d(3, widths[0], 3, padding=1, bias=False), ScaledLeakyReLU(widths[0])
        )
        self.blocks = nn.Sequential(*(ResBlockDown(a, b) for a, b in zip(widths[:-1], widths[1:])))
        self.to_vector = nn.Sequential(
            EqualConv2d(widths[-1], widths[-1], 4, bias=False), ScaledLeakyReLU(widths[-1])
        )
        self.mlp = nn.Sequential(
            *(
                EqualLinear(widths[-1], widths[-1], activation=mlp_activation)
                for _ in range(mlp_layers)
            ),
            EqualLinear(widths[-1], token_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.to_vector(self.blocks(self.stem(x)))
        if h.shape[-2:] != (1, 1):
            raise ValueError(
                f"latent token encoder expected {4 * 2 ** (len(self.blocks))} px frames, got "
                f"{x.shape[-1]} px; build the model with model.generator.image_size={x.shape[-1]}"
            )
        return self.mlp(h.flatten(1))
