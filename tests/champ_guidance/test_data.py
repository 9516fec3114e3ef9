"""Data layout: loader on files written here, validation errors naming the file, heatmaps,
the synthetic generator (determinism) and prepare_music, beat alignment."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from champ_guidance.beats import beat_alignment_score, kinematic_beats, motion_speed
from champ_guidance.data.dataset import ClipDataset
from champ_guidance.data.heatmaps import keypoint_heatmaps
from champ_guidance.data.layout import DataLayoutError, frame_file, write_image


def _dataset(root, types=("music", "pose"), channels=(3, 6), length=4, **kw):
    return ClipDataset(
        root,
        list(types),
        list(channels),
        resolution=16,
        guidance_resolution=16,
        sequence_length=length,
        **kw,
    )


def test_loader_reads_the_layout(tiny_layout):
    ds = _dataset(tiny_layout)
    assert len(ds) == 2 * (6 - 4 + 1)
    item = ds[0]
    assert item["frames"].shape == (4, 3, 16, 16)
    assert item["reference"].shape == (3, 16, 16)
    assert item["guidance"]["pose"].shape == (4, 6, 16, 16)
    assert item["guidance"]["music"].shape == (4, 3)
    assert item["fps"] == pytest.approx(10.0)
    # the reference image was written as the first frame: same pixels up to video coding
    assert (item["reference"] - item["frames"][0]).abs().mean() < 0.1
    music = np.load(frame_file(tiny_layout / "music_features" / "a", 1, ".npy"))
    assert torch.allclose(item["guidance"]["music"][1], torch.from_numpy(music))


def test_frame_stride_and_spatial_features(tmp_path, make_layout):
    root = make_layout(tmp_path, names=("a",), frames=7, custom={"depth": (2, 8, 8)})
    ds = _dataset(root, types=("pose", "depth"), channels=(6, 2), length=3, frame_stride=2)
    assert len(ds) == 3  # starts 0, 1, 2; frames s, s+2, s+4
    assert ds[0]["guidance"]["depth"].shape == (3, 2, 16, 16)  # resized to the guidance grid


def test_missing_frame_names_the_file(tiny_layout):
    missing = frame_file(tiny_layout / "poses" / "b", 3, ".json")
    missing.unlink()
    with pytest.raises(DataLayoutError, match=str(missing)):
        _dataset(tiny_layout)


def test_wrong_keypoint_count_names_the_file(tiny_layout):
    with pytest.raises(DataLayoutError, match=r"frame_000\.json has 5 keypoints .* 8"):
        _dataset(tiny_layout, channels=(3, 9))[0]


def test_wrong_music_channels_names_the_file(tiny_layout):
    with pytest.raises(DataLayoutError, match=r"music_features/a/frame_000\.npy has shape \(3,\)"):
        _dataset(tiny_layout, channels=(35, 6))[0]


def test_wrong_reference_resolution_names_the_file(tiny_layout):
    ref = tiny_layout / "reference_images" / "b.png"
    write_image(ref, np.zeros((20, 16, 3), np.uint8))
    with pytest.raises(DataLayoutError, match=f"{ref}.*same resolution"):
        _dataset(tiny_layout)


def test_corrupt_pose_json_names_the_file(tiny_layout):
    bad = frame_file(tiny_layout / "poses" / "a", 0, ".json")
    bad.write_text("{not json")
    with pytest.raises(DataLayoutError, match=str(bad)):
        _dataset(tiny_layout)[0]


def test_heatmaps_peak_at_keypoints():
    kp = torch.tensor([[3.5, 10.5, 1.0], [12.5, 2.5, 0.5]])
    maps = keypoint_heatmaps(kp, 16, sigma=1.0)
    assert maps.shape == (3, 16, 16)
    assert divmod(int(maps[0].argmax()), 16) == (10, 3)
    assert divmod(int(maps[1].argmax()), 16) == (2, 12)
    assert maps[1].max() == pytest.approx(0.5)
    assert torch.allclose(maps[2], 1 - maps[:2].amax(0))


def test_beat_alignment_detects_aligned_and_still_motion():
    t = torch.arange(30, dtype=torch.float32)
    # a blob whose speed |sin| vanishes every 6 frames (at 0, 6, 12, ...)
    pos = 8 + 6 * torch.cos(np.pi * t / 6)
    x = torch.arange(60, dtype=torch.float32)
    frames = torch.exp(-((x - 2 * pos[:, None]) ** 2) / (2 * 3.0**2)).view(30, 1, 1, 60)
    speed = motion_speed(frames)
    beats = kinematic_beats(speed)
    # the beats of the former exhaustive minima search on this clip
    np.testing.assert_array_equal(beats, [6, 12, 18, 24])
    assert beat_alignment_score(beats, np.arange(0, 30, 6), sigma=1.0) > 0.5
    assert beat_alignment_score(beats, np.arange(3, 30, 6), sigma=1.0) < 0.4
    # a minimum 0.2 deep is below 0.1 x the peak speed 5: only the deep one at 4 is a beat;
    # the ends are never beats
    np.testing.assert_array_equal(kinematic_beats(np.array([0, 5, 4.8, 5, 1, 5, 0.0])), [4])
    still = torch.zeros(10, 3, 4, 4)
    assert len(kinematic_beats(motion_speed(still))) == 0
    assert (
        beat_alignment_score(kinematic_beats(motion_speed(still)), np.arange(0, 10, 3), 1.0) == 0.0
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from champ_guidance.data.synthetic import generate_split

    base = tmp_path_factory.mktemp("synthetic")
    first = generate_split(
        base / "a", 1, seed=3, num_frames=12, fps=10.0, size=24, feature_set="onset"
    )
    second = generate_split(
        base / "b", 1, seed=3, num_frames=12, fps=10.0, size=24, feature_set="onset"
    )
    return first, second


def test_generator_is_deterministic_and_writes_the_layout(generated):
    first, second = generated
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for sub in (
        "poses/dance_000/frame_007.json",
        "music_features/dance_000/frame_011.npy",
        "reference_images/dance_000.png",
        "audio/dance_000.wav",
    ):
        assert (first / sub).read_bytes() == (second / sub).read_bytes(), sub
    pose = json.loads((first / "poses/dance_000/frame_007.json").read_text())
    assert len(pose["keypoints"]) == 133 and pose["frame_id"] == 7 and pose["pose_type"]
    assert np.load(first / "music_features/dance_000/frame_000.npy").shape == (1,)
    ds = ClipDataset(first, ["music", "pose"], [1, 134], 24, 24, sequence_length=12)
    item = ds[0]
    assert item["guidance"]["pose"].shape == (12, 134, 24, 24)
    # the figure moves: frames differ, and the pose heatmaps follow it
    assert (item["frames"][0] - item["frames"][6]).abs().mean() > 0.01
    assert (item["guidance"]["pose"][0] - item["guidance"]["pose"][6]).abs().max() > 0.5


def test_builtin_dances_are_reused_and_rebuilt_when_a_setting_changes(tmp_path):
    from champ_guidance.data.synthetic import builtin

    tiny = dict(train_videos=1, test_videos=1, seed=3, num_frames=6, fps=10.0, size=16)
    root = builtin(tmp_path / "d", **tiny, feature_set="onset").build()
    video = root / "train/videos/dance_000.mp4"
    mtime, first = video.stat().st_mtime_ns, video.read_bytes()
    builtin(tmp_path / "d", **tiny, feature_set="onset").build()
    assert video.stat().st_mtime_ns == mtime
    builtin(tmp_path / "d", **{**tiny, "num_frames": 8}, feature_set="onset").build()
    assert video.read_bytes() != first and (root / "test/videos/dance_000.mp4").is_file()


def test_prepare_music_cli_writes_35d_features(generated, tmp_path, capsys):
    """The README form: positional track, --fps, -o; the frame count follows the duration."""
    import soundfile as sf

    from champ_guidance.prepare_music import main

    first, _ = generated
    wav = first / "audio/dance_000.wav"
    out = tmp_path / "music_features" / "song"
    assert main([str(wav), "--fps", "10", "-o", str(out)]) == 0
    rows = sorted(out.glob("frame_*.npy"))
    assert len(rows) == int(sf.info(str(wav)).duration * 10) and np.load(rows[0]).shape == (35,)
    assert main([str(wav), "--fps", "10", "-o", str(tmp_path / "n"), "--num-frames", "5"]) == 0
    assert len(list((tmp_path / "n").glob("frame_*.npy"))) == 5
    for argv, message in (
        (
            [str(tmp_path / "missing.wav"), "--fps", "10", "-o", str(out)],
            "missing.wav does not exist",
        ),
        ([str(wav), "--fps", "0", "-o", str(out)], "--fps 0 must be a positive"),
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_prepare_music_reads_a_videos_track_or_refuses_by_name(generated, tmp_path, capsys):
    import subprocess

    import imageio_ffmpeg

    from champ_guidance.prepare_music import main

    first, _ = generated
    silent = first / "videos/dance_000.mp4"
    with pytest.raises(SystemExit):
        main([str(silent), "--fps", "10", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert "dance_000.mp4 is a video without an audio track" in err and "Traceback" not in err
    muxed = tmp_path / "with_sound.mp4"
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run(
        [
            ffmpeg,
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(silent),
            "-i",
            str(first / "audio/dance_000.wav"),
        ]
        + ["-c:v", "copy", "-c:a", "aac", "-shortest", str(muxed)],
        check=True,
    )
    assert main([str(muxed), "--fps", "10", "-o", str(tmp_path / "v"), "--num-frames", "4"]) == 0
    assert len(list((tmp_path / "v").glob("frame_*.npy"))) == 4
    garbage = tmp_path / "noise.wav"
    garbage.write_bytes(b"not audio at all" * 64)
    with pytest.raises(SystemExit):
        main([str(garbage), "--fps", "10", "-o", str(tmp_path / "g")])
    err = capsys.readouterr().err
    assert "noise.wav cannot be decoded as audio" in err and "Traceback" not in err


def test_music_features_compile_into_a_cache_folder_of_this_process():
    import os

    import numba

    from champ_guidance.data import music_features

    folder = music_features.NUMBA_CACHE_DIR
    assert os.environ["NUMBA_CACHE_DIR"] == folder == numba.config.CACHE_DIR
    assert f"numba-cache-{os.getpid()}-" in folder and os.path.isdir(folder)


@pytest.mark.slow
def test_two_concurrent_music_preparations_both_succeed(generated, tmp_path):
    """Two prepare-music processes at once (librosa's numba cache once crashed one of them):
    each compiles into its own cache folder, both finish and write the same features."""
    import os
    import subprocess
    import sys

    first, _ = generated
    wav = first / "audio/dance_000.wav"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "champ_guidance.prepare_music", str(wav)]
            + ["--fps", "10", "-o", str(tmp_path / f"out{i}")],
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-2000:]
    rows = [sorted((tmp_path / f"out{i}").glob("frame_*.npy")) for i in range(2)]
    assert len(rows[0]) == len(rows[1]) > 0
    assert all(np.array_equal(np.load(a), np.load(b)) for a, b in zip(*rows, strict=True))
