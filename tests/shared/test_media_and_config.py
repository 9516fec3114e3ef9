from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from omegaconf import MISSING, OmegaConf

from motioncore.media import read_video, to_uint8, write_video
from motioncore.train import plain
from motioncore.train.config import checked


def test_to_uint8_maps_range_and_moves_channels():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 2, 2).expand(2, 3, 2, 2)
    out = to_uint8(x)
    assert out.shape == (2, 2, 2, 3) and out.dtype == np.uint8
    assert out[0, :, :, 0].tolist() == [[0, 128], [255, 255]]
    assert to_uint8(x[:, :1]).shape == (2, 2, 2)  # grayscale squeezed


@pytest.mark.parametrize("pixelformat", ["yuv420p", "yuv444p"])
def test_mp4_round_trip_is_near_lossless(tmp_path, pixelformat):
    rng = np.random.default_rng(0)
    frames = np.repeat(np.repeat(rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8), 4, 1), 4, 2)
    path = write_video(tmp_path / "a.mp4", frames, fps=10, pixelformat=pixelformat)
    back, fps = read_video(path)
    assert back.shape == frames.shape and fps == 10
    assert np.abs(back.astype(int) - frames).mean() < 8


def test_video_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="bad.mp4.*re-encode"):
        read_video(bad)
    with pytest.raises(ValueError, match="even frame sizes"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 5, 4, 3), np.uint8), fps=10)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.mp4", np.zeros((2, 4, 4, 3)), fps=10)


def test_plain_resolves_configs_and_passes_other_values():
    cfg = OmegaConf.create({"a": 1, "b": "${a}", "c": [1, 2]})
    assert plain(cfg) == {"a": 1, "b": 1, "c": [1, 2]}
    assert plain(cfg.c) == [1, 2] and plain(3) == 3


@dataclass
class _Inner:
    steps: int = 10


@dataclass
class _Schema:
    name: str = MISSING
    inner: _Inner = field(default_factory=_Inner)


def test_checked_fills_defaults_and_names_bad_keys():
    out = checked(_Schema, {"name": "a", "inner": {"steps": "3"}}, "model")
    assert out == _Schema(name="a", inner=_Inner(steps=3))
    with pytest.raises(ValueError, match=r"model\.inner\.stpes.*valid keys: \['steps'\]"):
        checked(_Schema, {"name": "a", "inner": {"stpes": 3}}, "model")
    with pytest.raises(ValueError, match=r"model\.inner\.steps"):
        checked(_Schema, {"name": "a", "inner": {"steps": "many"}}, "model")
    with pytest.raises(ValueError, match=r"model\.name"):
        checked(_Schema, {}, "model")
