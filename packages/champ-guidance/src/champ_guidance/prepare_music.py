"""Music features for the data layout: ``champ-guidance-prepare-music``.

champ-guidance-prepare-music song.wav --fps 10 -o music_features/song [--num-frames N]
    one track (an audio file, or a video whose audio track is extracted) ->
    <output>/frame_XXX.npy; without --num-frames, as many frames as the track lasts at fps
champ-guidance-prepare-music --root <data root> [--feature-set edge35|onset]
    every audio/<name>.wav (or .mp3/.flac/.ogg) with a videos/<name>.mp4 ->
    music_features/<name>/frame_XXX.npy at the video's frame rate and frame count
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from champ_guidance.data.layout import AUDIO_DIR, MUSIC_DIR, VIDEO_DIR, DataLayoutError, read_video
from champ_guidance.data.music_features import (
    FEATURE_SETS,
    AudioError,
    music_features,
    write_feature_frames,
)

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
        prog="champ-guidance-prepare-music",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("audio", type=Path, nargs="?", help="an audio file (or a video with sound)")
    parser.add_argument("-o", "--output", type=Path, help="output folder for one track")
    parser.add_argument("--fps", type=float, help="video frame rate of the features")
    parser.add_argument("--num-frames", type=int, help="frame count (default: the track's length)")
    parser.add_argument("--root", type=Path, help="data root in the champ-guidance layout")
    parser.add_argument(
        "--feature-set",
        default="edge35",
        choices=sorted(FEATURE_SETS),
        help="edge35: 35-d EDGE/AIST++ recipe; onset: 1-d onset strength",
    )
    args = parser.parse_args(argv)
    try:
        if args.root is not None:
            if args.audio is not None:
                parser.error("pass either an audio file or --root, not both")
            for folder in prepare_root(args.root, args.feature_set):
                print(folder)
            return 0
        if args.audio is None or args.output is None or args.fps is None:
            parser.error("pass AUDIO --fps FPS -o OUTPUT (or --root DATA_ROOT)")
        if not args.fps > 0:
            parser.error(f"--fps {args.fps:g} must be a positive frame rate (e.g. 10 or 30)")
        if args.num_frames is not None and args.num_frames <= 0:
            parser.error(f"--num-frames {args.num_frames} must be positive (or leave it out)")
        feats = music_features(args.audio, args.fps, args.num_frames, args.feature_set)
    except (AudioError, DataLayoutError, FileNotFoundError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    write_feature_frames(feats, args.output)
    print(f"{args.output}: {feats.shape[0]} frames x {feats.shape[1]} features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
