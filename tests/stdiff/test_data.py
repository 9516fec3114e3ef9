"""Built-in data generators and the real-format loaders (range images, frames, videos)."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from stdiff.data.clips import ClipDataset
from stdiff.data.datamodule import VideoDataModule
from stdiff.data.formats import list_sequences, load_sequence, write_range_sequence
from stdiff.data.moving_shapes import MovingShapesGenerator
from stdiff.data.street_lidar import StreetLidarGenerator, cast, ray_directions


def _tree(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_moving_shapes_are_deterministic_and_move(tmp_path):
    gen = MovingShapesGenerator({"train": 2, "test": 1}, length=6, seed=3)
    gen.write(tmp_path / "a")
    gen.write(tmp_path / "b")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    frames = load_sequence(tmp_path / "a/train/seq_00000", "frames", (64, 64), 1)
    assert frames.shape == (6, 1, 64, 64) and frames.min() == -1 and frames.max() > 0
    assert (frames[1:] - frames[:-1]).abs().mean() > 0.01  # glyphs move every frame
    other = MovingShapesGenerator({"train": 2, "test": 1}, length=6, seed=4).sequence(
        np.random.default_rng([4, 1, 0])
    )
    assert not np.array_equal(other, iio.imread(tmp_path / "a/train/seq_00000/000000.png"))


def test_street_lidar_is_deterministic_and_geometric(tmp_path):
    gen = StreetLidarGenerator({"test": 1}, length=2, height=16, width=64, seed=1)
    gen.write(tmp_path / "a")
    gen.write(tmp_path / "b")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    r = np.load(tmp_path / "a/test/seq_00000/processed/range/000001.npy")
    assert r.shape == (16, 64) and r.max() <= 80.1 and (r > 0).mean() > 0.5
    # a downward ray over empty ground returns height / sin(depression angle)
    dirs = ray_directions(4, 8, fov_up=-10.0, fov_down=-30.0).reshape(-1, 3)
    empty = np.zeros((0, 3), np.float32)
    got = cast(np.array([0, 0, 1.73], np.float32), dirs, empty, empty, 80.0)
    expect = 1.73 / -dirs[:, 2]
    np.testing.assert_allclose(got, expect, rtol=1e-5)


def test_range_loader_reads_npy_and_16bit_png(tmp_path):
    metres = np.array([[[0.0, 10.0], [42.5, 85.0]]] * 3, np.float32)
    write_range_sequence(tmp_path / "npy" / "seq", metres)
    write_range_sequence(tmp_path / "png" / "seq", metres, as_png=True)
    for fmt_root in ("npy", "png"):
        (seq,) = list_sequences(tmp_path / fmt_root, "range")
        x = load_sequence(seq, "range", (2, 2), 1, max_range=85.0)
        assert x.shape == (3, 1, 2, 2)
        torch.testing.assert_close(
            x[0, 0], torch.tensor([[-1.0, 10 / 42.5 - 1], [0.0, 1.0]]), atol=1e-3, rtol=0
        )
    flat = tmp_path / "flat" / "seq"
    flat.mkdir(parents=True)
    np.save(flat / "000000.npy", metres[0])
    assert load_sequence(flat, "range", (2, 2), 1).shape == (1, 1, 2, 2)


def test_frame_folders_and_video_files_load(tmp_path):
    frames = (np.arange(5)[:, None, None, None] * 40 + np.zeros((5, 8, 8, 3))).astype(np.uint8)
    seq = tmp_path / "frames" / "clip"
    seq.mkdir(parents=True)
    for i, f in enumerate(frames):
        iio.imwrite(seq / f"{i:03d}.png", f)
    x = load_sequence(seq, "frames", (8, 8), 3)
    assert x.shape == (5, 3, 8, 8)
    torch.testing.assert_close(x[:, 0, 0, 0], torch.tensor([0, 40, 80, 120, 160]) / 127.5 - 1)
    video_dir = tmp_path / "videos"
    video_dir.mkdir()
    big = np.repeat(np.repeat(frames, 4, 1), 4, 2)
    iio.imwrite(video_dir / "clip.mp4", big, plugin="pyav", codec="libx264", fps=10)
    (vid,) = list_sequences(video_dir, "video")
    v = load_sequence(vid, "video", (8, 8), 1)
    assert v.shape == (5, 1, 8, 8)
    assert (v[1:, 0, 4, 4] > v[:-1, 0, 4, 4]).all()  # brightness ramps up as written


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.root"):
        list_sequences(tmp_path / "missing", "frames")
    with pytest.raises(ValueError, match="unknown"):
        list_sequences(tmp_path, "lidar")
    seq = tmp_path / "r" / "seq"
    seq.mkdir(parents=True)
    (seq / "000000.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match="cannot read range image"):
        load_sequence(seq, "range", (2, 2), 1)
    gen = MovingShapesGenerator({"train": 1}, length=4)
    gen.write(tmp_path / "short")
    with pytest.raises(ValueError, match="no clip"):
        ClipDataset(list_sequences(tmp_path / "short/train", "frames"), "frames", 3, 3, (64, 64), 1)
    with pytest.raises(FileNotFoundError, match="must also contain test/"):
        VideoDataModule(str(tmp_path / "short")).setup("test")


def test_clips_draw_random_sorted_subsets_per_item(tmp_path):
    MovingShapesGenerator({"train": 1}, length=12, seed=0).write(tmp_path)
    seqs = list_sequences(tmp_path / "train", "frames")
    ds = ClipDataset(seqs, "frames", 3, 5, (32, 32), 1, rand_Tp=2, stride=1)
    assert len(ds) == 12 - 8 + 1
    torch.manual_seed(0)
    picks = {tuple(ds[0]["idx_p"].tolist()) for _ in range(30)}
    assert len(picks) > 3  # every item draws its own subset
    for p in picks:
        assert list(p) == sorted(p) and len(p) == 2 and all(3 <= t < 8 for t in p)
    item = ds[1]
    full = load_sequence(seqs[0], "frames", (32, 32), 1)
    torch.testing.assert_close(item["vo"], full[1:4])
    torch.testing.assert_close(item["vp"], full[1 + item["idx_p"].long()])
    test = ClipDataset(seqs, "frames", 3, 5, (32, 32), 1)
    assert len(test) == 1 and test[0]["idx_p"].tolist() == [3, 4, 5, 6, 7]


def test_datamodule_writes_builtin_data_once(tmp_path):
    gen = MovingShapesGenerator({"train": 2, "val": 1, "test": 1}, length=8)
    dm = VideoDataModule(
        str(tmp_path / "d"),
        image_size=[32, 32],
        To=2,
        Tp=3,
        rand_Tp=2,
        test_Tp=6,
        generator=gen,
        batch_size=2,
    )
    dm.prepare_data()
    dm.setup()
    stamp = (tmp_path / "d/.build.json").stat().st_mtime_ns
    dm.prepare_data()
    dm.setup()
    assert (tmp_path / "d/.build.json").stat().st_mtime_ns == stamp
    batch = next(iter(dm.train_dataloader()))
    assert batch["vo"].shape == (2, 2, 1, 32, 32) and batch["vp"].shape == (2, 2, 1, 32, 32)
    assert dm.test_set[0]["vp"].shape[0] == 6


def test_builtin_data_is_rebuilt_when_a_generator_setting_changes(tmp_path):
    """A cache of 2 training clips is not reused when 3 are asked for, nor for another seed."""
    root = tmp_path / "d"

    def prepare(train: int, seed: int) -> list[bytes]:
        gen = MovingShapesGenerator(
            {"train": train, "val": 1, "test": 1}, length=6, size=16, glyph_size=4, seed=seed
        )
        VideoDataModule(str(root), image_size=[16, 16], generator=gen).prepare_data()
        assert len(list((root / "train").iterdir())) == train
        return [p.read_bytes() for p in sorted((root / "train/seq_00000").iterdir())]

    first = prepare(2, seed=0)
    assert prepare(3, seed=0) == first
    assert prepare(3, seed=1) != first
