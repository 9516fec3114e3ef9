"""Stick-figure GIFs of Z-up joint sequences (PIL drawing, imageio writing).

No plotting library is in the environment; a 3/4 orthographic view with bones drawn as
lines is all a stick figure needs, so the projection is written here.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image, ImageDraw

from stmc_keyframe.representation.skeleton import PARENTS


def _project(joints: np.ndarray, yaw: float = 0.6, pitch: float = 0.35) -> np.ndarray:
    """Orthographic view from azimuth ``yaw`` and elevation ``pitch``: [..., 3] -> [..., 2]."""
    x, y, z = joints[..., 0], joints[..., 1], joints[..., 2]
    u = np.cos(yaw) * x + np.sin(yaw) * y
    depth = -np.sin(yaw) * x + np.cos(yaw) * y
    v = np.cos(pitch) * z - np.sin(pitch) * depth
    return np.stack([u, v], -1)


def write_gif(
    path: str | Path,
    joints: torch.Tensor | np.ndarray,
    title: str = "",
    ghost: torch.Tensor | np.ndarray | None = None,
    keyframes: torch.Tensor | np.ndarray | None = None,
    size: int = 256,
    fps: int = 20,
) -> Path:
    """Draw [T, J, 3] joints (and an optional grey ``ghost`` motion, e.g. the ground truth);
    frames listed in ``keyframes`` [T] are drawn in red."""
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise ValueError(f"expected [T, J, 3] joints, got {joints.shape}")
    layers = [joints] + ([np.asarray(ghost, dtype=np.float32)] if ghost is not None else [])
    pts = [_project(j) for j in layers]
    allp = np.concatenate([p.reshape(-1, 2) for p in pts])
    lo, hi = allp.min(0), allp.max(0)
    scale = (size - 30) / max(float((hi - lo).max()), 1e-3)
    kf = np.zeros(len(joints), bool) if keyframes is None else np.asarray(keyframes, bool)
    frames = []
    for t in range(len(joints)):
        img = Image.new("RGB", (size, size), "white")
        draw = ImageDraw.Draw(img)
        for k, p in enumerate(pts[::-1]):
            is_ghost = ghost is not None and k == 0
            color = (190, 190, 190) if is_ghost else ((200, 30, 30) if kf[t] else (30, 60, 160))
            q = (p[t] - lo) * scale + 15
            q[:, 1] = size - q[:, 1]
            for j, parent in enumerate(PARENTS[: p.shape[1]]):
                if parent >= 0:
                    draw.line([tuple(q[j]), tuple(q[parent])], fill=color, width=2)
        draw.text((4, 2), title[:40], fill=(0, 0, 0))
        frames.append(np.asarray(img))
    path = Path(path)
    iio.imwrite(path, np.stack(frames), duration=1000 / fps, loop=0)
    return path
