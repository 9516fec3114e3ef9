"""Built-in data: synthetic dance videos written in the real on-disk layout.

Per video: a beat track (WAV, :mod:`.audio`), a figure whose key poses land on the beats
(:mod:`.figure`), its rendered mp4, per-frame whole-body keypoints as JSON, librosa music
features computed from the WAV, and a reference image (the same dancer in its rest pose).
Everything is a pure function of ``seed`` and the sizes; :func:`builtin` builds the train and
test splits once (``motioncore.data.build_once``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from champ_guidance.data import audio as audio_lib
from champ_guidance.data import figure
from champ_guidance.data.layout import (
    AUDIO_DIR,
    MUSIC_DIR,
    PIXELFORMAT,
    POSE_DIR,
    REF_DIR,
    VIDEO_DIR,
    frame_file,
    write_image,
    write_pose,
)
from champ_guidance.data.music_features import music_features, write_feature_frames
from motioncore.data import BuiltinData
from motioncore.media import write_video


def generate_video(
    root: Path, name: str, seed: int, num_frames: int, fps: float, size: int, feature_set: str
) -> None:
    """Write every file of one synthetic video under ``root``."""
    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(100, 140))
    duration = num_frames / fps
    track, beats = audio_lib.synth_track(
        bpm, duration, offset=float(rng.uniform(0.1, 0.4)), rng=rng
    )
    wav = root / AUDIO_DIR / f"{name}.wav"
    audio_lib.write_wav(wav, track)
    style = figure.FigureStyle.random(rng)
    poses = figure.dance(beats, fps, num_frames, rng)
    frames = []
    for i, pose in enumerate(poses):
        kp = figure.pose_to_keypoints(pose, size, style.scale)
        frames.append(figure.render_frame(kp, size, style))
        conf = np.ones((len(kp), 1))
        write_pose(
            frame_file(root / POSE_DIR / name, i, ".json"),
            np.hstack([kp, conf]),
            figure.POSE_TYPE,
            i,
        )
    write_video(root / VIDEO_DIR / f"{name}.mp4", np.stack(frames), fps, pixelformat=PIXELFORMAT)
    rest = figure.pose_to_keypoints(figure.REST_POSE, size, style.scale)
    write_image(root / REF_DIR / f"{name}.png", figure.render_frame(rest, size, style))
    feats = music_features(wav, fps, num_frames, feature_set)
    write_feature_frames(feats, root / MUSIC_DIR / name)


def generate_split(
    root: Path,
    num_videos: int,
    seed: int,
    num_frames: int,
    fps: float,
    size: int,
    feature_set: str = "edge35",
) -> Path:
    """Write ``num_videos`` videos into ``root``; video ``v`` is a pure function of
    ``(seed, v)`` and the sizes."""
    root = Path(root)
    for v in range(num_videos):
        generate_video(
            root, f"dance_{v:03d}", seed * 100_003 + v, num_frames, fps, size, feature_set
        )
    return root


def _write_splits(root: Path, train_videos: int, test_videos: int, seed: int, **video) -> None:
    generate_split(root / "train", train_videos, seed, **video)
    generate_split(root / "test", test_videos, seed + 1, **video)


def builtin(
    root: Path,
    train_videos: int,
    test_videos: int,
    seed: int,
    num_frames: int,
    fps: float,
    size: int,
    feature_set: str = "edge35",
) -> BuiltinData:
    """``root/train`` (seeded by ``seed``) and ``root/test`` (``seed + 1``), built once and
    rebuilt when any setting changes."""
    spec = dict(
        train_videos=train_videos,
        test_videos=test_videos,
        seed=seed,
        num_frames=num_frames,
        fps=fps,
        size=size,
        feature_set=feature_set,
    )
    # train/.complete.json: the marker the previous generator wrote into each split
    return BuiltinData(
        Path(root), spec, partial(_write_splits, **spec), replaces=("train/.complete.json",)
    )
