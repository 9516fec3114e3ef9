"""Synthetic generator determinism and caching, real-format loaders, pairs and bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from imf.data import (
    ClipPairs,
    IMFDataModule,
    SyntheticSpec,
    find_clips,
    generate,
    read_clip,
    render_clip,
    to_model_frames,
)
from motioncore.media import read_video, to_uint8, write_video

SPEC = SyntheticSpec(image_size=32, frames=6, train_clips=2, val_clips=1, test_clips=1, sprites=1)


def test_render_is_deterministic_and_moves():
    a = render_clip(SPEC, np.random.default_rng(3))
    b = render_clip(SPEC, np.random.default_rng(3))
    c = render_clip(SPEC, np.random.default_rng(4))
    assert a.shape == (6, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # Frames differ from the first one (motion), by a visible amount.
    assert np.abs(a[1:].astype(int) - a[0]).mean() > 2


def test_generate_writes_mp4_splits_once(tmp_path):
    folder = generate(tmp_path, SPEC)
    clips = {s: find_clips(folder / s) for s in ("train", "val", "test")}
    assert [len(clips[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    frames, fps = read_video(clips["train"][0])
    assert frames.shape == (6, 32, 32, 3) and fps == pytest.approx(SPEC.fps)
    expected = render_clip(SPEC, np.random.default_rng([SPEC.seed, 0, 0]))
    assert np.abs(frames.astype(int) - expected).mean() < 6  # H.264 at CRF 12
    stamp = clips["train"][0].stat().st_mtime_ns
    assert generate(tmp_path, SPEC) == folder
    assert clips["train"][0].stat().st_mtime_ns == stamp  # cached, not regenerated


def test_builtin_clips_are_rebuilt_when_a_knob_outside_the_folder_name_changes(tmp_path):
    """``sprites`` is not in the folder name: the marker still tells the builds apart."""
    folder = generate(tmp_path, SPEC)
    first = (folder / "train/clip_0000.mp4").read_bytes()
    other = dataclasses.replace(SPEC, sprites=SPEC.sprites + 1)
    assert generate(tmp_path, other) == folder
    assert (folder / "train/clip_0000.mp4").read_bytes() != first


def test_video_and_frame_folder_loaders_agree(tmp_path):
    frames = render_clip(SPEC, np.random.default_rng(0))
    write_video(tmp_path / "clip.mp4", frames, fps=10)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")
    from_png = read_clip(folder)
    assert np.array_equal(from_png, frames)
    from_mp4 = read_clip(tmp_path / "clip.mp4")
    assert from_mp4.shape == frames.shape
    assert [p.name for p in find_clips(tmp_path)] == ["clip.mp4", "frames"]


def test_model_frames_round_trip_and_resize():
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)
    x = to_model_frames(frames, 40)
    assert x.shape == (3, 3, 40, 40) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(to_uint8(x), frames[:, :, 4:44])  # centre square crop, no resize
    assert to_model_frames(frames, 16).shape == (3, 3, 16, 16)


def test_pairs_respect_frame_skip_and_clip(tmp_path):
    frames = np.stack([np.full((16, 16, 3), 10 * i, np.uint8) for i in range(9)])
    folder = tmp_path / "clip"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    evaluation = ClipPairs([folder], image_size=16, frame_skip=4, pairs_per_clip=8, train=False)
    assert len(evaluation.clips[0]) == 3  # frames 0, 4, 8
    values = sorted(
        int(to_uint8(evaluation[i]["current"][None])[0, 0, 0, 0]) for i in range(len(evaluation))
    )
    assert values == [40, 80]
    assert all(int(to_uint8(evaluation[i]["reference"][None])[0, 0, 0, 0]) == 0 for i in range(2))
    train = ClipPairs([folder], image_size=16, frame_skip=4, pairs_per_clip=5, train=True)
    assert len(train) == 5
    seen = {int(to_uint8(train[i]["current"][None])[0, 0, 0, 0]) for i in range(50)}
    assert seen <= {0, 40, 80} and len(seen) > 1


def test_datamodule_splits_a_flat_real_folder(tmp_path):
    for i in range(4):
        write_video(tmp_path / f"v{i}.mp4", render_clip(SPEC, np.random.default_rng(i)), fps=8)
    dm = IMFDataModule(
        root=str(tmp_path),
        image_size=32,
        val_clips=1,
        test_clips=1,
        batch_size=2,
        eval_pairs_per_clip=2,
    )
    dm.setup()
    assert [len(s.clips) for s in (dm.train_set, dm.val_set, dm.test_set)] == [2, 1, 1]
    assert dm.test_set.paths[0].name == "v3.mp4"
    batch = next(iter(dm.test_dataloader()))
    assert batch["reference"].shape == (2, 3, 32, 32)
    assert torch.equal(batch["reference"][0], batch["reference"][1])  # frame 0 of one clip


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.root"):
        find_clips(tmp_path / "missing")
    with pytest.raises(ValueError, match="no clips under"):
        find_clips(tmp_path)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="cannot decode video"):
        read_clip(tmp_path / "broken.mp4")
    with pytest.raises(ValueError, match="frame_skip must be >= 1"):
        ClipPairs([tmp_path / "broken.mp4"], image_size=32, frame_skip=0)
    with pytest.raises(ValueError, match="not enough for data.val_clips"):
        IMFDataModule(root=str(tmp_path), val_clips=1, test_clips=1).setup()
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32), 8)
