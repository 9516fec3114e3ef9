"""Readers and writers of the real on-disk formats, mapped to frames in [-1, 1].

- ``range``: one folder per sequence of LiDAR range images, one ``.npy`` (float metres) or 16-bit
  ``.png`` (metres * ``png_scale``, KITTI depth convention) per frame; frames are either directly
  in the folder or in ``<seq>/processed/range/`` (the layout of the KITTI range-image fork).
  0 marks "no return". Ranges map linearly from [0, max_range] to [-1, 1].
- ``frames``: one folder per sequence of PNG/JPG frames (sorted by name), or a :class:`FrameRun`
  (the files of one sequence among others in a folder, as Cityscapes stores them).
- ``video``: one video file per sequence (any format ffmpeg reads).
- ``velodyne``: one folder per sequence of KITTI ``.bin`` scans (directly or in
  ``velodyne_points/data/``), projected to ``data.image_size`` range images while loading
  (:mod:`stdiff.data.velodyne`); then as ``range``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F

from stdiff.data.velodyne import project, read_bin, scan_files

FORMATS = ("range", "velodyne", "frames", "video")
IMAGE_EXT = (".png", ".jpg", ".jpeg")
RANGE_EXT = (".npy", ".png")
VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")


@dataclass(frozen=True)
class FrameRun:
    """One sequence given by its frame files (sorted), for folders that hold several."""

    files: tuple[Path, ...]

    @property
    def name(self) -> str:
        return self.files[0].stem

    def __str__(self) -> str:
        return f"{self.files[0].parent}/{self.files[0].name}..({len(self.files)} frames)"


def range_frame_dir(seq: Path) -> Path:
    nested = seq / "processed" / "range"
    return nested if nested.is_dir() else seq


def list_sequences(root: Path, fmt: str) -> list[Path]:
    """Sequences under ``root``: sub-folders (range/frames) or video files."""
    if fmt not in FORMATS:
        raise ValueError(f"data format {fmt!r} is unknown; use one of {FORMATS}")
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist; set data.root=<folder>")
    if fmt == "video":
        seqs = sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_EXT)
    else:
        seqs = sorted(p for p in root.iterdir() if p.is_dir() and frame_files(p, fmt))
    if not seqs:
        what = "video files" if fmt == "video" else f"sequence folders of {fmt} frames"
        raise FileNotFoundError(f"no {what} found in {root}")
    return seqs


def find_sequences(root: Path, fmt: str) -> list[Path]:
    """Sequence folders anywhere up to two levels below ``root`` (KITTI raw:
    ``<date>/<drive>_sync``), sorted by folder name; video files directly in ``root``."""
    if fmt == "video" or not root.is_dir():
        return list_sequences(root, fmt)
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if frame_files(child, fmt):
            found.append(child)
        else:
            found += [g for g in sorted(child.iterdir()) if g.is_dir() and frame_files(g, fmt)]
    if not found:
        raise FileNotFoundError(
            f"no sequence folders of {fmt} frames in {root} (nor one level deeper); set "
            "data.format or point data.root at the folder of sequences"
        )
    return sorted(found, key=lambda p: (p.name, str(p)))


def frame_files(seq: Path | FrameRun, fmt: str) -> list[Path]:
    if isinstance(seq, FrameRun):
        return list(seq.files)
    if fmt == "velodyne":
        return scan_files(seq)
    if fmt == "range":
        folder, ext = range_frame_dir(seq), RANGE_EXT
    else:  # KITTI raw drives keep the left colour camera in image_02/data
        kitti = seq / "image_02" / "data"
        folder, ext = (kitti if kitti.is_dir() else seq), IMAGE_EXT
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in ext)


def count_frames(seq: Path, fmt: str) -> int:
    """Frames in a sequence without decoding them (a video's frame count from its header)."""
    if fmt != "video":
        return len(frame_files(seq, fmt))
    try:
        return int(iio.improps(seq, plugin="pyav").shape[0])
    except Exception as e:
        raise ValueError(f"cannot read video {seq}: {e}") from e


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    kw = {} if mode == "nearest" else {"antialias": True}
    return F.interpolate(x, size=size, mode=mode, **kw)


def _center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The largest centred crop of [.., h, w] frames with the aspect ratio of ``size``."""
    h, w = x.shape[-2:]
    ch, cw = min(h, round(w * size[0] / size[1])), min(w, round(h * size[1] / size[0]))
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top : top + ch, left : left + cw]


def read_range(path: Path, png_scale: float) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path).astype(np.float32)
        else:
            raw = iio.imread(path)
            if raw.dtype != np.uint16:
                raise ValueError(f"expected a 16-bit PNG, got dtype {raw.dtype}")
            arr = raw.astype(np.float32) / png_scale
    except Exception as e:
        raise ValueError(f"cannot read range image {path}: {e}") from e
    if arr.ndim != 2:
        raise ValueError(f"range image {path} must be 2-D [H, W], got shape {arr.shape}")
    return arr


def load_sequence(
    seq: Path,
    fmt: str,
    size: tuple[int, int],
    channels: int,
    max_range: float = 85.0,
    png_scale: float = 256.0,
    center_crop: bool = False,
) -> torch.Tensor:
    """All frames of one sequence as [T, C, H, W] in [-1, 1] at ``size``. ``center_crop``: frames
    and videos are first cropped, centred, to the aspect ratio of ``size`` (upstream's KTH
    transform: 120 x 160 -> 120 x 120 -> 64 x 64)."""
    if fmt == "velodyne":
        arrs = [project(read_bin(p), *size)[0] for p in frame_files(seq, fmt)]
        x = torch.from_numpy(np.stack(arrs))[:, None]
        return (x.clamp(0, max_range) / max_range * 2 - 1).contiguous()
    if fmt == "range":
        files = frame_files(seq, fmt)
        arrs = [read_range(p, png_scale) for p in files]
        _check_sizes(seq, files, arrs, size)
        x = torch.from_numpy(np.stack(arrs))[:, None]
        x = _resize(x, size, "nearest")  # keeps "no return" pixels exact
        return (x.clamp(0, max_range) / max_range * 2 - 1).contiguous()
    if fmt == "frames":
        files = frame_files(seq, fmt)
        try:
            imgs = [np.asarray(iio.imread(p)) for p in files]
        except Exception as e:
            raise ValueError(f"cannot read frames of {seq}: {e}") from e
    else:
        try:
            imgs = [np.asarray(i) for i in iio.imiter(seq, plugin="pyav")]
        except Exception as e:
            raise ValueError(f"cannot decode video {seq}: {e}") from e
        files = [seq] * len(imgs)
    imgs = [_channels(i, channels, p) for i, p in zip(imgs, files, strict=True)]
    _check_sizes(seq, files, imgs, size, center_crop)
    x = torch.from_numpy(np.stack(imgs))
    x = x.permute(0, 3, 1, 2).float() / 255.0
    if center_crop:
        x = _center_crop(x, size)
    return (_resize(x, size, "bilinear") * 2 - 1).clamp(-1, 1).contiguous()


def _check_sizes(
    seq: Path | FrameRun,
    files: list[Path],
    frames: list[np.ndarray],
    size: tuple[int, int],
    center_crop: bool = False,
) -> None:
    """All frames of a sequence share one size; another aspect ratio than ``data.image_size``'s
    is resized with a warning that names both, unless ``center_crop`` keeps it."""
    if not frames:
        return
    first = frames[0].shape[:2]
    for path, f in zip(files, frames, strict=True):
        if f.shape[:2] != first:
            raise ValueError(
                f"{path} is {f.shape[0]}x{f.shape[1]} but {files[0]} is {first[0]}x{first[1]}: "
                "all frames of a sequence must have one size; resize or remove the odd frames"
            )
    if first[0] * size[1] != first[1] * size[0] and not center_crop:
        warnings.warn(
            f"{seq}: frames are {first[0]}x{first[1]} (HxW), resized to data.image_size="
            f"{size[0]}x{size[1]}; set data.image_size=[{first[0]},{first[1]}] to keep them or "
            "data.center_crop=true to crop them to that aspect ratio first",
            stacklevel=3,
        )


def _channels(img: np.ndarray, channels: int, where: Path) -> np.ndarray:
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] in (2, 4):  # grey + alpha, RGBA
        alpha = img[..., -1]
        if (alpha != np.iinfo(img.dtype).max if img.dtype.kind == "u" else alpha < 1).any():
            raise ValueError(
                f"{where} has transparent pixels (alpha channel); STDiff reads opaque frames: "
                "flatten them onto a background first (e.g. PIL Image.convert('RGB'))"
            )
        img = img[..., :-1]
    if img.shape[-1] == channels:
        return img
    if channels == 1:
        if img.shape[-1] == 3 and not (img == img[..., :1]).all():
            warnings.warn(
                f"{where.parent}: colour frames are averaged to grey because data.channels=1; set "
                "data.channels=3 to train on RGB (the model follows it)",
                stacklevel=3,
            )
        return img.mean(-1, keepdims=True).astype(img.dtype)
    if channels == 3 and img.shape[-1] == 1:
        return np.repeat(img, 3, -1)
    raise ValueError(f"{where}: frames have {img.shape[-1]} channels, config asks for {channels}")


def write_range_sequence(
    seq: Path, frames: np.ndarray, as_png: bool = False, png_scale: float = 256.0
) -> None:
    """Write [T, H, W] ranges in metres as ``<seq>/processed/range/%06d.npy`` (or 16-bit PNG)."""
    folder = seq / "processed" / "range"
    folder.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(frames):
        if as_png:
            iio.imwrite(folder / f"{i:06d}.png", np.clip(r * png_scale, 0, 65535).astype(np.uint16))
        else:
            np.save(folder / f"{i:06d}.npy", r.astype(np.float32))


def write_frame_sequence(seq: Path, frames: np.ndarray) -> None:
    """Write [T, H, W] or [T, H, W, 3] uint8 frames as ``<seq>/%06d.png``."""
    seq.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        iio.imwrite(seq / f"{i:06d}.png", f)
