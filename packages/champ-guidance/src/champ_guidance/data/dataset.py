"""Clip dataset over the on-disk layout and the Lightning DataModule (built-in or user data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from champ_guidance.data.heatmaps import pose_heatmaps
from champ_guidance.data.layout import (
    DataLayoutError,
    VideoRecord,
    index_root,
    read_feature,
    read_guidance_image,
    read_image,
    read_pose,
    read_video,
)
from champ_guidance.data.synthetic import builtin
from motioncore.data import BuiltinData
from motioncore.train import BaseDataModule

BEAT_CHANNEL_EDGE35 = 34  # beat one-hot of the 35-d recipe


def square_crop_box(height: int, width: int) -> tuple[int, int, int]:
    """Centre square crop: (x0, y0, side)."""
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side


def to_square(images: np.ndarray, size: int) -> torch.Tensor:
    """``[..., H, W, 3]`` uint8 -> centre-cropped, resized ``[..., 3, size, size]`` in [-1, 1]."""
    x0, y0, side = square_crop_box(*images.shape[-3:-1])
    x = torch.from_numpy(np.array(images[..., y0 : y0 + side, x0 : x0 + side, :]))
    x = x.movedim(-1, -3).float().div(127.5).sub(1)
    if side != size:
        lead = x.shape[:-3]
        x = F.interpolate(
            x.reshape(-1, 3, side, side),
            size=(size, size),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        ).reshape(*lead, 3, size, size)
    return x


def load_guidance_frame(
    path: Path,
    gtype: str,
    channels: int,
    size: int,
    raw_hw: tuple[int, int],
    sigma: float,
    mask: Path | None = None,
    check_only: bool = False,
) -> torch.Tensor | None:
    """One frame of guidance on the ``size`` grid, by file kind: ``.json`` keypoints -> pose
    heatmaps ``[K+1, size, size]`` (``raw_hw``: the video frame the pixels refer to); ``.npy``
    -> the feature (maps resized); ``.png``/``.jpg`` -> a rendered RGB map in [0, 1], centre
    cropped like the frames. ``check_only`` validates the file without building the tensor."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        kp = read_pose(path, channels - 1)
        return None if check_only else pose_heatmaps(torch.from_numpy(kp), raw_hw, size, sigma)
    if suffix == ".npy":
        x = torch.from_numpy(read_feature(path, channels))
        return None if check_only else _resize_map(x, size)
    if channels != 3:
        raise DataLayoutError(
            f"guidance {gtype!r} is read from images ({path}): set its guidance_input_channels "
            f"entry to 3 (RGB maps), not {channels}"
        )
    if check_only:
        try:
            with Image.open(path) as im:
                im.verify()
        except Exception as e:
            raise DataLayoutError(f"guidance image {path} cannot be read ({e})") from e
        return None
    x = torch.from_numpy(read_guidance_image(path, mask))
    x0, y0, side = square_crop_box(*x.shape[-2:])
    return _resize_map(x[:, y0 : y0 + side, x0 : x0 + side], size)


