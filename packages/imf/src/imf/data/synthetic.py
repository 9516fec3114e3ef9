"""Procedural talking-head-like clips written as real mp4 files (the built-in dataset).

Each clip shows a textured face (skin texture, eyes with pupils, brows, nose, mouth) that
translates, rotates and scales smoothly, blinks and opens its mouth, plus textured sprites
moving across a textured background. Motion is what changes between frames, so the reference
frame alone (the zero-motion baseline) cannot predict the current frame, while a 32-d token
(pose, blink, mouth and sprite positions) plus the reference appearance can.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from scipy.ndimage import map_coordinates, zoom

from motioncore.data import BuiltinData
from motioncore.media import write_video

SPLITS = ("train", "val", "test")
VERSION = 1


@dataclass(frozen=True)
class SyntheticSpec:
    """Knobs of the generator; the cache folder name is derived from them."""

    image_size: int = 64
    frames: int = 24
    fps: int = 12
    train_clips: int = 96
    val_clips: int = 8
    test_clips: int = 12
    sprites: int = 2
    max_shift: float = 0.12  # face translation amplitude, fraction of the frame
    max_rotation: float = 20.0  # degrees
    max_scale: float = 0.12  # relative
    seed: int = 0

    def folder_name(self) -> str:
        return (
            f"synthetic_v{VERSION}_{self.image_size}px_{self.frames}f_"
            f"{self.train_clips}-{self.val_clips}-{self.test_clips}_s{self.seed}"
        )


def _texture(rng: np.random.Generator, size: int, base: np.ndarray, contrast: float) -> np.ndarray:
    """Smooth colour noise around ``base`` (multi-octave value noise), ``[size, size, 3]``."""
    tex = np.zeros((size, size, 3))
    for cells, weight in ((4, 1.0), (8, 0.6), (16, 0.35)):
        coarse = rng.normal(size=(cells, cells, 3))
        tex += weight * zoom(coarse, (size / cells, size / cells, 1), order=3)[:size, :size]
    tex = tex / np.abs(tex).max()
    return np.clip(base[None, None] + contrast * tex, 0, 1)


def _soft(distance: np.ndarray, pixels: float) -> np.ndarray:
    """Anti-aliased inside mask from a signed distance-like value (negative = inside)."""
    return 1 / (1 + np.exp(np.clip(distance / pixels, -30, 30)))


def _ellipse(
    u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float
) -> np.ndarray:
    return np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / max(rv, 1e-3)) ** 2) - 1


def _paint(canvas: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return canvas * (1 - mask[..., None]) + colour * mask[..., None]


def render_clip(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """One clip ``[T, S, S, 3]`` uint8."""
    size, frames = spec.image_size, spec.frames
    background = _texture(rng, size, rng.uniform(0.15, 0.85, 3), 0.35)
    skin = _texture(rng, 2 * size, rng.uniform(0.35, 0.95, 3), 0.18)
    eye_colour, lip_colour = (
        rng.uniform(0, 0.5, 3),
        np.array(rng.uniform([0.5, 0, 0], [0.9, 0.3, 0.3])),
    )
    brow_colour = rng.uniform(0, 0.35, 3)
    sprite_tex = [_texture(rng, size, rng.uniform(0.1, 0.9, 3), 0.4) for _ in range(spec.sprites)]
    sprite_pos = rng.uniform(0.1, 0.9, (spec.sprites, 2))
    sprite_vel = rng.uniform(-0.03, 0.03, (spec.sprites, 2))
    sprite_radius = rng.uniform(0.07, 0.13, spec.sprites)
    face_radius = rng.uniform(0.26, 0.32) * size
    phase = rng.uniform(0, 2 * np.pi, 6)
    speed = rng.uniform(0.6, 1.4, 6) * 2 * np.pi / frames
    blink_at = rng.choice(frames, size=max(1, frames // 10), replace=False)

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    px = 1.0 / face_radius  # one pixel in face units
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        canvas = background.copy()
        for k in range(spec.sprites):  # sprites behind the face, bouncing off the borders
            pos = sprite_pos[k] + sprite_vel[k] * t
            pos = 1 - np.abs(1 - np.mod(pos, 2))  # reflect into [0, 1]
            dist = np.hypot(xs / size - pos[0], ys / size - pos[1]) / sprite_radius[k] - 1
            mask = _soft(dist, 1.0 / (sprite_radius[k] * size))
            # The texture travels with the sprite; its wrap-around seam stays half a frame away.
            offset = (int(pos[1] * size) + size // 2, int(pos[0] * size) + size // 2)
            shifted = np.roll(sprite_tex[k], offset, axis=(0, 1))
            canvas = canvas * (1 - mask[..., None]) + shifted * mask[..., None]
        cx = size / 2 + spec.max_shift * size * np.sin(speed[0] * t + phase[0])
        cy = size / 2 + spec.max_shift * size * np.sin(speed[1] * t + phase[1])
        angle = np.deg2rad(spec.max_rotation) * np.sin(speed[2] * t + phase[2])
        scale = 1 + spec.max_scale * np.sin(speed[3] * t + phase[3])
        # Face coordinates: inverse similarity transform of the pixel grid (unit = face radius).
        dx, dy = (xs - cx) / (scale * face_radius), (ys - cy) / (scale * face_radius)
        u = np.cos(angle) * dx + np.sin(angle) * dy
        v = -np.sin(angle) * dx + np.cos(angle) * dy
        head = _soft(_ellipse(u, v, 0, 0, 0.85, 1.0), px / scale)
        face = map_coordinates(
            skin,
            [
                np.clip((v + 1.2) * size * 0.8, 0, 2 * size - 1)[..., None].repeat(3, -1),
                np.clip((u + 1.2) * size * 0.8, 0, 2 * size - 1)[..., None].repeat(3, -1),
                np.broadcast_to(np.arange(3), u.shape + (3,)),
            ],
            order=1,
        )
        canvas = canvas * (1 - head[..., None]) + face * head[..., None]
        blink = min(abs(t - b) for b in blink_at)
        openness = 0.12 if blink == 0 else (0.55 if blink == 1 else 1.0)
        mouth = 0.04 + 0.16 * (0.5 + 0.5 * np.sin(speed[4] * t * 2.5 + phase[4]))
        for side in (-1, 1):
            eye = _soft(_ellipse(u, v, side * 0.33, -0.22, 0.17, 0.1 * openness), px)
            canvas = _paint(canvas, eye, np.array([0.95, 0.95, 0.95]))
            pupil = _soft(_ellipse(u, v, side * 0.33, -0.22, 0.07, 0.07 * openness), px) * eye
            canvas = _paint(canvas, pupil, eye_colour)
            brow = _soft(_ellipse(u, v, side * 0.33, -0.45, 0.2, 0.04), px)
            canvas = _paint(canvas, brow, brow_colour)
        nose = _soft(_ellipse(u, v, 0, 0.12, 0.07, 0.14), px)
        canvas = _paint(canvas, nose, face[size // 2, size // 2] * 0.75)
        canvas = _paint(canvas, _soft(_ellipse(u, v, 0, 0.5, 0.3, mouth), px), lip_colour)
        canvas = _paint(
            canvas, _soft(_ellipse(u, v, 0, 0.5, 0.22, mouth * 0.6), px), lip_colour * 0.3
        )
        out[t] = np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8)
    return out


def write_clips(folder: Path, spec: SyntheticSpec) -> None:
    """Write ``folder/{train,val,test}/clip_XXXX.mp4``; clip ``i`` of split ``k`` is a pure
    function of ``(seed, k, i)``."""
    counts = {"train": spec.train_clips, "val": spec.val_clips, "test": spec.test_clips}
    for split_index, split in enumerate(SPLITS):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for index in range(counts[split]):
            rng = np.random.default_rng([spec.seed, split_index, index])
            write_video(folder / split / f"clip_{index:04d}.mp4", render_clip(spec, rng), spec.fps)


def builtin(root: Path, spec: SyntheticSpec) -> BuiltinData:
    """The clips of ``spec`` under ``root/<spec folder>``, rebuilt when any knob changes."""
    return BuiltinData(
        Path(root) / spec.folder_name(),
        asdict(spec),
        partial(write_clips, spec=spec),
        VERSION,
        replaces=("spec.json",),
    )


def generate(root: Path, spec: SyntheticSpec) -> Path:
    """Build (once) and return the folder of ``spec``'s clips under ``root``."""
    return builtin(root, spec).build()
