"""Synthetic LiDAR range-image sequences: ray casting a procedural street from a moving ego car.

The scene (in metres, x along the road, z up, ground at z = 0): building facades on both sides
with gaps, parked cars, cars driving in both lanes, pedestrians on the sidewalks and poles, all
axis-aligned boxes. The sensor is an HDL-64-like spinning LiDAR (64 beams from +2 to -24.8 deg
elevation, ``width`` azimuth bins over 360 deg) mounted 1.73 m above the ground on an ego car whose
speed changes randomly. Each ray returns the distance of the first hit (ray-slab test against
every box, ray-plane test against the ground) or 0 beyond ``max_range``, as real range images do.
Written in the real range-image folder format (``<seq>/processed/range/%06d.npy``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stdiff.data.formats import write_range_sequence

SENSOR_HEIGHT = 1.73


def ray_directions(
    height: int, width: int, fov_up: float = 2.0, fov_down: float = -24.8
) -> np.ndarray:
    """Unit ray directions [H, W, 3]; row 0 is the top beam, column 0 looks backwards (-x)."""
    elev = np.deg2rad(np.linspace(fov_up, fov_down, height))
    azim = np.pi - 2 * np.pi * (np.arange(width) + 0.5) / width
    ce = np.cos(elev)[:, None]
    return np.stack(
        [
            ce * np.cos(azim)[None],
            ce * np.sin(azim)[None],
            np.broadcast_to(np.sin(elev)[:, None], (height, width)),
        ],
        -1,
    ).astype(np.float32)


def cast(
    origin: np.ndarray, dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_range: float
) -> np.ndarray:
    """First-hit distance of rays [R, 3] from ``origin`` against boxes [M, 3] and the ground."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs  # [R, 3]
        t1 = (lo[None] - origin) * inv[:, None]  # [R, M, 3]
        t2 = (hi[None] - origin) * inv[:, None]
        tnear = np.nanmax(np.minimum(t1, t2), -1)
        tfar = np.nanmin(np.maximum(t1, t2), -1)
    hit = (tfar >= np.maximum(tnear, 0)) & (tnear > 0)
    box_t = np.where(hit, tnear, np.inf).min(-1) if lo.shape[0] else np.full(dirs.shape[0], np.inf)
    dz = dirs[:, 2]
    ground_t = np.where(dz < -1e-6, -origin[2] / np.where(dz < -1e-6, dz, -1), np.inf)
    t = np.minimum(box_t, ground_t)
    return np.where(t <= max_range, t, 0.0).astype(np.float32)


class StreetLidarGenerator:
    """Deterministic generator of ``splits`` = {split: number of sequences} under ``root/<split>``.

    Args:
        length: frames per sequence (10 Hz). height/width: range image size.
        max_range: sensor range in metres (farther rays return 0).
        noise_std: Gaussian range noise in metres.
    """

    def __init__(
        self,
        splits: dict[str, int],
        length: int = 20,
        height: int = 64,
        width: int = 512,
        max_range: float = 80.0,
        noise_std: float = 0.02,
        as_png: bool = False,
        seed: int = 0,
    ):
        self.splits = dict(splits)
        self.length, self.height, self.width = length, height, width
        self.max_range, self.noise_std, self.as_png, self.seed = max_range, noise_std, as_png, seed

    def scene(self, rng: np.random.Generator, extent: float):
        """Static boxes and moving agents (box, velocity [3]) along x in [-60, extent + 60]."""
        static, movers = [], []
        for side in (-1, 1):
            x = -60.0
            while x < extent + 60:  # building facades with gaps
                length = rng.uniform(8, 25)
                near, h = rng.uniform(9, 13), rng.uniform(5, 15)
                y_lo, y_hi = (near, near + 10) if side > 0 else (-near - 10, -near)
                static.append(((x, y_lo, 0), (x + length, y_hi, h)))
                x += length + rng.uniform(0, 6)
            x = -60.0
            while x < extent + 60:  # parked cars, poles
                x += rng.uniform(6, 20)
                y = side * 5.6
                if rng.random() < 0.7:
                    static.append(((x, y - 0.9, 0), (x + 4.2, y + 0.9, 1.5)))
                else:
                    static.append(((x, side * 7.2 - 0.15, 0), (x + 0.3, side * 7.2 + 0.15, 4.0)))
            for _ in range(rng.integers(1, 4)):  # cars in this lane
                x0 = rng.uniform(-20, extent + 40)
                speed = rng.uniform(0.4, 1.4) * (1 if side < 0 else -1)
                movers.append(
                    (
                        ((x0, side * 1.8 - 0.9, 0), (x0 + 4.4, side * 1.8 + 0.9, 1.55)),
                        (speed, 0.0, 0.0),
                    )
                )
            for _ in range(rng.integers(1, 4)):  # pedestrians on the sidewalk
                x0 = rng.uniform(-10, extent + 20)
                y0 = side * rng.uniform(7.6, 8.6)
                movers.append(
                    (
                        ((x0, y0 - 0.3, 0), (x0 + 0.6, y0 + 0.3, 1.75)),
                        (rng.choice([-1, 1]) * rng.uniform(0.08, 0.18), rng.normal(0, 0.02), 0.0),
                    )
                )
        return static, movers

    def sequence(self, rng: np.random.Generator) -> np.ndarray:
        """One sequence [length, H, W] of ranges in metres."""
        speed = rng.uniform(0.5, 1.2)
        ego = [np.array([0.0, -1.8, SENSOR_HEIGHT])]
        for _ in range(self.length - 1):  # random acceleration: the stochastic ego motion
            speed = float(np.clip(speed + rng.normal(0, 0.08), 0.2, 1.6))
            ego.append(ego[-1] + np.array([speed, 0.0, 0.0]))
        static, movers = self.scene(rng, ego[-1][0])
        dirs = ray_directions(self.height, self.width).reshape(-1, 3)
        s_lo = np.array([b[0] for b in static], np.float32).reshape(-1, 3)
        s_hi = np.array([b[1] for b in static], np.float32).reshape(-1, 3)
        m_lo = np.array([m[0][0] for m in movers], np.float32).reshape(-1, 3)
        m_hi = np.array([m[0][1] for m in movers], np.float32).reshape(-1, 3)
        m_v = np.array([m[1] for m in movers], np.float32).reshape(-1, 3)
        frames = []
        for t, origin in enumerate(ego):
            lo = np.concatenate([s_lo, m_lo + t * m_v])
            hi = np.concatenate([s_hi, m_hi + t * m_v])
            near = (hi[:, 0] > origin[0] - self.max_range) & (lo[:, 0] < origin[0] + self.max_range)
            r = cast(origin.astype(np.float32), dirs, lo[near], hi[near], self.max_range)
            r = np.where(r > 0, r + rng.normal(0, self.noise_std, r.shape), 0.0)
            frames.append(r.reshape(self.height, self.width).astype(np.float32))
        return np.stack(frames)

    def write(self, root: Path) -> None:
        for k, (split, count) in enumerate(sorted(self.splits.items())):
            for i in range(count):
                rng = np.random.default_rng([self.seed, k, i])
                write_range_sequence(root / split / f"seq_{i:05d}", self.sequence(rng), self.as_png)