def _resize_map(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.ndim == 3 and x.shape[-2:] != (size, size):
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    return x


class ClipDataset(Dataset):
    """Windows of ``sequence_length`` frames (every ``frame_stride``-th) with their reference
    image and per-frame guidance.

    Items: ``frames`` [F, 3, R, R] and ``reference`` [3, R, R] in [-1, 1]; ``guidance`` maps a
    type to [F, C, G, G] (pose heatmaps, spatial features) or [F, C] (vector features);
    ``music_beats`` [F] (1 on beat frames, when music guidance is used); ``fps``.
    """

    def __init__(
        self,
        root: str | Path,
        guidance_types: list[str],
        guidance_input_channels: list[int],
        resolution: int,
        guidance_resolution: int,
        sequence_length: int,
        window_stride: int = 1,
        frame_stride: int = 1,
        heatmap_sigma: float = 1.0,
        fps: float = 10.0,
    ):
        if len(guidance_types) != len(guidance_input_channels):
            raise ValueError(
                f"guidance_types {list(guidance_types)} and guidance_input_channels "
                f"{list(guidance_input_channels)} must have the same length (one channel count per type)"
            )
        self.types = list(guidance_types)
        self.channels = dict(zip(self.types, guidance_input_channels, strict=True))
        self.resolution, self.guidance_resolution = resolution, guidance_resolution
        self.length, self.frame_stride, self.sigma = sequence_length, frame_stride, heatmap_sigma
        self.records: list[VideoRecord] = index_root(Path(root), self.types, fps)
        self.validate()
        span = (sequence_length - 1) * frame_stride + 1
        self.windows = [
            (r, start)
            for r, rec in enumerate(self.records)
            for start in range(0, rec.num_frames - span + 1, window_stride)
        ]
        if not self.windows:
            raise DataLayoutError(
                f"no video in {root} has the {span} frames one clip needs (sequence_length="
                f"{sequence_length}, frame_stride={frame_stride}); lower sequence_length"
            )
        self._frames: dict[int, torch.Tensor] = {}
        self._beats: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.windows)

    def validate(self) -> None:
        """Read every guidance file once, so a malformed one fails now, naming the file, and not
        at the training step that first samples it."""
        for rec in self.records:
            for gtype in rec.guidance_files:
                for j in range(rec.num_frames):
                    self._guidance(rec, gtype, j, (1, 1), check_only=True)

    def video_frames(self, r: int) -> torch.Tensor:
        if r not in self._frames:
            rec = self.records[r]
            if rec.video is None:
                frames = np.stack([read_image(p) for p in rec.frame_paths])
            else:
                frames, _ = read_video(rec.video)
            self._frames[r] = to_square(frames, self.resolution).half()
        return self._frames[r]

    def _guidance(
        self, rec: VideoRecord, gtype: str, j: int, raw_hw, check_only: bool = False
    ) -> torch.Tensor | None:
        mask = rec.masks[j] if rec.masks is not None and gtype == "semantic_map" else None
        return load_guidance_frame(
            rec.guidance_files[gtype][j],
            gtype,
            self.channels[gtype],
            self.guidance_resolution,
            raw_hw,
            self.sigma,
            mask,
            check_only,
        )

    def music_beats(self, r: int) -> np.ndarray:
        """Beat frames of the whole track: the beat channel of the 35-d features, else beats
        tracked on the onset-strength channel (0) with librosa."""
        if r not in self._beats:
            rec = self.records[r]
            channels = self.channels["music"]
            rows = [read_feature(path, channels) for path in rec.guidance_files["music"]]
            track = np.stack([row.reshape(channels, -1).mean(-1) for row in rows])
            if channels == 35:
                self._beats[r] = np.flatnonzero(track[:, BEAT_CHANNEL_EDGE35] > 0.5)
            else:
                from champ_guidance.data.music_features import music_beat_frames

                self._beats[r] = music_beat_frames(track[:, 0], rec.fps)
        return self._beats[r]

    def __getitem__(self, i: int) -> dict:
        r, start = self.windows[i]
        rec = self.records[r]
        idx = list(range(start, start + self.length * self.frame_stride, self.frame_stride))
        frames = self.video_frames(r)
        raw_hw = self._raw_hw(r)
        guidance = {}
        for gtype in self.types:
            guidance[gtype] = torch.stack([self._guidance(rec, gtype, j, raw_hw) for j in idx])
        reference = to_square(read_image(rec.reference), self.resolution)
        item = {
            "frames": frames[idx].float(),
            "reference": reference,
            "guidance": guidance,
            "fps": float(rec.fps) / self.frame_stride,
        }
        if "music" in self.types:
            beats = np.zeros(len(idx), dtype=np.float32)
            on_beat = set(self.music_beats(r).tolist())
            beats[[k for k, j in enumerate(idx) if j in on_beat]] = 1.0
            item["music_beats"] = torch.from_numpy(beats)
        return item

    def _raw_hw(self, r: int) -> tuple[int, int]:
        return read_image(self.records[r].reference).shape[:2]


