"""Frames as uint8 images, and mp4 files in and out (imageio's ffmpeg backend).

Every package writes its samples and reads its clips through these, so a video written by one
package decodes the same way in another.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``[..., C, H, W]`` in [-1, 1] -> ``[..., H, W, C]`` uint8; one channel is squeezed."""
    x = ((frames.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    x = x.movedim(-3, -1).numpy()
    return x[..., 0] if x.shape[-1] == 1 else x


def write_video(
    path: str | Path, frames: np.ndarray, fps: float, *, pixelformat: str = "yuv420p", crf: int = 12
) -> Path:
    """``[T, H, W, 3]`` uint8 frames as an H.264 mp4 (CRF 12 is near-lossless).

    ``pixelformat="yuv444p"`` keeps full-resolution colour, which small renders need (4:2:0
    chroma subsampling smears one-pixel limbs); players that only know 4:2:0 may refuse it.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected [T, H, W, 3] uint8 frames, got {frames.shape} {frames.dtype}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if pixelformat == "yuv420p" and (frames.shape[1] % 2 or frames.shape[2] % 2):
        raise ValueError(
            f"H.264 4:2:0 needs even frame sizes, got {frames.shape[1]}x{frames.shape[2]}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(
        path,
        format="FFMPEG",
        fps=fps,
        codec="libx264",
        quality=None,
        macro_block_size=1,
        pixelformat=pixelformat,
        ffmpeg_params=["-crf", str(crf)],
        ffmpeg_log_level="error",
    ) as writer:
        for frame in frames:
            writer.append_data(frame)
    return path


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """All frames of a video file as ``[T, H, W, 3]`` uint8, and its frame rate (0 if unknown).

    A missing file raises ``FileNotFoundError``; an undecodable or empty one ``ValueError``
    naming the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {path} does not exist")
    try:
        with imageio.get_reader(path, format="FFMPEG") as reader:
            fps = float(reader.get_meta_data().get("fps", 0.0))
            frames = [np.asarray(frame)[..., :3] for frame in reader]
    except Exception as e:  # imageio raises OSError, RuntimeError, ValueError, IndexError...
        raise ValueError(
            f"cannot decode video {path} ({_short(e)}); re-encode it as H.264 mp4"
        ) from e
    if not frames:
        raise ValueError(f"video {path} has no frames; re-encode it as H.264 mp4")
    return np.stack(frames), fps


def _short(error: BaseException) -> str:
    """The error's first line and, for ffmpeg failures, ffmpeg's own last line (not its banner)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    head = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return head if len(lines) < 2 else f"{head}; ffmpeg: {lines[-1]}"
