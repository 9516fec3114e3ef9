"""Stochastic moving shapes: bouncing glyphs with random direction changes (SMMNIST-like).

Written as PNG frame folders (the real ``frames`` format). Glyph positions follow a constant
velocity between events: wall bounces (deterministic, visible in the observed frames) and random
turns with probability ``turn_prob`` per frame (the stochastic part the SDE has to cover).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from stdiff.data.formats import write_frame_sequence

GLYPHS = ("square", "disc", "triangle", "cross")


def glyph_mask(kind: str, size: int) -> np.ndarray:
    """Binary [size, size] mask of a glyph."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    c = size / 2
    if kind == "square":
        m = np.ones((size, size), bool)
    elif kind == "disc":
        m = (yy - c) ** 2 + (xx - c) ** 2 <= c**2
    elif kind == "triangle":
        m = yy >= 2 * np.abs(xx - c)
    elif kind == "cross":
        w = max(1, size // 6)
        m = (np.abs(yy - c) <= w) | (np.abs(xx - c) <= w)
    else:
        raise ValueError(f"glyph {kind!r} is unknown; use one of {GLYPHS}")
    return m


class MovingShapesGenerator:
    """Deterministic generator of ``splits`` = {split: number of sequences} under ``root/<split>``.

    Args:
        length: frames per sequence. size: image side. n_shapes: glyphs per sequence.
        glyph_size: glyph side in pixels. speed: (min, max) pixels per frame.
        turn_prob: chance per frame and glyph of a new random direction.
    """

    def __init__(
        self,
        splits: dict[str, int],
        length: int = 20,
        size: int = 64,
        n_shapes: int = 2,
        glyph_size: int = 14,
        speed: tuple[float, float] = (2.5, 4.5),
        turn_prob: float = 0.1,
        seed: int = 0,
    ):
        self.splits = dict(splits)
        self.length, self.size, self.n_shapes = length, size, n_shapes
        self.glyph_size, self.speed, self.turn_prob, self.seed = (
            glyph_size,
            tuple(speed),
            turn_prob,
            seed,
        )
        if glyph_size >= size:
            raise ValueError(f"glyph_size={glyph_size} must be smaller than size={size}")

    def sequence(self, rng: np.random.Generator) -> np.ndarray:
        """One sequence [length, size, size] uint8."""
        s, g = self.size, self.glyph_size
        frames = np.zeros((self.length, s, s), np.float32)
        lo = 0.0
        hi = float(s - g)
        for _ in range(self.n_shapes):
            mask = glyph_mask(GLYPHS[rng.integers(len(GLYPHS))], g).astype(np.float32)
            level = rng.uniform(0.6, 1.0)
            pos = rng.uniform(lo, hi, 2)
            speed = rng.uniform(*self.speed)
            angle = rng.uniform(0, 2 * math.pi)
            vel = speed * np.array([math.sin(angle), math.cos(angle)])
            for t in range(self.length):
                y, x = np.round(pos).astype(int)
                region = frames[t, y : y + g, x : x + g]
                np.maximum(region, level * mask, out=region)
                if rng.random() < self.turn_prob:
                    angle = rng.uniform(0, 2 * math.pi)
                    vel = speed * np.array([math.sin(angle), math.cos(angle)])
                pos = pos + vel
                for d in range(2):  # reflect off the walls
                    if pos[d] < lo:
                        pos[d], vel[d] = 2 * lo - pos[d], -vel[d]
                    elif pos[d] > hi:
                        pos[d], vel[d] = 2 * hi - pos[d], -vel[d]
        return np.round(frames * 255).astype(np.uint8)

    def write(self, root: Path) -> None:
        for k, (split, count) in enumerate(sorted(self.splits.items())):
            for i in range(count):
                rng = np.random.default_rng([self.seed, k, i])
                write_frame_sequence(root / split / f"seq_{i:05d}", self.sequence(rng))
