"""``imf-encode VIDEO -o tokens.npz --ckpt last.ckpt``: a clip -> reference frame + tokens.

Also ``python -m imf.encode``. VIDEO is a video file or a folder of frames.
"""

from __future__ import annotations

import argparse
import sys

from imf.checkpoint import load_checkpoint
from imf.codec import bytes_per_frame, encode_frames, save_token_file
from imf.data.video_io import read_clip, read_video


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="imf-encode", description=__doc__)
    parser.add_argument("video", help="video file (mp4, ...) or folder of PNG/JPG frames")
    parser.add_argument("-o", "--output", required=True, help="token file to write (.npz)")
    parser.add_argument(
        "--ckpt", required=True, help="IMF checkpoint (runs/imf/<run>/checkpoints/last.ckpt)"
    )
    parser.add_argument(
        "--frame-skip", type=int, default=1, help="keep every N-th frame (default 1)"
    )
    parser.add_argument(
        "--max-frames", type=int, default=None, help="encode at most this many frames"
    )
    parser.add_argument(
        "--reference-frame", type=int, default=0, help="index of the reference frame"
    )
    parser.add_argument(
        "--fps", type=float, default=None, help="frame rate (frame folders default 25)"
    )
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.frame_skip < 1:
        sys.exit("error: --frame-skip must be >= 1")
    module = load_checkpoint(args.ckpt, args.device)
    frames = read_clip(args.video)[:: args.frame_skip][: args.max_frames]
    fps = args.fps
    if fps is None:
        fps = (
            25.0
            if not args.video.lower().endswith(tuple(".mp4 .mov .avi .mkv .webm".split()))
            else read_video(args.video)[1]
        )
        fps /= args.frame_skip
    data = encode_frames(module.generator, frames, fps, args.reference_frame)
    path = save_token_file(args.output, data)
    per_frame = bytes_per_frame(module.generator.token_dim)
    print(
        f"wrote {path}: {len(data['tokens'])} frames x {per_frame} bytes of fp16 tokens "
        f"+ one {data['reference'].shape[0]} px reference frame"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
