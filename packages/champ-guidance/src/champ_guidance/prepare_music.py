"""Music features for the data layout: ``python -m champ_guidance.prepare_music``.

(The console-script name ``champ-guidance-prepare-music`` needs a line in pyproject.toml:
``champ-guidance-prepare-music = "champ_guidance.prepare_music:main"``.)

    python -m champ_guidance.prepare_music --root <data root> [--feature-set edge35|onset]
        every audio/<name>.wav (or .mp3/.flac/.ogg) with a videos/<name>.mp4 ->
        music_features/<name>/frame_XXX.npy at the video's frame rate and frame count
    python -m champ_guidance.prepare_music --audio a.wav --output dir --fps 30 --num-frames 300
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from champ_guidance.data.layout import AUDIO_DIR, MUSIC_DIR, VIDEO_DIR, read_video
from champ_guidance.data.music_features import FEATURE_SETS, music_features, write_feature_frames

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")


def prepare_root(root: Path, feature_set: str) -> list[Path]:
    folders = []
    videos = sorted((root / VIDEO_DIR).glob("*.mp4"))
    if not videos:
        raise FileNotFoundError(f"no videos in {root / VIDEO_DIR}")
    for video in videos:
        audio = next(
            (
                root / AUDIO_DIR / f"{video.stem}{s}"
                for s in AUDIO_SUFFIXES
                if (root / AUDIO_DIR / f"{video.stem}{s}").is_file()
            ),
            None,
        )
        if audio is None:
            raise FileNotFoundError(
                f"no audio for {video}: expected {root / AUDIO_DIR / video.stem}.wav"
            )
        frames, fps = read_video(video)
        out = root / MUSIC_DIR / video.stem
        write_feature_frames(music_features(audio, fps, len(frames), feature_set), out)
        folders.append(out)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, help="data root in the champ-guidance layout")
    parser.add_argument("--audio", type=Path, help="one audio file")
    parser.add_argument("--output", type=Path, help="output folder for --audio")
    parser.add_argument("--fps", type=float, help="video frame rate for --audio")
    parser.add_argument("--num-frames", type=int, help="video frame count for --audio")
    parser.add_argument(
        "--feature-set",
        default="edge35",
        choices=sorted(FEATURE_SETS),
        help="edge35: 35-d EDGE/AIST++ recipe; onset: 1-d onset strength",
    )
    args = parser.parse_args(argv)
    if args.root is not None:
        for folder in prepare_root(args.root, args.feature_set):
            print(folder)
        return 0
    if None in (args.audio, args.output, args.fps, args.num_frames):
        parser.error("pass --root, or all of --audio --output --fps --num-frames")
    if not args.audio.is_file():
        parser.error(f"--audio {args.audio} does not exist")
    feats = music_features(args.audio, args.fps, args.num_frames, args.feature_set)
    write_feature_frames(feats, args.output)
    print(f"{args.output}: {feats.shape[0]} frames x {feats.shape[1]} features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
