"""Clip datasets over sequences of frames: observed frames, future frames and their times."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch.utils.data import Dataset

from stdiff.data.formats import FrameRun, count_frames, load_sequence


class ClipDataset(Dataset):
    """Clips of ``To + Tp`` consecutive frames; each item is a dict with

    - ``vo`` [To, C, H, W], ``idx_o`` [To] (frame times 0..To-1),
    - ``vp`` [K, C, H, W], ``idx_p`` [K] (absolute times To..To+Tp-1),

    where ``K = rand_Tp`` random sorted future frames are drawn independently for every item when
    ``rand_Tp`` is set (continuous-time training; upstream drew one subset per batch), else all Tp.
    Train clips start every ``stride`` frames; evaluation clips do not overlap (``stride = To+Tp``).
    """

    def __init__(
        self,
        sequences: list[Path | FrameRun],
        fmt: str,
        To: int,
        Tp: int,
        size: tuple[int, int],
        channels: int,
        rand_Tp: int | None = None,
        stride: int | None = None,
        max_range: float = 85.0,
        png_scale: float = 256.0,
        center_crop: bool = False,
    ):
        if To < 1 or Tp < 1:
            raise ValueError(f"To and Tp must be >= 1, got To={To}, Tp={Tp}")
        if rand_Tp is not None and not 1 <= rand_Tp <= Tp:
            raise ValueError(f"rand_Tp={rand_Tp} must lie in [1, Tp={Tp}]")
        self.fmt, self.To, self.Tp, self.rand_Tp = fmt, To, Tp, rand_Tp
        self.size, self.channels = tuple(size), channels
        self.max_range, self.png_scale, self.center_crop = max_range, png_scale, center_crop
        self.sequences = list(sequences)
        stride = stride or To + Tp
        self.index: list[tuple[int, int]] = []
        for s, seq in enumerate(self.sequences):
            n = count_frames(seq, fmt)
            self.index += [(s, start) for start in range(0, n - To - Tp + 1, stride)]
        if not self.index:
            raise ValueError(
                f"no clip of To+Tp={To + Tp} frames fits in the {len(self.sequences)} sequences "
                f"(e.g. {self.sequences[:1]}); use shorter clips or longer sequences"
            )

    @functools.lru_cache(maxsize=512)  # noqa: B019  (datasets live as long as the run)
    def _frames(self, s: int) -> torch.Tensor:
        return load_sequence(
            self.sequences[s],
            self.fmt,
            self.size,
            self.channels,
            self.max_range,
            self.png_scale,
            self.center_crop,
        )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, start = self.index[i]
        clip = self._frames(s)[start : start + self.To + self.Tp]
        times = torch.arange(self.To + self.Tp, dtype=torch.float32)
        pick = torch.arange(self.Tp)
        if self.rand_Tp is not None and self.rand_Tp < self.Tp:
            pick = torch.randperm(self.Tp)[: self.rand_Tp].sort().values
        pick = pick + self.To
        return {
            "vo": clip[: self.To],
            "idx_o": times[: self.To],
            "vp": clip[pick],
            "idx_p": times[pick],
        }
