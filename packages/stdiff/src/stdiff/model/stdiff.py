"""``STDiffModel``: temporal dynamics (motion encoder + ConvGRU + SDE) and the motion-conditioned
diffusion UNet, configured with upstream's key names (``STDiff.Diffusion.unet_config``,
``STDiff.DiffNet``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stdiff.model.motion import DiffNetConfig, TemporalDynamics
from stdiff.model.unet import UNet2DMotionCond


def _size(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class STDiffModel(nn.Module):
    """Args:
    STDiff: ``{"Diffusion": {"unet_config": {...}}, "DiffNet": {...}}`` as in upstream configs.
    """

    def __init__(self, STDiff: dict):  # noqa: N803  (upstream's key name)
        super().__init__()
        unknown = sorted(set(STDiff) - {"Diffusion", "DiffNet"})
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in STDiff; valid: ['DiffNet', 'Diffusion']")
        diffusion = dict(STDiff["Diffusion"])
        if set(diffusion) != {"unet_config"}:
            raise ValueError(f"STDiff.Diffusion takes only 'unet_config', got {sorted(diffusion)}")
        self.cfg = DiffNetConfig.from_dict(dict(STDiff["DiffNet"]))
        unet_cfg = dict(diffusion["unet_config"])
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
        self.motion_size = _size(self.cfg.MotionEncoder.image_size)
        self.image_size = _size(unet_cfg.get("sample_size") or self.motion_size)

    # ---- conditioning ----------------------------------------------------------------------
    def motion_input(self, vo: Tensor) -> Tensor:
        """Observed frames at the motion encoder's resolution (lower in super-res training)."""
        if tuple(vo.shape[-2:]) == self.motion_size:
            return vo
        b = vo.shape[0]
        small = F.interpolate(vo.flatten(0, 1), size=self.motion_size, mode="bicubic")
        return small.unflatten(0, (b, -1))

    def degrade(self, frames: Tensor) -> Tensor:
        """Super-resolution mode: the previous-frame condition is up(down(x)) (bicubic)."""
        if not self.cfg.super_res_training:
            return frames
        shape = frames.shape
        x = frames.reshape(-1, *shape[-3:])
        x = F.interpolate(x, size=self.motion_size, mode="bicubic")
        x = F.interpolate(x, size=shape[-2:], mode="bicubic")
        return x.reshape(shape)

    def motion(
        self, vo: Tensor, idx_o: Tensor, idx_p: Tensor, entropy: int | None = None
    ) -> Tensor:
        """Motion features [B, K, Cm, h, w] at the absolute future times ``idx_p`` [B, K]."""
        m = self.tde.context_encode(self.motion_input(vo), idx_o)
        return self.tde.future_predict(m, idx_p - idx_o[:, -1:], entropy=entropy)

    def denoise(self, x_t: Tensor, t: Tensor, m_feat: Tensor, prev: Tensor | None) -> Tensor:
        """eps prediction for noisy frames [N, C, H, W]; ``prev`` is concatenated on channels."""
        if self.cfg.autoregressive:
            if prev is None:
                raise ValueError("autoregressive STDiff needs the previous frame")
            x_t = torch.cat([x_t, self.degrade(prev).clamp(-1, 1).to(x_t.dtype)], 1)
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
        """
        b, k = noisy_vp.shape[:2]
        m_feat = self.motion(vo, idx_o, idx_p, entropy).flatten(0, 1)
        prev = None
        if self.cfg.autoregressive:
            if clean_vp is None:
                raise ValueError("autoregressive training needs clean_vp (teacher forcing)")
            prev = torch.cat([vo[:, -1:], clean_vp[:, :-1]], 1).flatten(0, 1)
        return self.denoise(noisy_vp.flatten(0, 1), t, m_feat, prev).unflatten(0, (b, k))
