"""Skeleton animations (GIF) of normalised pose sequences, drawn with Pillow.

pose-format's ``PoseVisualizer`` needs OpenCV, which this workspace does not install, so the
2-D skeleton is drawn with Pillow's ``ImageDraw`` and written with Pillow's GIF encoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from text_to_pose.data.holistic import N_BODY, RIGHT_HAND_OFFSET, limbs

COLOURS = {"body": (90, 90, 90), "left": (30, 110, 230), "right": (20, 160, 60)}


def _colour(a: int) -> tuple[int, int, int]:
    if a < N_BODY:
        return COLOURS["body"]
    return COLOURS["left"] if a < RIGHT_HAND_OFFSET else COLOURS["right"]


def _frames(data: np.ndarray, confidence: np.ndarray, size: int, bounds) -> list[Image.Image]:
    (x0, y0), span = bounds
    scale = (size - 16) / span
    images = []
    for frame, conf in zip(data, confidence):
        image = Image.new("RGB", (size, size), "white")
        draw = ImageDraw.Draw(image)
        xy = (frame[:, :2] - np.array([x0, y0])) * scale + 8
        for a, b in limbs():
            if conf[a] > 0 and conf[b] > 0:
                width = 2 if a < N_BODY else 1
                draw.line([tuple(xy[a]), tuple(xy[b])], fill=_colour(a), width=width)
        images.append(image)
    return images


def _bounds(sequences: list[tuple[np.ndarray, np.ndarray]]):
    points = np.concatenate([d[c > 0][:, :2] for d, c in sequences if (c > 0).any()])
    low, high = points.min(axis=0), points.max(axis=0)
    span = float((high - low).max()) or 1.0
    centre = (low + high) / 2
    return (centre - span / 2), span


def render_gif(
    path: str | Path,
    sequences: list[tuple[np.ndarray, np.ndarray]],
    fps: float = 25.0,
    size: int = 192,
) -> Path:
    """Side-by-side GIF of ``(data [T, 75, 3], confidence [T, 75])`` sequences (e.g. reference
    and prediction) in a shared frame; shorter ones hold their last frame."""
    if not sequences:
        raise ValueError("render_gif needs at least one sequence")
    bounds = _bounds(sequences)
    columns = [_frames(d, c, size, bounds) for d, c in sequences]
    length = max(len(c) for c in columns)
    frames = []
    for t in range(length):
        canvas = Image.new("RGB", (size * len(columns), size), "white")
        for i, column in enumerate(columns):
            canvas.paste(column[min(t, len(column) - 1)], (i * size, 0))
        frames.append(canvas)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path


__all__ = ["render_gif"]
