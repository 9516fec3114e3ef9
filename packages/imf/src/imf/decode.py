"""``imf-decode clip.imf -o video.mp4``: bitstream (or raw token file) -> video.

Also ``python -m imf.decode``. A ``.imf`` bitstream records the checkpoint that encoded it and
is decoded with that one unless ``--ckpt`` names another copy (its weights must be the same);
a ``.npz`` token file needs ``--ckpt``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imf.bitstream import MAGIC, BitstreamError, decode_clip, read_bitstream
from imf.checkpoint import load_checkpoint
from imf.codec import decode_tokens, load_token_file
from motioncore.media import write_video


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="imf-decode", description=__doc__)
    parser.add_argument("stream", help="bitstream (.imf) or token file (.npz) from imf-encode")
    parser.add_argument("-o", "--output", required=True, help="video to write (.mp4)")
    parser.add_argument(
        "--ckpt", default=None, help="IMF checkpoint that encoded the clip (.imf: default recorded)"
    )
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def _is_bitstream(path: Path) -> bool:
    if not path.is_file():
        return path.suffix.lower() == ".imf"
    with path.open("rb") as f:
        return f.read(4) == MAGIC


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    source = Path(args.stream)
    if _is_bitstream(source):
        try:
            stream = read_bitstream(source)
            ckpt = args.ckpt or stream.checkpoint
            if not ckpt:
                sys.exit(f"error: {source} records no checkpoint; pass --ckpt")
            module = load_checkpoint(ckpt, args.device)
            frames = decode_clip(module.generator, stream, str(source))
        except BitstreamError as e:
            sys.exit(f"error: {e}")
        fps = stream.fps
    else:
        if args.ckpt is None:
            sys.exit(
                f"error: {source} is a raw token file; pass --ckpt <checkpoint that encoded it>"
            )
        module = load_checkpoint(args.ckpt, args.device)
        data = load_token_file(source)
        frames = decode_tokens(module.generator, data)
        fps = float(data["fps"])
    path = write_video(args.output, frames, fps)
    print(f"wrote {path}: {len(frames)} frames at {frames.shape[1]} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
