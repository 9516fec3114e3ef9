"""The IMF generator: ``x_hat_c = D_F(IMF_A(IMF_D(t_c), IMF_D(t_r), E_F(x_r)))`` (IMF eq. 1-3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from imf.model.alignment import ImplicitMotionAlignment
from imf.model.encoders import DenseFeatureEncoder, LatentTokenEncoder
from imf.model.frame_decoder import FrameDecoder
from imf.model.token_decoder import LatentTokenDecoder

LAYOUTS = ("paper", "johndpope")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class ReferenceCode:
    """What a decoder caches from the reference frame: ``f_r = E_F(x_r)``, ``m_r = IMF_D(t_r)``
    and ``t_r``."""

    features: list[Tensor]
    motion: list[Tensor]
    token: Tensor


class IMFGenerator(nn.Module):
    """Reference frame + current frame -> reconstruction of the current frame.

    Args:
        image_size: frame side in pixels (power of two; 64 quickstart, 256 paper).
        feature_channels: E_F channels per returned level, fine to coarse (paper 128/256/512/512).
        motion_channels: IMF_D channels per level (paper 256/512/512/512).
        stem_channels / hidden_blocks: E_F stem width and number of unreturned down blocks
            (paper 64 / 1: the finest level is at 1/4 of the frame).
        token_channels: E_T widths of its residual blocks (the last one repeats).
        token_dim: d_m, the size of a frame's latent token (paper 32).
        depth / heads / mlp_dim: IMF_A transformer blocks per scale.
        norm: normalisation of E_F and D_F (paper: batch).
        res_blocks: FeatResBlocks inside every up/down residual block of E_F and D_F (paper 2).
        fused_attention: SDPA flash path in IMF_A (False: plain softmax(QK^T)V, for checks).
        layout: ``paper`` (default) or ``johndpope``, the public reimplementation's E_F/D_F
            blocks, E_T and IMF_D (see their docstrings); ``johndpope`` also feeds the encoders
            ImageNet-normalised pixels as that code does. Only ``imf-import`` needs it.
    """

    def __init__(
        self,
        image_size: int = 256,
        feature_channels: Sequence[int] = (128, 256, 512, 512),
        motion_channels: Sequence[int] = (256, 512, 512, 512),
        stem_channels: int = 64,
        hidden_blocks: int = 1,
        token_channels: Sequence[int] = (64, 128, 256, 512),
        token_dim: int = 32,
        token_mlp_layers: int = 4,
        const_channels: int = 32,
        depth: int = 4,
        heads: int = 8,
        mlp_dim: int = 1024,
        decoder_refine_blocks: int = 3,
        norm: str = "batch",
        res_blocks: int = 2,
        fused_attention: bool = True,
        layout: str = "paper",
    ):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.layout = layout
        if len(feature_channels) != len(motion_channels):
            raise ValueError(
                f"feature_channels {list(feature_channels)} and motion_channels "
                f"{list(motion_channels)} need one entry per level"
            )
        levels = len(feature_channels)
        self.image_size, self.token_dim = image_size, token_dim
        self.feature_encoder = DenseFeatureEncoder(
            feature_channels, stem_channels, hidden_blocks, norm, res_blocks, block_style=layout
        )
        stride = self.feature_encoder.stride
        sizes = [image_size // (stride * 2**level) for level in range(levels)]
        if sizes[-1] < 2:
            raise ValueError(
                f"{levels} levels below stride {stride} leave a {sizes[-1]} px coarsest map at "
                f"{image_size} px; use fewer levels or a larger image_size"
            )
        self.token_encoder = LatentTokenEncoder(
            image_size, token_channels, token_dim, token_mlp_layers, layout=layout
        )
        self.token_decoder = LatentTokenDecoder(
            motion_channels, sizes[-1], token_dim, const_channels, layout
        )
        self.alignment = nn.ModuleList(
            ImplicitMotionAlignment(m, f, s, depth, heads, mlp_dim, fused_attention)
            for m, f, s in zip(motion_channels, feature_channels, sizes)
        )
        extra_up = stride.bit_length() - 2  # log2(stride) - 1
        self.frame_decoder = FrameDecoder(
            feature_channels, extra_up, decoder_refine_blocks, norm, res_blocks, layout
        )

    def _check(self, frames: Tensor) -> None:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"expected frames [B, 3, H, W] in [-1, 1], got {tuple(frames.shape)}")
        if frames.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"model built for {self.image_size} px frames, got {tuple(frames.shape[-2:])}; "
                f"resize the data (data.image_size) or set model.generator.image_size"
            )

    def _encoder_input(self, frames: Tensor) -> Tensor:
        if self.layout == "paper":
            return frames
        mean = frames.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = frames.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return ((frames + 1) / 2 - mean) / std

    def encode_tokens(self, frames: Tensor) -> Tensor:
        """``t = E_T(x)``: ``[B, 3, H, W] -> [B, token_dim]``, the per-frame code."""
        self._check(frames)
        return self.token_encoder(self._encoder_input(frames))

    def encode_reference(self, reference: Tensor) -> ReferenceCode:
        """Everything the decoder needs from the reference frame, computed once per clip."""
        self._check(reference)
        x = self._encoder_input(reference)
        token = self.token_encoder(x)
        return ReferenceCode(self.feature_encoder(x), self.token_decoder(token), token)

    def decode(self, reference: ReferenceCode, tokens: Tensor) -> Tensor:
        """Reconstruct frames from current tokens ``[B, token_dim]`` and a cached reference
        (batch 1 references are broadcast over the tokens)."""
        batch = tokens.shape[0]
        motion_current = self.token_decoder(tokens)
        aligned = []
        for align, m_c, m_r, f_r in zip(
            self.alignment, motion_current, reference.motion, reference.features
        ):
            if m_r.shape[0] != batch:
                m_r, f_r = m_r.expand(batch, -1, -1, -1), f_r.expand(batch, -1, -1, -1)
            aligned.append(align(m_c, m_r, f_r))
        return self.frame_decoder(aligned)

    def forward(self, current: Tensor, reference: Tensor) -> Tensor:
        """``x_hat_c`` in [-1, 1] from current and reference frames in [-1, 1]."""
        self._check(current)
        return self.decode(self.encode_reference(reference), self.encode_tokens(current))
