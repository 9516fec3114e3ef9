"""Sample media: PNG contact sheets (rows: ground truth, then each sampled future) and GIFs."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
from torch import Tensor

from motioncore.media import to_uint8


def write_prediction_media(
    out_dir: Path, prefix: str, vo: Tensor, vp: Tensor | None, preds: Tensor
) -> list[Path]:
    """For each video: ``<prefix>_<i>.png`` (observed | future; GT row then N sample rows),
    ``<prefix>_<i>.gif`` (observed then sample 0) and ``<prefix>_<i>.npy`` (preds in [-1, 1])."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(vo.shape[0]):
        obs = to_uint8(vo[i])  # [To, H, W(, C)]
        rows = []
        if vp is not None:
            rows.append(np.concatenate([*obs, *to_uint8(vp[i])], 1))
        blank = np.zeros_like(np.concatenate(list(obs), 1))
        for s in range(preds.shape[1]):
            rows.append(np.concatenate([blank, *to_uint8(preds[i, s])], 1))
        width = max(r.shape[1] for r in rows)
        rows = [
            np.pad(r, [(0, 2), (0, width - r.shape[1])] + [(0, 0)] * (r.ndim - 2)) for r in rows
        ]
        png = out_dir / f"{prefix}_{i}.png"
        iio.imwrite(png, np.concatenate(rows, 0))
        gif = out_dir / f"{prefix}_{i}.gif"
        iio.imwrite(gif, np.stack([*obs, *to_uint8(preds[i, 0])]), duration=200, loop=0)
        npy = out_dir / f"{prefix}_{i}.npy"
        np.save(npy, preds[i].float().cpu().numpy())
        paths += [png, gif, npy]
    return paths
