"""DataModule over range-image folders, frame folders or video files (built-in data generated once).

``root`` holds sequences in one of the layouts of :mod:`stdiff.data.layouts` (split folders,
upstream's KTH, BAIR, Cityscapes and KITTI layouts). With a ``generator``
(a synthetic data writer) the folders are written once by ``prepare_data`` and reused while
the generator's settings are unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path

from motioncore.data import BuiltinData
from motioncore.train import BaseDataModule
from stdiff.data.clips import ClipDataset
from stdiff.data.formats import FrameRun
from stdiff.data.layouts import split_sequences

log = logging.getLogger(__name__)


class VideoDataModule(BaseDataModule):
    """Args:
    root: data folder in one of the layouts of :mod:`stdiff.data.layouts`: train/ val/ test/
        sequence folders (or video files), KTH action folders, BAIR train/ test/, Cityscapes
        leftImg8bit_sequence, KITTI drives. layout: ``auto`` (detected) or one of those names.
    format: ``range``, ``frames`` or ``video`` (see stdiff.data.formats).
    image_size: [H, W] frames are resized to. channels: 1 (grey/range) or 3 (RGB).
    To, Tp: observed and predicted frames in training; rand_Tp: future frames drawn per clip.
    test_Tp: predicted frames in val/test (long horizons are rolled out chunk by chunk).
    generator: synthetic data writer (``write(root)``): ``prepare_data`` writes its output to
        ``root`` once and again whenever one of its settings changes.
    max_sequences: cap on sequences per split (quick runs and tests); null keeps all.
    split_ids: layout ``drives``: the sequences found under ``root`` (sorted by name) are split
        by index: ``{"test": [...], "val": [...]}``, the rest train. Default: upstream's KITTI
        split (test = drives 10-13, val = the first two others) when there are more than 13
        sequences, else the last one is test and the one before val.
    center_crop: crop frames, centred, to the aspect ratio of ``image_size`` before resizing
        (upstream's KTH transform; Cityscapes and KITTI frames were cropped offline upstream).
    """

    def __init__(
        self,
        root: str,
        format: str = "frames",
        image_size: list[int] = (64, 64),
        channels: int = 1,
        To: int = 3,
        Tp: int = 3,
        rand_Tp: int | None = None,
        test_Tp: int | None = None,
        train_stride: int = 1,
        generator=None,
        max_range: float = 85.0,
        png_scale: float = 256.0,
        max_sequences: int | None = None,
        split_ids: dict | None = None,
        layout: str = "auto",
        center_crop: bool = False,
        batch_size: int = 8,
        num_workers: int = 0,
        eval_batch_size: int | None = None,
        per_device_batch_size: int | None = None,
    ):
        super().__init__(batch_size, num_workers, eval_batch_size, per_device_batch_size)
        self.root = Path(root)
        self.format = format
        self.image_size = tuple(image_size)
        self.channels, self.To, self.Tp, self.rand_Tp = channels, To, Tp, rand_Tp
        self.test_Tp = test_Tp or Tp
        self.train_stride, self.generator = train_stride, generator
        self.max_range, self.png_scale, self.max_sequences = max_range, png_scale, max_sequences
        self.split_ids = dict(split_ids or {})
        self.layout, self.center_crop = layout, center_crop

    def builtin_data(self) -> BuiltinData | None:
        """The generator's output at ``root``, rebuilt when any generator setting changes."""
        if self.generator is None:
            return None
        gen = type(self.generator)
        spec = {"generator": f"{gen.__module__}.{gen.__qualname__}", **vars(self.generator)}
        return BuiltinData(self.root, spec, self.generator.write, replaces=(".complete",))

    def sequences(self, split: str) -> list[Path | FrameRun]:
        seqs = split_sequences(self.root, split, self.format, self.layout, self.split_ids)
        return seqs[: self.max_sequences] if self.max_sequences else seqs

    def dataset(self, split: str) -> ClipDataset:
        train = split == "train"
        tp = self.Tp if train else self.test_Tp
        return ClipDataset(
            self.sequences(split),
            self.format,
            self.To,
            tp,
            self.image_size,
            self.channels,
            rand_Tp=self.rand_Tp if train else None,
            stride=self.train_stride if train else None,
            max_range=self.max_range,
            png_scale=self.png_scale,
            center_crop=self.center_crop,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.generator is not None:
            self.builtin_root()
        if stage in (None, "fit"):
            self.train_set = self.dataset("train")
        if stage in (None, "fit", "validate"):
            self.val_set = self.dataset("val")
        if stage in (None, "test"):
            self.test_set = self.dataset("test")
