"""The on-disk data layout, read and written with validation that names the offending file.

<root>/videos/<name>.mp4                      (imageio + imageio-ffmpeg)
<root>/poses/<name>/frame_XXX.json            {"keypoints": [[x, y, conf], ...], "pose_type", "frame_id"}
<root>/music_features/<name>/frame_XXX.npy    (feature_dim,) or (feature_dim, h, w)
<root>/<custom type>/<name>/frame_XXX.npy     same rules as music features
<root>/reference_images/<name>.png|jpg
<root>/audio/<name>.wav                        (optional: source track for prepare_music)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import imageio.v2 as iio
import numpy as np
from PIL import Image

VIDEO_DIR, POSE_DIR, MUSIC_DIR, REF_DIR, AUDIO_DIR = (
    "videos",
    "poses",
    "music_features",
    "reference_images",
    "audio",
)
REFERENCE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DataLayoutError(ValueError):
    """A file of the data layout is missing or does not match the configuration."""


def frame_file(folder: Path, index: int, suffix: str) -> Path:
    return folder / f"frame_{index:03d}{suffix}"


def guidance_folder(guidance_type: str) -> str:
    """Folder of a guidance type: ``poses`` and ``music_features`` as in the guide, else its name."""
    return {"pose": POSE_DIR, "music": MUSIC_DIR}.get(guidance_type, guidance_type)


# ---- writing ---------------------------------------------------------------------------------
def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """H.264 mp4, yuv444p (no chroma subsampling, which would smear small renders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.mimwrite(
        str(path),
        frames,
        fps=fps,
        codec="libx264",
        macro_block_size=1,
        pixelformat="yuv444p",
        ffmpeg_params=["-crf", "12"],
    )


def write_pose(path: Path, keypoints: np.ndarray, pose_type: str, frame_id: int) -> None:
    """``keypoints`` is ``[K, 3]`` (x, y, confidence) in pixels of the video frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "keypoints": [[round(float(v), 3) for v in kp] for kp in keypoints],
        "pose_type": pose_type,
        "frame_id": int(frame_id),
    }
    path.write_text(json.dumps(record))


def write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


# ---- reading ---------------------------------------------------------------------------------
def read_video(path: Path) -> tuple[np.ndarray, float]:
    """All frames ``[T, H, W, 3]`` uint8 and the frame rate."""
    if not path.is_file():
        raise DataLayoutError(f"video {path} does not exist")
    try:
        reader = iio.get_reader(str(path), format="FFMPEG")
        fps = float(reader.get_meta_data().get("fps", 0.0))
        frames = np.stack([np.asarray(f)[..., :3] for f in reader.iter_data()])
        reader.close()
    except Exception as e:  # imageio raises several types for corrupt files
        raise DataLayoutError(
            f"video {path} cannot be decoded ({type(e).__name__}: {e}); re-encode it as H.264 mp4"
        ) from e
    return frames, fps


def read_image(path: Path) -> np.ndarray:
    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except Exception as e:
        raise DataLayoutError(f"reference image {path} cannot be read ({e})") from e


def read_pose(path: Path, num_keypoints: int) -> np.ndarray:
    """``[K, 3]`` keypoints of one frame; K must equal ``num_keypoints``."""
    if not path.is_file():
        raise DataLayoutError(f"pose file {path} is missing (one JSON per video frame is required)")
    try:
        record = json.loads(path.read_text())
        kp = np.asarray(record["keypoints"], dtype=np.float32)
    except (json.JSONDecodeError, KeyError, ValueError, TypeError) as e:
        raise DataLayoutError(
            f"pose file {path} is not valid: expected JSON with 'keypoints' [[x, y, conf], ...], "
            f"'pose_type' and 'frame_id' ({type(e).__name__}: {e})"
        ) from e
    if kp.ndim != 2 or kp.shape[1] != 3:
        raise DataLayoutError(
            f"pose file {path}: keypoints must be [K, 3] (x, y, conf), got {kp.shape}"
        )
    if kp.shape[0] != num_keypoints:
        raise DataLayoutError(
            f"pose file {path} has {kp.shape[0]} keypoints but guidance_input_channels for pose "
            f"expects {num_keypoints} (+1 background channel = {num_keypoints + 1}); set "
            f"guidance_input_channels to {kp.shape[0] + 1} for this data"
        )
    return kp


def read_feature(path: Path, channels: int) -> np.ndarray:
    """One frame of a per-frame feature: ``(channels,)`` or ``(channels, h, w)``."""
    if not path.is_file():
        raise DataLayoutError(
            f"feature file {path} is missing (one .npy per video frame is required)"
        )
    try:
        x = np.load(path).astype(np.float32)
    except Exception as e:
        raise DataLayoutError(f"feature file {path} cannot be read ({e})") from e
    if x.ndim not in (1, 3) or x.shape[0] != channels:
        raise DataLayoutError(
            f"feature file {path} has shape {x.shape}; guidance_input_channels expects "
            f"({channels},) or ({channels}, h, w)"
        )
    return x


@dataclass
class VideoRecord:
    """The files of one video, checked to exist for every frame."""

    name: str
    video: Path
    reference: Path
    guidance_dirs: dict[str, Path]
    num_frames: int
    fps: float


def find_reference(root: Path, name: str) -> Path:
    for suffix in REFERENCE_SUFFIXES:
        path = root / REF_DIR / f"{name}{suffix}"
        if path.is_file():
            return path
    raise DataLayoutError(
        f"reference image for video {name!r} is missing: expected {root / REF_DIR / name}.png or .jpg"
    )


def index_root(root: Path, guidance_types: list[str]) -> list[VideoRecord]:
    """Scan ``root`` and check that every video has its reference and one guidance file per frame."""
    root = Path(root)
    videos = sorted((root / VIDEO_DIR).glob("*.mp4"))
    if not videos:
        raise DataLayoutError(f"no videos found: expected {root / VIDEO_DIR}/<name>.mp4")
    records = []
    for video in videos:
        name = video.stem
        frames, fps = read_video(video)
        reference = find_reference(root, name)
        ref_shape = read_image(reference).shape[:2]
        if ref_shape != frames.shape[1:3]:
            raise DataLayoutError(
                f"reference image {reference} is {ref_shape[1]}x{ref_shape[0]} but video {video} "
                f"is {frames.shape[2]}x{frames.shape[1]}; they must have the same resolution"
            )
        dirs = {}
        for gtype in guidance_types:
            folder = root / guidance_folder(gtype) / name
            suffix = ".json" if gtype == "pose" else ".npy"
            for i in range(len(frames)):
                path = frame_file(folder, i, suffix)
                if not path.is_file():
                    raise DataLayoutError(
                        f"guidance {gtype!r}: {path} is missing; video {video} has {len(frames)} "
                        "frames and needs one file per frame"
                    )
            dirs[gtype] = folder
        records.append(VideoRecord(name, video, reference, dirs, len(frames), fps))
    return records
