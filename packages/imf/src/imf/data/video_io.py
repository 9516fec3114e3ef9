"""Reading clips: video files (through :mod:`motioncore.media`) and folders of frames."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from motioncore.media import read_video

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")


def read_frame_folder(path: str | Path) -> np.ndarray:
    """Read a folder of frames (PNG/JPG, sorted by name) into ``[T, H, W, 3]`` uint8."""
    files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise ValueError(f"frame folder {path} holds no {'/'.join(FRAME_SUFFIXES)} files")
    frames = []
    for file in files:
        try:
            image = np.asarray(imageio.imread(file))
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read frame {file} ({e})") from e
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        frames.append(image[..., :3])
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise ValueError(f"frames in {path} have different sizes: {sorted(shapes)}")
    return np.stack(frames).astype(np.uint8)


def read_clip(path: str | Path) -> np.ndarray:
    """A clip from a video file or a frame folder, ``[T, H, W, 3]`` uint8."""
    path = Path(path)
    if path.is_dir():
        return read_frame_folder(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return read_video(path)[0]
    raise ValueError(f"{path} is neither a video ({'/'.join(VIDEO_SUFFIXES)}) nor a frame folder")


def find_clips(root: str | Path) -> list[Path]:
    """Video files and frame folders directly under ``root``, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data folder {root} does not exist; set data.root=<folder of clips>"
        )
    clips = []
    for entry in sorted(root.iterdir()):
        if entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
            clips.append(entry)
        elif entry.is_dir() and any(p.suffix.lower() in FRAME_SUFFIXES for p in entry.iterdir()):
            clips.append(entry)
    if not clips:
        raise ValueError(
            f"no clips under {root}: expected video files ({'/'.join(VIDEO_SUFFIXES)}) or "
            f"folders of frames ({'/'.join(FRAME_SUFFIXES)})"
        )
    return clips
