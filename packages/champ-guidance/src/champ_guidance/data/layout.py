"""The on-disk data layouts, read and written with validation that names the offending file.

This package's layout (``index_root``)::

    <root>/videos/<name>.mp4                      (imageio + imageio-ffmpeg)
    <root>/poses/<name>/frame_XXX.json            {"keypoints": [[x, y, conf], ...], "pose_type", "frame_id"}
    <root>/music_features/<name>/frame_XXX.npy    (feature_dim,) or (feature_dim, h, w)
    <root>/<custom type>/<name>/frame_XXX.npy     same rules as music features
    <root>/reference_images/<name>.png|jpg
    <root>/audio/<name>.wav                        (optional: source track for prepare_music)

CHAMP's own layout (``index_champ_root``; detected by a ``<clip>/images/`` folder)::

    <root>/<clip>/images/NNNN.png                 the video frames
    <root>/<clip>/{depth,normal,semantic_map,dwpose}/NNNN.png   rendered 3-channel maps, [0, 1]
    <root>/<clip>/mask/NNNN.png                   (optional) person mask: blacks out the
                                                  semantic map's background, as upstream
    <root>/<clip>/music_features/NNNN.npy | frame_XXX.npy, <clip>/poses/*.json (optional)
    <root>/<clip>/reference.png|jpg               (optional; default: the clip's first frame)

Every guidance type needs exactly one file per frame. All files are checked when a dataset is
built (before training starts), not when a batch first touches them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from motioncore import media

VIDEO_DIR, POSE_DIR, MUSIC_DIR, REF_DIR, AUDIO_DIR = (
    "videos",
    "poses",
    "music_features",
    "reference_images",
    "audio",
)
REFERENCE_SUFFIXES = (".png", ".jpg", ".jpeg")
CHAMP_IMAGES, CHAMP_MASK = "images", "mask"
GUIDANCE_SUFFIXES = (".png", ".jpg", ".npy", ".json")


class DataLayoutError(ValueError):
    """A file of the data layout is missing or does not match the configuration."""


def frame_file(folder: Path, index: int, suffix: str) -> Path:
    return folder / f"frame_{index:03d}{suffix}"


def guidance_folder(guidance_type: str) -> str:
    """Folder of a guidance type: ``poses`` and ``music_features`` for pose and music, else its name."""
    return {"pose": POSE_DIR, "music": MUSIC_DIR}.get(guidance_type, guidance_type)


# ---- writing ---------------------------------------------------------------------------------
# Videos are written with motioncore.media.write_video(..., pixelformat=PIXELFORMAT): 4:4:4, as
# 4:2:0 chroma subsampling smears the one-pixel limbs of small renders.
PIXELFORMAT = "yuv444p"


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
    """All frames ``[T, H, W, 3]`` uint8 and the frame rate (motioncore.media's reader; its
    missing-file and decoding errors become :class:`DataLayoutError`)."""
    try:
        return media.read_video(path)
    except (FileNotFoundError, ValueError) as e:
        raise DataLayoutError(str(e)) from e


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


def read_guidance_image(path: Path, mask: Path | None = None) -> np.ndarray:
    """A rendered guidance map ``[3, H, W]`` float32 in [0, 1] (CHAMP's ToTensor range); with a
    ``mask``, pixels where the mask is 0 become 0 (upstream's semantic-map background)."""
    try:
        x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        if mask is not None:
            m = np.asarray(Image.open(mask).convert("L")) > 0
            if m.shape != x.shape[:2]:
                raise ValueError(f"mask {mask} is {m.shape[::-1]}, the map {x.shape[1::-1]}")
            x = np.where(m[..., None], x, 0.0)
    except Exception as e:
        raise DataLayoutError(f"guidance image {path} cannot be read ({e})") from e
    return np.ascontiguousarray(x.transpose(2, 0, 1))


@dataclass
class VideoRecord:
    """The files of one video, checked to exist for every frame.

    ``video`` is an mp4, or None when the frames are ``frame_paths`` (CHAMP's ``images/``);
    ``guidance_files[type][i]`` is frame i's file of that type; ``masks`` (CHAMP layout) the
    person masks applied to the semantic map."""

    name: str
    video: Path | None
    reference: Path
    guidance_files: dict[str, list[Path]]
    num_frames: int
    fps: float
    frame_paths: list[Path] | None = None
    masks: list[Path] | None = None


def find_reference(root: Path, name: str) -> Path:
    for suffix in REFERENCE_SUFFIXES:
        path = root / REF_DIR / f"{name}{suffix}"
        if path.is_file():
            return path
    raise DataLayoutError(
        f"reference image for video {name!r} is missing: expected {root / REF_DIR / name}.png or .jpg"
    )


def _check_reference_size(reference: Path, frame_hw: tuple[int, int], source: Path) -> None:
    ref_shape = read_image(reference).shape[:2]
    if ref_shape != tuple(frame_hw):
        raise DataLayoutError(
            f"reference image {reference} is {ref_shape[1]}x{ref_shape[0]} but {source} "
            f"is {frame_hw[1]}x{frame_hw[0]}; they must have the same resolution"
        )


def index_root(root: Path, guidance_types: list[str], fps: float = 10.0) -> list[VideoRecord]:
    """Scan ``root`` (either layout) and check that every video has its reference and one
    guidance file per frame. ``fps`` is the frame rate of CHAMP-layout clips (PNG frames)."""
    root = Path(root)
    if is_champ_layout(root):
        return index_champ_root(root, guidance_types, fps)
    videos = sorted((root / VIDEO_DIR).glob("*.mp4"))
    if not videos:
        raise DataLayoutError(
            f"no videos found: expected {root / VIDEO_DIR}/<name>.mp4 (this package's layout) "
            f"or {root}/<clip>/images/NNNN.png (CHAMP's layout)"
        )
    records = []
    for video in videos:
        name = video.stem
        frames, fps_video = read_video(video)
        reference = find_reference(root, name)
        _check_reference_size(reference, frames.shape[1:3], video)
        files = {}
        for gtype in guidance_types:
            folder = root / guidance_folder(gtype) / name
            suffix = ".json" if gtype == "pose" else ".npy"
            files[gtype] = [frame_file(folder, i, suffix) for i in range(len(frames))]
            for path in files[gtype]:
                if not path.is_file():
                    raise DataLayoutError(
                        f"guidance {gtype!r}: {path} is missing; video {video} has {len(frames)} "
                        "frames and needs one file per frame"
                    )
        records.append(VideoRecord(name, video, reference, files, len(frames), fps_video))
    return records


def is_champ_layout(root: Path) -> bool:
    return Path(root).is_dir() and any(
        (d / CHAMP_IMAGES).is_dir() for d in Path(root).iterdir() if d.is_dir()
    )


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in GUIDANCE_SUFFIXES)


def index_champ_root(root: Path, guidance_types: list[str], fps: float) -> list[VideoRecord]:
    """CHAMP's per-clip folders (see the module docstring)."""
    records = []
    for clip in sorted(d for d in Path(root).iterdir() if (d / CHAMP_IMAGES).is_dir()):
        frames = sorted(
            p for p in (clip / CHAMP_IMAGES).iterdir() if p.suffix.lower() in REFERENCE_SUFFIXES
        )
        if not frames:
            raise DataLayoutError(f"{clip / CHAMP_IMAGES} holds no .png/.jpg frames")
        reference = next(
            (
                clip / f"reference{s}"
                for s in REFERENCE_SUFFIXES
                if (clip / f"reference{s}").is_file()
            ),
            frames[0],
        )
        _check_reference_size(reference, read_image(frames[0]).shape[:2], frames[0])
        files = {}
        for gtype in guidance_types:
            folder = clip / guidance_folder(gtype)
            if not folder.is_dir():
                raise DataLayoutError(
                    f"guidance {gtype!r}: {folder} is missing (CHAMP layout: one folder per "
                    f"guidance type next to {clip / CHAMP_IMAGES})"
                )
            files[gtype] = _frame_files(folder)
            if len(files[gtype]) != len(frames):
                raise DataLayoutError(
                    f"guidance {gtype!r}: {folder} has {len(files[gtype])} frames but "
                    f"{clip / CHAMP_IMAGES} has {len(frames)}; one file per frame is required"
                )
        masks = None
        if (clip / CHAMP_MASK).is_dir():
            masks = _frame_files(clip / CHAMP_MASK)
            if len(masks) != len(frames):
                raise DataLayoutError(
                    f"{clip / CHAMP_MASK} has {len(masks)} masks for {len(frames)} frames"
                )
        records.append(
            VideoRecord(clip.name, None, reference, files, len(frames), fps, frames, masks)
        )
    return records
