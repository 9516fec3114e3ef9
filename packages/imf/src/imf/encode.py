"""``imf-encode VIDEO -o clip.imf --ckpt last.ckpt --quality Q``: a clip -> bitstream.

Also ``python -m imf.encode``. VIDEO is a video file or a folder of frames. An ``.imf`` output is
the entropy-coded bitstream (quantised tokens + coded reference frame, see :mod:`imf.bitstream`);
an ``.npz`` output keeps the raw fp16 tokens and the uint8 reference instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imf.bitstream import REFERENCE_CODECS, encode_clip, write_bitstream
from imf.checkpoint import load_checkpoint
from imf.codec import bytes_per_frame, encode_frames, save_token_file
from imf.data.video_io import VIDEO_SUFFIXES, read_clip
from motioncore.media import read_video

DEFAULT_FPS = 25.0  # frame folders, and videos whose container records no frame rate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="imf-encode", description=__doc__)
    parser.add_argument("video", help="video file (mp4, ...) or folder of PNG/JPG frames")
    parser.add_argument(
        "-o", "--output", required=True, help="bitstream (.imf) or raw token file (.npz) to write"
    )
    parser.add_argument(
        "--quality",
        type=float,
        default=8.0,
        help=".imf: quantisation bins per token standard deviation (default 8; higher = better)",
    )
    parser.add_argument("--reference-codec", choices=REFERENCE_CODECS, default="png")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="with --reference-codec jpeg")
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
        "--fps",
        type=float,
        default=None,
        help="frame rate (default: the video's own; 25 for frame folders or when unknown)",
    )
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.frame_skip < 1:
        sys.exit("error: --frame-skip must be >= 1")
    suffix = Path(args.output).suffix.lower()
    if suffix not in (".imf", ".npz"):
        sys.exit(f"error: -o {args.output}: write a .imf bitstream or a .npz token file")
    if not args.quality > 0:
        sys.exit(f"error: --quality must be > 0, got {args.quality}")
    if not 1 <= args.jpeg_quality <= 100:
        sys.exit(f"error: --jpeg-quality must be in 1..100, got {args.jpeg_quality}")
    module = load_checkpoint(args.ckpt, args.device)
    frames = read_clip(args.video)[:: args.frame_skip][: args.max_frames]
    fps = args.fps
    if fps is None:
        known = read_video(args.video)[1] if args.video.lower().endswith(VIDEO_SUFFIXES) else 0.0
        fps = (known or DEFAULT_FPS) / args.frame_skip
    if suffix == ".imf":
        blob, symbols = encode_clip(
            module.generator,
            frames,
            fps,
            args.quality,
            args.reference_frame,
            str(Path(args.ckpt).resolve()),
            args.reference_codec,
            args.jpeg_quality,
        )
        path = write_bitstream(args.output, blob)
        size = module.generator.image_size
        bpp = 8 * len(blob) / (len(symbols) * size * size)
        print(
            f"wrote {path}: {len(symbols)} frames, {len(blob)} bytes ({bpp:.4f} bits per pixel, "
            f"reference frame included) at quality {args.quality:g}"
        )
        return 0
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
