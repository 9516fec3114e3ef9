"""``STDiffModel``: temporal dynamics (motion encoder + ConvGRU + SDE) and the motion-conditioned
diffusion UNet, configured with upstream's key names (``STDiff.Diffusion.unet_config``,
``STDiff.DiffNet``)."""

from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stdiff.model.motion import TemporalDynamics
from stdiff.model.unet import UNet2DMotionCond
from stdiff.schema import stdiff_config


def _size(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _resize(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """Bicubic resize of [..., C, H, W] with antialiasing (torchvision ``Resize`` on tensors,
    which upstream uses)."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    lead = frames.shape[:-3]
    x = F.interpolate(frames.flatten(0, -4), size=size, mode="bicubic", antialias=True)
    return x.unflatten(0, lead)


def _with_channels(stdiff: dict, channels: int | None) -> dict:
    """Fill the frame-channel keys (UNet in/out, motion encoder input) from ``channels``.

    Keys left out of the config follow the data; keys given must agree with it.
    """
    net = dict(stdiff["DiffNet"])
    me = dict(net.get("MotionEncoder", {}))
    unet = dict(stdiff["Diffusion"]["unet_config"])
    c = channels if channels is not None else me.get("in_channels")
    if c is None:
        raise ValueError(
            "the number of frame channels is unknown: set data.channels (the model follows it) "
            "or STDiff.DiffNet.MotionEncoder.in_channels"
        )
    if int(c) < 1:
        raise ValueError(f"data.channels={c}; frames need at least 1 channel")
    autoreg = net.get("autoregressive", True)
    want = {
        "DiffNet.MotionEncoder.in_channels": (me, "in_channels", c),
        "Diffusion.unet_config.in_channels": (unet, "in_channels", 2 * c if autoreg else c),
        "Diffusion.unet_config.out_channels": (unet, "out_channels", c),
    }
    for name, (d, key, value) in want.items():
        if d.get(key) is not None and d[key] != value:
            raise ValueError(
                f"the data has {c}-channel frames but STDiff.{name}={d[key]} (needs {value}); "
                f"drop that key (it follows data.channels) or set data.channels to the model's"
            )
        d[key] = value
    net["MotionEncoder"] = me
    return {"Diffusion": {"unet_config": unet}, "DiffNet": net}


class STDiffModel(nn.Module):
    """Args:
    STDiff: ``{"Diffusion": {"unet_config": {...}}, "DiffNet": {...}}`` as in upstream configs.
    channels: channels of the frames (``data.channels``); the UNet's in/out channels and the
        motion encoder's input follow it where the config leaves them out.
    """

    def __init__(self, STDiff: dict, channels: int | None = None):
        super().__init__()
        checked = stdiff_config(STDiff)
        STDiff = _with_channels(dataclasses.asdict(checked), channels)
        self.cfg = stdiff_config(STDiff).DiffNet
        unet_cfg = dict(STDiff["Diffusion"]["unet_config"])
        # the complete config (defaults filled in), what save_pretrained writes
        self.config = {
            "Diffusion": {"unet_config": copy.deepcopy(unet_cfg)},
            "DiffNet": dataclasses.asdict(self.cfg),
        }
        self.tde = TemporalDynamics(self.cfg)
        self.unet = UNet2DMotionCond(**unet_cfg)
        c = self.cfg.MotionEncoder.in_channels
        expected = 2 * c if self.cfg.autoregressive else c
        if self.unet.in_channels != expected or self.unet.unet.config.out_channels != c:
            raise ValueError(
                f"unet_config in/out channels {self.unet.in_channels}/"
                f"{self.unet.unet.config.out_channels} do not fit {c}-channel frames with "
                f"autoregressive={self.cfg.autoregressive}: use in_channels={expected}, "
                f"out_channels={c}"
            )
        if self.unet.m_channels != self.tde.channels:
            raise ValueError(
                f"unet_config.m_channels={self.unet.m_channels} but the motion encoder gives "
                f"{self.tde.channels} (model_channels * 2**n_downs)"
            )
        self.channels = c
        self.motion_size = tuple(_size(self.cfg.MotionEncoder.image_size))
        self.image_size = tuple(_size(unet_cfg.get("sample_size") or self.motion_size))

    # ---- conditioning ----------------------------------------------------------------------
    @property
    def super_res(self) -> bool:
        """Super-resolution branch: motion from small observed frames, UNet at ``sample_size``."""
        return self.cfg.super_res_training and self.motion_size != self.image_size

    def motion_input(self, vo: Tensor) -> Tensor:
        """Observed frames at the motion encoder's resolution (lower in super-res training)."""
        return _resize(vo, self.motion_size)

    def first_prev(self, vo: Tensor) -> Tensor:
        """Previous-frame condition of the first target: the last observed frame, in the
        super-res branch the small one upsampled (upstream ``up_sample(Vo[:, -1])``)."""
        if not self.super_res:
            return vo[:, -1]
        return _resize(self.motion_input(vo)[:, -1], self.image_size)

    def degrade(self, frames: Tensor) -> Tensor:
        """Previous-frame condition of later targets: in the super-res branch up(down(x))
        (bicubic), in training and sampling alike; the frames themselves otherwise."""
        if not self.super_res:
            return frames
        return _resize(_resize(frames, self.motion_size), self.image_size)

    def motion(
        self, vo: Tensor, idx_o: Tensor, idx_p: Tensor, entropy: int | None = None
    ) -> Tensor:
        """Motion features [B, K, Cm, h, w] at the absolute future times ``idx_p`` [B, K]."""
        m = self.tde.context_encode(self.motion_input(vo), idx_o)
        return self.tde.future_predict(m, idx_p - idx_o[:, -1:], entropy=entropy)

    def denoise(self, x_t: Tensor, t: Tensor, m_feat: Tensor, prev: Tensor | None) -> Tensor:
        """eps prediction for noisy frames [N, C, H, W]; ``prev`` (from :meth:`first_prev` or
        :meth:`degrade`) is clamped to [-1, 1] and concatenated on channels."""
        if self.cfg.autoregressive:
            if prev is None:
                raise ValueError("autoregressive STDiff needs the previous frame")
            x_t = torch.cat([x_t, prev.clamp(-1, 1).to(x_t.dtype)], 1)
        return self.unet(x_t, t, m_feat)

    def forward(
        self,
        vo: Tensor,
        idx_o: Tensor,
        idx_p: Tensor,
        noisy_vp: Tensor,
        t: Tensor,
        clean_vp: Tensor | None = None,
        entropy: int | None = None,
    ) -> Tensor:
        """Training forward (upstream ``STDiffDiffusers.forward``): eps for every target frame.

        ``noisy_vp``/``clean_vp`` are [B, K, C, H, W]; ``t`` is [B * K]; the previous frame of
        target k is the clean target k-1 (teacher forcing), of the first the last observed frame.
        In the super-res branch ``vo`` may come at the motion encoder's size or at the UNet's.
        """
        b, k = noisy_vp.shape[:2]
        m_feat = self.motion(vo, idx_o, idx_p, entropy).flatten(0, 1)
        prev = None
        if self.cfg.autoregressive:
            if clean_vp is None:
                raise ValueError("autoregressive training needs clean_vp (teacher forcing)")
            prev = torch.cat([self.first_prev(vo)[:, None], self.degrade(clean_vp[:, :-1])], 1)
            prev = prev.flatten(0, 1)
        return self.denoise(noisy_vp.flatten(0, 1), t, m_feat, prev).unflatten(0, (b, k))

    # ---- diffusers layout (upstream's STDiffPipeline.save_pretrained) ----------------------
    def save_pretrained(self, path, noise: dict | None = None):
        """Write ``path/{model_index.json, stdiff/, scheduler/}`` (see :mod:`stdiff.pretrained`);
        ``noise`` holds the NoiseSchedule arguments for ``scheduler/``."""
        from stdiff import pretrained

        return pretrained.save_pretrained(path, self.config, self.state_dict(), noise)

    @classmethod
    def from_pretrained(cls, path) -> STDiffModel:
        """Build the model a save_pretrained folder (ours or upstream's) describes, with its
        weights; every weight must be present and upstream keys we do not use are refused."""
        from stdiff import pretrained

        stdiff, state, unmapped, _ = pretrained.load_pretrained(path)
        model = cls(stdiff)
        model.load_pretrained_state(state, unmapped, path)
        return model

    def load_pretrained_state(self, state: dict, unmapped: list[str], where) -> None:
        missing = sorted(set(self.state_dict()) - set(state))
        extra = sorted(set(state) - set(self.state_dict()))
        if missing or extra or unmapped:
            raise ValueError(
                f"{where}: weights do not fit its config (missing {missing[:5]}, unexpected "
                f"{(extra + unmapped)[:5]})"
            )
        self.load_state_dict(state)
