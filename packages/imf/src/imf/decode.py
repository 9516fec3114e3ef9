"""``imf-decode tokens.npz -o video.mp4 --ckpt last.ckpt``: reference frame + tokens -> video.

Also ``python -m imf.decode``. Use the checkpoint that encoded the token file.
"""

from __future__ import annotations

import argparse
import sys

from imf.checkpoint import load_checkpoint
from imf.codec import decode_tokens, load_token_file
from imf.data.video_io import write_video


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="imf-decode", description=__doc__)
    parser.add_argument("tokens", help="token file written by imf-encode (.npz)")
    parser.add_argument("-o", "--output", required=True, help="video to write (.mp4)")
    parser.add_argument("--ckpt", required=True, help="IMF checkpoint used for encoding")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    module = load_checkpoint(args.ckpt, args.device)
    data = load_token_file(args.tokens)
    frames = decode_tokens(module.generator, data)
    path = write_video(args.output, frames, float(data["fps"]))
    print(f"wrote {path}: {len(frames)} frames at {frames.shape[1]} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
