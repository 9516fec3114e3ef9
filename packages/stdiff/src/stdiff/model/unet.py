"""``UNet2DMotionCond``: a stock diffusers ``UNet2DModel`` with SPADE motion conditioning.

Upstream forks diffusers 0.15 to add ``m_feat`` to every ResNet block (reference stdiff.md,
"Image UNet"). Here the stock model is built unchanged and each ResNet block's ``conv1`` is wrapped
by :class:`SpadeConv`, which applies the motion modulation right after it:
``h = IN(conv1(x)) * (1 + gamma(m)) + beta(m)`` (Park et al. 2019, SPADE, eq. 1), before diffusers
adds the time embedding, exactly where the fork inserts it. Attention stays diffusers' own
``Attention`` with its SDPA processor, so no 8192 x 8192 score matrix is materialised.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager

import torch.nn.functional as F
import torch.utils.checkpoint
from diffusers import UNet2DModel
from diffusers.models.resnet import ResnetBlock2D
from torch import Tensor, nn

# The fork's extra argument; everything else goes to diffusers' UNet2DModel unchanged.
MOTION_KEYS = ("m_channels",)


class MotionCondModule(nn.Module):
    """SPADE head: shared 3x3 conv + ReLU on the motion map, then 3x3 heads for gamma and beta."""

    def __init__(self, motion_channels: int, out_channels: int):
        super().__init__()
        hidden = (motion_channels + out_channels) // 2
        self.shared = nn.Sequential(nn.Conv2d(motion_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, out_channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, out_channels, 3, padding=1)

    def forward(self, m: Tensor) -> tuple[Tensor, Tensor]:
        """``m``: the motion map already resized (nearest) to the block's resolution."""
        a = self.shared(m)
        return self.gamma(a), self.beta(a)


class _MotionState:
    """What the wrapped blocks read during one forward: the motion map, the map resized per
    block resolution, and an optional gamma/beta cache."""

    def __init__(self) -> None:
        self.feat: Tensor | None = None
        self.resized: dict[tuple, Tensor] = {}
        self.cache: dict[int, tuple[Tensor, Tensor]] | None = None

    def set_feat(self, feat: Tensor | None) -> None:
        self.feat, self.resized = feat, {}

    def feat_like(self, h: Tensor) -> Tensor:
        """The motion map at ``h``'s size, dtype and memory format. The 27 SPADE heads share
        five resolutions, so each resize is done once per forward; keeping ``h``'s channels-last
        layout spares oneDNN a reorder of every head's input (the bf16 profile showed these
        reorders and the repeated resizes at about 20% of a 64 x 512 forward)."""
        cl = h.is_contiguous(memory_format=torch.channels_last)
        key = (tuple(h.shape[-2:]), h.dtype, cl)
        if key not in self.resized:
            m = self.feat.to(h.dtype)
            if cl:
                m = m.contiguous(memory_format=torch.channels_last)
            self.resized[key] = F.interpolate(m, size=key[0], mode="nearest")
        return self.resized[key]


class SpadeConv(nn.Module):
    """Wraps a ResNet block's ``conv1``: ``IN(conv1(x)) * (1 + gamma) + beta`` from the motion map."""

    def __init__(self, conv: nn.Conv2d, motion_channels: int, state: _MotionState, key: int):
        super().__init__()
        self.conv = conv
        self.spade = MotionCondModule(motion_channels, conv.out_channels)
        self._state = state
        self._key = key

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(x)
        st = self._state
        if st.feat is None:
            raise RuntimeError("UNet2DMotionCond called without m_feat (the motion feature map)")
        if st.cache is not None and self._key in st.cache:
            gamma, beta = st.cache[self._key]
        else:
            if st.feat.shape[0] != h.shape[0]:
                raise ValueError(f"m_feat batch {st.feat.shape[0]} != sample batch {h.shape[0]}")
            gamma, beta = self.spade(st.feat_like(h))
            if st.cache is not None:
                st.cache[self._key] = (gamma, beta)
        # instance norm as one group per channel: the same statistics, but group_norm keeps a
        # channels-last input channels-last where instance_norm copies it to NCHW and back
        h = F.group_norm(h, h.shape[1])
        return torch.addcmul(beta.to(h.dtype), h, 1 + gamma.to(h.dtype))


def _head_dims(cfg: dict) -> list[int | None]:
    """Upstream gives one head dimension per down block ([null, 128, ...], null for blocks without
    attention) or one value for all; the up blocks use the reversed list and the mid block the
    last entry, as in the fork."""
    default = inspect.signature(UNet2DModel.__init__).parameters["down_block_types"].default
    n = len(cfg.get("down_block_types") or default)
    value = cfg.get("attention_head_dim", 8)
    if not isinstance(value, list | tuple):
        return [value] * n
    if len(value) != n:
        raise ValueError(
            f"attention_head_dim={list(value)} has {len(value)} entries for {n} down blocks; give "
            "one per block (null where a block has no attention) or a single value"
        )
    return list(value)


