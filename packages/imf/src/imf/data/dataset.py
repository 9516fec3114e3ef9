"""(reference, current) frame pairs drawn within clips, and the IMF DataModule."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from imf.data.synthetic import SyntheticSpec, builtin
from imf.data.video_io import find_clips, read_clip
from motioncore.data import BuiltinData
from motioncore.train import BaseDataModule

log = logging.getLogger(__name__)


def to_model_frames(frames: np.ndarray | torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> float ``[T, 3, S, S]`` in [-1, 1]: centre square crop, then an
    anti-aliased bilinear resize to ``image_size``."""
    frames = torch.as_tensor(np.asarray(frames))
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected [T, H, W, 3] frames, got {tuple(frames.shape)}")
    x = frames.permute(0, 3, 1, 2).float() / 127.5 - 1
    height, width = x.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    x = x[..., top : top + side, left : left + side]
    if side != image_size:
        x = F.interpolate(
            x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
        )
    return x.clamp(-1, 1)


class ClipPairs(Dataset):
    """Pairs ``(x_r, x_c)`` from the same clip.

    Each clip is read once (video file or frame folder), resized to ``image_size`` and
    sub-sampled with ``frame_skip`` (keep every ``frame_skip``-th frame; 1 keeps all).
    Training (``train=True``): ``pairs_per_clip`` random pairs per clip and epoch, reference
    and current drawn independently (uniform within the clip). Evaluation: the first kept frame
    is the reference (the codec setting) and ``pairs_per_clip`` current frames evenly spaced
    over the rest of the clip (all of them when the clip is shorter).
    """

    def __init__(
        self,
        clips: list[Path],
        image_size: int,
        frame_skip: int = 1,
        pairs_per_clip: int = 8,
        train: bool = True,
    ):
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1 (1 keeps every frame), got {frame_skip}")
        if not clips:
            raise ValueError("ClipPairs needs at least one clip")
        self.train, self.pairs_per_clip = train, pairs_per_clip
        self.clips = []
        for path in clips:
            frames = to_model_frames(read_clip(path)[::frame_skip], image_size)
            if len(frames) < 2:
                raise ValueError(
                    f"{path} has {len(frames)} frame(s) after frame_skip={frame_skip}; need 2"
                )
            self.clips.append(frames)
        self.paths = list(clips)
        self.index = (
            []
            if train
            else [
                (c, int(t))
                for c, frames in enumerate(self.clips)
                for t in np.unique(
                    np.linspace(1, len(frames) - 1, min(pairs_per_clip, len(frames) - 1)).round()
                )
            ]
        )

    def __len__(self) -> int:
        return len(self.clips) * self.pairs_per_clip if self.train else len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        if self.train:
            clip = item % len(self.clips)
            reference, current = torch.randint(len(self.clips[clip]), (2,)).tolist()
        else:
            clip, current = self.index[item]
            reference = 0
        frames = self.clips[clip]
        return {
            "reference": frames[reference],
            "current": frames[current],
            "clip": torch.tensor(clip),
            "frame": torch.tensor(current),
        }


class IMFDataModule(BaseDataModule):
    """Built-in synthetic clips (``root: null``) or a real folder of clips.

    A real ``root`` holds ``train/``, ``val/`` and ``test/`` sub-folders of mp4 files or frame
    folders; without them, the sorted clips under ``root`` are split by ``val_clips`` and
    ``test_clips`` (the last clips go to test, the ones before to val).
    """

    def __init__(
        self,
        root: str | None = None,
        data_dir: str = "data",
        image_size: int = 64,
        frame_skip: int = 1,
        pairs_per_clip: int = 8,
        eval_pairs_per_clip: int = 8,
        val_clips: int = 2,
        test_clips: int = 4,
        synthetic: dict | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        eval_batch_size: int | None = None,
        per_device_batch_size: int | None = None,
    ):
        super().__init__(batch_size, num_workers, eval_batch_size, per_device_batch_size)
        self.root, self.data_dir, self.image_size = root, data_dir, image_size
        self.frame_skip, self.pairs_per_clip = frame_skip, pairs_per_clip
        self.eval_pairs_per_clip = eval_pairs_per_clip
        self.val_clips, self.test_clips = val_clips, test_clips
        self.synthetic = SyntheticSpec(**(synthetic or {}))

    def builtin_data(self) -> BuiltinData | None:
        return (
            None if self.root is not None else builtin(Path(self.data_dir) / "imf", self.synthetic)
        )

    def split_paths(self) -> dict[str, list[Path]]:
        root = self.builtin_root() if self.root is None else Path(self.root)
        if all((root / s).is_dir() for s in ("train", "val", "test")):
            return {s: find_clips(root / s) for s in ("train", "val", "test")}
        clips = find_clips(root)
        if len(clips) <= self.val_clips + self.test_clips:
            raise ValueError(
                f"{root} has {len(clips)} clips, not enough for data.val_clips={self.val_clips} + "
                f"data.test_clips={self.test_clips} + training; add clips or lower those counts"
            )
        test_start = len(clips) - self.test_clips
        val_start = test_start - self.val_clips
        return {
            "train": clips[:val_start],
            "val": clips[val_start:test_start],
            "test": clips[test_start:],
        }

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        paths = self.split_paths()
        pairs = dict(image_size=self.image_size, frame_skip=self.frame_skip)
        self.train_set = ClipPairs(
            paths["train"], pairs_per_clip=self.pairs_per_clip, train=True, **pairs
        )
        self.val_set = ClipPairs(
            paths["val"], pairs_per_clip=self.eval_pairs_per_clip, train=False, **pairs
        )
        self.test_set = ClipPairs(
            paths["test"], pairs_per_clip=self.eval_pairs_per_clip, train=False, **pairs
        )
        log.info(
            "IMF data: %d/%d/%d clips", len(paths["train"]), len(paths["val"]), len(paths["test"])
        )