class ChampDataModule(BaseDataModule):
    """Built-in synthetic dances (``train_data_dir: null``) or a user folder in the same layout.

    A user folder either holds ``train/`` and ``test/`` (and optionally ``val/``) layouts, or
    one layout whose last ``holdout_videos`` videos (by name) become val/test.
    """

    def __init__(
        self,
        train_data_dir: str | None,
        synthetic_dir: str,
        guidance_types: list[str],
        guidance_input_channels: list[int],
        resolution: int,
        guidance_resolution: int,
        sequence_length: int,
        eval_sequence_length: int,
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        per_device_batch_size: int | None = None,
        num_workers: int = 0,
        window_stride: int = 1,
        frame_stride: int = 1,
        heatmap_sigma: float = 1.0,
        fps: float = 30.0,
        max_eval_clips: int = 8,
        holdout_videos: int = 1,
        synthetic: dict | None = None,
    ):
        super().__init__(batch_size, num_workers, eval_batch_size, per_device_batch_size)
        self.train_data_dir = train_data_dir
        self.synthetic_dir = Path(synthetic_dir)
        self.synthetic = dict(synthetic or {})
        self.common = dict(
            guidance_types=list(guidance_types),
            guidance_input_channels=list(guidance_input_channels),
            resolution=resolution,
            guidance_resolution=guidance_resolution,
            frame_stride=frame_stride,
            heatmap_sigma=heatmap_sigma,
            fps=fps,
        )
        self.sequence_length, self.eval_sequence_length = sequence_length, eval_sequence_length
        self.window_stride, self.max_eval_clips, self.holdout = (
            window_stride,
            max_eval_clips,
            holdout_videos,
        )

    def builtin_data(self) -> BuiltinData | None:
        if self.train_data_dir is not None:
            return None
        s = self.synthetic
        feature_set = "onset" if self._music_channels() == 1 else "edge35"
        size = self.common["resolution"]
        return builtin(
            self.synthetic_dir / f"{size}px_{feature_set}",
            train_videos=s["train_videos"],
            test_videos=s["test_videos"],
            seed=s["seed"],
            num_frames=s["num_frames"],
            fps=s["fps"],
            size=size,
            feature_set=feature_set,
        )

    def _roots(self) -> dict[str, Path]:
        if self.train_data_dir is None:
            root = self.builtin_root()
            return {"train": root / "train", "test": root / "test"}
        root = Path(self.train_data_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"train_data_dir={root} does not exist")
        if (root / "train").is_dir() and (root / "test").is_dir():
            return {"train": root / "train", "test": root / "test"}
        return {"train": root, "test": root}

    def _music_channels(self) -> int:
        ch = dict(
            zip(self.common["guidance_types"], self.common["guidance_input_channels"], strict=True)
        )
        return ch.get("music", 35)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        roots = self._roots()
        self.train_set = ClipDataset(
            roots["train"],
            sequence_length=self.sequence_length,
            window_stride=self.window_stride,
            **self.common,
        )
        self.test_set = ClipDataset(
            roots["test"],
            sequence_length=self.eval_sequence_length,
            window_stride=self.eval_sequence_length,
            **self.common,
        )
        if roots["train"] == roots["test"]:
            self._hold_out()
        # Spread the evaluated clips over the test videos rather than taking one video's start.
        windows = self.test_set.windows
        step = max(1, len(windows) // self.max_eval_clips)
        self.test_set.windows = windows[::step][: self.max_eval_clips]
        self.val_set = self.test_set

    def _hold_out(self) -> None:
        """Split one folder by video: the last ``holdout_videos`` are val/test only."""
        names = [r.name for r in self.train_set.records]
        if len(names) <= self.holdout:
            raise DataLayoutError(
                f"{self.train_data_dir} has {len(names)} videos; holding out {self.holdout} for "
                "evaluation leaves none to train on (add videos or train/ and test/ subfolders)"
            )
        held = set(names[-self.holdout :])
        self.train_set.windows = [
            w for w in self.train_set.windows if self.train_set.records[w[0]].name not in held
        ]
        self.test_set.windows = [
            w for w in self.test_set.windows if self.test_set.records[w[0]].name in held
        ]
