"""Upstream's folder layouts (KTH, BAIR, Cityscapes, KITTI drives) load from data.root alone."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from stdiff.data.datamodule import VideoDataModule
from stdiff.data.formats import load_sequence, write_frame_sequence
from stdiff.data.layouts import detect, split_sequences


def _frames(n: int, h: int = 12, w: int = 16, value: int = 0) -> np.ndarray:
    return np.full((n, h, w, 3), value, np.uint8)


def _kth(root: Path) -> None:
    for action in ("boxing", "walking_no_empty", "walking"):
        (root / action).mkdir(parents=True)
        (root / action / "person01_x_uncomp.avi").write_bytes(b"")  # upstream skips the videos
    for person in (1, 2, 5, 17, 25):
        write_frame_sequence(root / "boxing" / f"person{person:02d}_boxing_d1", _frames(8))
        write_frame_sequence(
            root / "walking_no_empty" / f"person{person:02d}_walking_d2", _frames(8)
        )
    write_frame_sequence(root / "walking" / "person03_walking_d1", _frames(8))  # not _no_empty


def test_kth_splits_by_person(tmp_path):
    _kth(tmp_path)
    assert detect(tmp_path, "frames") == "kth"
    names = {
        s: [p.name for p in split_sequences(tmp_path, s, "frames")]
        for s in ("train", "val", "test")
    }
    assert names["train"] == [
        "person01_boxing_d1", "person02_boxing_d1", "person01_walking_d2", "person02_walking_d2"
    ]  # fmt: skip
    assert names["val"] == ["person05_boxing_d1", "person05_walking_d2"]
    assert len(names["test"]) == 4 and all(n[6:8] in ("17", "25") for n in names["test"])


def test_kth_trains_from_root_with_center_crop(tmp_path):
    _kth(tmp_path)
    dm = VideoDataModule(str(tmp_path), image_size=[8, 8], channels=3, To=2, Tp=2, rand_Tp=1,
                         center_crop=True, batch_size=2)  # fmt: skip
    dm.setup()
    # 8-frame sequences: train clips start at every frame (5 each), eval clips do not overlap
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (20, 4, 8)
    batch = next(iter(dm.train_dataloader()))
    assert batch["vo"].shape == (2, 2, 3, 8, 8) and batch["vp"].shape == (2, 1, 3, 8, 8)


def test_center_crop_keeps_the_middle(tmp_path):
    f = np.zeros((1, 4, 8, 3), np.uint8)
    f[:, :, 2:6] = 255  # a bright centre square between dark side bands
    write_frame_sequence(tmp_path / "s", f)
    x = load_sequence(tmp_path / "s", "frames", (4, 4), 1, center_crop=True)
    assert torch.equal(x, torch.ones_like(x))
    with pytest.warns(UserWarning, match="center_crop"):
        squashed = load_sequence(tmp_path / "s", "frames", (4, 4), 1)
    assert squashed.min() < 0


def test_bair_train_test_gets_a_seeded_val_split(tmp_path):
    for i in range(40):
        write_frame_sequence(tmp_path / "train" / f"example_{i}", _frames(3, 8, 8))
    for i in range(2):
        write_frame_sequence(tmp_path / "test" / f"example_{i}", _frames(3, 8, 8))
    assert detect(tmp_path, "frames") == "split_folders"
    train, val, test = (split_sequences(tmp_path, s, "frames") for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (38, 2, 2)
    assert not set(train) & set(val)
    assert val == split_sequences(tmp_path, "val", "frames")  # the same draw every time
    dm = VideoDataModule(str(tmp_path), image_size=[8, 8], To=1, Tp=2)
    dm.setup("validate")
    assert len(dm.val_set) == 2


def _cityscapes(base: Path) -> None:
    for split, city in (("train", "aachen"), ("val", "lindau"), ("test", "berlin")):
        folder = base / "leftImg8bit_sequence" / split / city
        folder.mkdir(parents=True)
        # sequence 000000: frames 0-5 and 10-13 (two runs); sequence 000001: frames 0-3
        runs = [(0, range(6)), (0, range(10, 14)), (1, range(4))]
        for seq, frames in runs:
            for f in frames:
                value = 40 * seq + f
                name = f"{city}_{seq:06d}_{f:06d}_leftImg8bit.png"
                iio.imwrite(folder / name, _frames(1, 8, 8, value)[0])


def test_cityscapes_sequences_are_consecutive_frame_runs(tmp_path):
    _cityscapes(tmp_path)
    assert detect(tmp_path, "frames") == "cityscapes"
    runs = split_sequences(tmp_path, "train", "frames")
    assert [len(r.files) for r in runs] == [6, 4, 4]
    assert [r.name for r in runs] == [
        "aachen_000000_000000_leftImg8bit", "aachen_000000_000010_leftImg8bit",
        "aachen_000001_000000_leftImg8bit",
    ]  # fmt: skip
    x = load_sequence(runs[1], "frames", (8, 8), 1)
    expected = torch.tensor([10.0, 11, 12, 13]) / 255 * 2 - 1
    assert torch.allclose(x[:, 0, 0, 0], expected)
    # data.root may be the leftImg8bit_sequence folder itself
    assert (
        split_sequences(tmp_path / "leftImg8bit_sequence", "test", "frames")[0].files[0].parent.name
        == "berlin"
    )


def test_cityscapes_clips_never_cross_runs(tmp_path):
    _cityscapes(tmp_path)
    dm = VideoDataModule(str(tmp_path), image_size=[8, 8], To=2, Tp=2, batch_size=1)
    dm.setup()
    # train clips of 4 frames: 3 in the 6-frame run, 1 in each 4-frame run; val/test: 1+1+1
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (5, 3, 3)
    for item in (dm.train_set[i] for i in range(len(dm.train_set))):
        frames = torch.cat([item["vo"], item["vp"]])[:, 0, 0, 0]
        steps = ((frames[1:] - frames[:-1]) * 255 / 2).round()
        assert torch.equal(steps, torch.ones(3))


def test_kitti_drives_split_by_upstream_ids(tmp_path):
    for d in range(16):
        write_frame_sequence(
            tmp_path / "2011_09_26" / f"2011_09_26_drive_{d:04d}_sync", _frames(3, 8, 8)
        )
    assert detect(tmp_path, "frames") == "drives"
    names = {
        s: [p.name[-9:-5] for p in split_sequences(tmp_path, s, "frames")]
        for s in ("train", "val", "test")
    }
    assert names["test"] == ["0010", "0011", "0012", "0013"]
    assert names["val"] == ["0000", "0001"]
    assert names["train"] == [
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
        "0008",
        "0009",
        "0014",
        "0015",
    ]


def test_wrong_layout_or_format_is_named(tmp_path):
    _kth(tmp_path)
    with pytest.raises(ValueError, match="data.layout='kitti' is unknown"):
        split_sequences(tmp_path, "train", "frames", layout="kitti")
    with pytest.raises(ValueError, match="data.format=frames"):
        split_sequences(tmp_path, "train", "range", layout="kth")
    with pytest.raises(FileNotFoundError, match="leftImg8bit"):
        split_sequences(tmp_path, "train", "frames", layout="cityscapes")