def _set_heads(attn: nn.Module, head_dim: int | None) -> None:
    """Re-split an attention layer into ``channels // head_dim`` heads (one head for null).
    Only the head count and the score scale depend on it; the projection weights do not."""
    channels = attn.inner_dim
    dim = channels if head_dim is None else head_dim
    if channels % dim:
        raise ValueError(f"attention_head_dim={head_dim} does not divide {channels} channels")
    attn.heads = channels // dim
    attn.scale = dim**-0.5


class UNet2DMotionCond(nn.Module):
    """Denoiser ``eps(x_t, t, m_feat)`` built from ``STDiff.Diffusion.unet_config``.

    The config keys are diffusers' ``UNet2DModel`` arguments plus ``m_channels`` (the motion
    feature depth); ``attention_head_dim`` may be one value per down block as in the fork. All 27
    ResNet blocks of the 64 px config get a :class:`MotionCondModule`.
    """

    def __init__(self, **unet_config):
        super().__init__()
        cfg = dict(unet_config)
        m_channels = cfg.pop("m_channels")
        head_dims = _head_dims(cfg)
        cfg["attention_head_dim"] = next((d for d in head_dims if d is not None), None)
        for key in ("sample_size", "block_out_channels", "down_block_types", "up_block_types"):
            if isinstance(cfg.get(key), list):
                cfg[key] = tuple(cfg[key])
        try:
            self.unet = UNet2DModel(**cfg)
        except TypeError as e:
            raise ValueError(f"STDiff.Diffusion.unet_config: {e}") from e
        u = self.unet
        for blocks, dims in ((u.down_blocks, head_dims), (u.up_blocks, head_dims[::-1])):
            for block, dim in zip(blocks, dims, strict=True):
                for attn in getattr(block, "attentions", ()):
                    _set_heads(attn, dim)
        for attn in u.mid_block.attentions:
            if attn is not None:
                _set_heads(attn, head_dims[-1])
        self.m_channels = m_channels
        self._state = _MotionState()
        blocks = [m for m in self.unet.modules() if isinstance(m, ResnetBlock2D)]
        for i, block in enumerate(blocks):
            block.conv1 = SpadeConv(block.conv1, m_channels, self._state, i)
        self.num_motion_blocks = len(blocks)

    @property
    def in_channels(self) -> int:
        return self.unet.config.in_channels

    @contextmanager
    def reuse_motion(self):
        """Inside this block gamma/beta are computed once and reused: valid while m_feat is the
        same for every call (the denoising steps of one frame)."""
        self._state.cache = {}
        try:
            yield
        finally:
            self._state.cache = None

    @contextmanager
    def channels_last(self, enable: bool = True):
        """Inside this block the weights (and so every activation) are channels-last: oneDNN's
        CPU convolutions then skip the reorder of each NCHW input and output, which the
        profile of a bf16 64 x 512 forward showed as the largest cost (``aten::copy_``, more
        than the convolutions themselves). On exit the weights get back the layout they had
        (NCHW, or channels-last when the module trains that way)."""
        was_channels_last = self.unet.conv_out.weight.is_contiguous(  # conv_in may have C=1
            memory_format=torch.channels_last
        )
        if not enable or was_channels_last:
            yield
            return
        self.to(memory_format=torch.channels_last)
        try:
            yield
        finally:
            self.to(memory_format=torch.contiguous_format)

    def enable_gradient_checkpointing(self, enable: bool = True) -> None:
        """Recompute each ResNet block in backward instead of storing its activations
        (diffusers' block-level checkpointing, non-reentrant). The SPADE heads read the motion
        map from shared state, which is cleared after the forward, so every checkpointed call
        captures it and restores it while it is recomputed."""
        if not enable:
            self.unet.disable_gradient_checkpointing()
            return
        state = self._state

        def checkpointed(module, *args):
            feat = state.feat

            def run(*inputs):
                saved = state.feat, state.resized
                state.set_feat(feat)
                try:
                    return module(*inputs)
                finally:
                    state.feat, state.resized = saved

            return torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=False)

        self.unet.enable_gradient_checkpointing(checkpointed)

    def forward(self, sample: Tensor, timestep: Tensor, m_feat: Tensor) -> Tensor:
        if m_feat.ndim != 4 or m_feat.shape[1] != self.m_channels:
            raise ValueError(
                f"m_feat must be [B, {self.m_channels}, h, w], got {tuple(m_feat.shape)}"
            )
        self._state.set_feat(m_feat)
        try:
            return self.unet(sample, timestep).sample
        finally:
            self._state.set_feat(None)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
