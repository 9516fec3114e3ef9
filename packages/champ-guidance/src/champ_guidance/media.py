"""Writing generated clips: mp4 + GIF of the animation and a PNG strip (reference | frames)."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as iio
import numpy as np
import torch

from champ_guidance.data.layout import PIXELFORMAT
from motioncore.media import to_uint8, write_video


def save_animation(stem: Path, frames: torch.Tensor, fps: float) -> list[Path]:
    """``stem.mp4`` and ``stem.gif`` of ``[F, 3, H, W]`` frames."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    video = to_uint8(frames)
    mp4, gif = stem.with_suffix(".mp4"), stem.with_suffix(".gif")
    write_video(mp4, video, fps, pixelformat=PIXELFORMAT)
    iio.mimsave(gif, list(video), duration=1000.0 / fps, loop=0)
    return [mp4, gif]


def save_clip_media(
    stem: Path, reference: torch.Tensor, pred: torch.Tensor, target: torch.Tensor | None, fps: float
) -> list[Path]:
    """Animation files plus ``stem.png``: rows (generated, and ground truth when given), each
    starting with the reference image."""
    paths = save_animation(stem, pred, fps)
    rows = [pred] if target is None else [pred, target]
    ref = to_uint8(reference)
    grid = np.concatenate([np.concatenate([ref, *to_uint8(r)], axis=1) for r in rows], axis=0)
    png = stem.with_suffix(".png")
    iio.imwrite(png, grid)
    return [*paths, png]
