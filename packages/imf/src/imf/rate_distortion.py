"""Rate-distortion curve of the .imf codec over test clips, next to the zero-motion baseline.

Each clip goes through the real bitstream (:func:`imf.bitstream.encode_clip`, ``unpack``,
``decode_clip``) at every quality Q. The rate is the whole file (header, token scales, checkpoint
path, the PNG reference frame and the ANS payload) in bits per pixel of the clip; the zero-motion
baseline sends only the reference frame and repeats it, so its rate is the reference's bits.
Quality metrics are computed on uint8 frames against the uint8 target, over the frames after
the reference (frame 0, which the baseline copies exactly: its PSNR would be infinite), as in
the test pairs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from imf import bitstream
from imf.model.generator import IMFGenerator
from motioncore.media import to_uint8

QualityFn = Callable[[Tensor, Tensor], dict[str, Tensor]]


def _to_model(frames: np.ndarray) -> Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1


def rate_distortion(
    generator: IMFGenerator,
    clips: Sequence[Tensor],
    qualities: Sequence[float],
    quality_fn: QualityFn,
    fps: float = 12.0,
) -> dict:
    """``{"points": [{"quality", "bpp", <metrics>}...], "baseline": {"bpp", <metrics>}}``,
    metrics averaged over every frame but the reference (frame 0) of every clip (``clips``:
    ``[T, 3, S, S]`` in [-1, 1], at least 2 frames); bits per pixel over all frames."""
    fingerprint = bitstream.generator_fingerprint(generator)
    totals: dict = {q: {"bits": 0} for q in qualities}
    baseline: dict = {"bits": 0}
    pixels, frames_seen = 0, 0

    def add(acc: dict, scores: dict[str, Tensor]) -> None:
        for name, values in scores.items():
            acc[name] = acc.get(name, 0.0) + float(values.sum())

    for clip in clips:
        target = to_uint8(clip)
        target_x = _to_model(target)
        pixels += target.shape[0] * target.shape[1] * target.shape[2]
        frames_seen += len(target) - 1
        for quality in qualities:
            blob, _ = bitstream.encode_clip(
                generator, target, fps, quality, fingerprint=fingerprint
            )
            stream = bitstream.unpack(blob)
            recon = bitstream.decode_clip(generator, stream, fingerprint=fingerprint)
            totals[quality]["bits"] += 8 * len(blob)
            add(totals[quality], quality_fn(_to_model(recon[1:]), target_x[1:]))
        baseline["bits"] += 8 * stream.reference_bytes
        still = np.repeat(stream.reference[None], len(target) - 1, axis=0)
        add(baseline, quality_fn(_to_model(still), target_x[1:]))

    def summary(acc: dict) -> dict:
        out = {"bpp": acc["bits"] / pixels}
        out.update({k: v / frames_seen for k, v in acc.items() if k != "bits"})
        return out

    return {
        "points": [{"quality": float(q), **summary(totals[q])} for q in qualities],
        "baseline": summary(baseline),
        "clips": len(clips),
        "frames": frames_seen,
    }


def write_report(curve: dict, out_dir: str | Path) -> list[Path]:
    """``rate_distortion.json`` and ``rate_distortion.png`` (PSNR and SSIM against bpp)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "rate_distortion.json"
    json_path.write_text(json.dumps(curve, indent=2) + "\n")
    points, base = curve["points"], curve["baseline"]
    metrics = [m for m in ("psnr", "ssim", "lpips") if m in base]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        ax.plot([p["bpp"] for p in points], [p[metric] for p in points], "o-", label="IMF")
        for p in points:
            ax.annotate(f"Q{p['quality']:g}", (p["bpp"], p[metric]), fontsize=7)
        ax.plot([base["bpp"]], [base[metric]], "s", color="gray", label="zero motion")
        ax.set_xlabel("bits per pixel (reference frame included)")
        ax.set_ylabel(metric.upper())
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle(f"IMF rate-distortion, {curve['clips']} clips / {curve['frames']} coded frames")
    fig.tight_layout()
    png_path = out_dir / "rate_distortion.png"
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return [json_path, png_path]
