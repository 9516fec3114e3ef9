"""``imf-sample`` / ``python -m imf.sample ckpt_path=... [video=...]``: reconstruct one clip
through the codec path (reference frame + one token per frame) and write media + metrics."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import imageio.v2 as imageio
import numpy as np
import torch
from omegaconf import DictConfig

from imf.codec import decode_tokens, encode_frames, save_token_file
from imf.data.dataset import to_model_frames
from imf.data.video_io import read_clip
from motioncore.media import to_uint8, write_video
from motioncore.metrics import psnr
from motioncore.train import hydra_entry, load_module

log = logging.getLogger(__name__)


def _psnr_l1(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    p, t = (torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255 for a in (pred, target))
    return float(psnr(p, t, data_range=1.0).mean()), float((p - t).abs().mean())


def sample(cfg: DictConfig) -> dict[str, float]:
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = load_module(cfg, cfg.device)
    generator = module.generator
    if cfg.video is None:
        video = hydra.utils.instantiate(cfg.data).split_paths()["test"][0]
    else:
        video = Path(cfg.video)
    if cfg.frame_skip < 1:
        raise ValueError(f"frame_skip must be >= 1, got {cfg.frame_skip}")
    frames = read_clip(video)[:: cfg.frame_skip][: cfg.max_frames]
    data = encode_frames(generator, frames, fps=12.0, reference_index=cfg.reference_frame)
    save_token_file(out_dir / "tokens.npz", data)
    recon = decode_tokens(generator, data)
    target = to_uint8(to_model_frames(frames, generator.image_size))
    baseline = np.repeat(data["reference"][None], len(target), axis=0)
    write_video(out_dir / "reconstruction.mp4", recon, 12.0)
    write_video(
        out_dir / "target_vs_reconstruction.mp4", np.concatenate([target, recon], axis=2), 12.0
    )
    picks = np.linspace(0, len(target) - 1, min(8, len(target))).round().astype(int)
    strip = np.concatenate(
        [np.concatenate(list(a[picks]), axis=1) for a in (target, recon, baseline)]
    )
    imageio.imwrite(out_dir / "strip.png", strip)
    model_psnr, model_l1 = _psnr_l1(recon, target)
    base_psnr, base_l1 = _psnr_l1(baseline, target)
    metrics = {
        "sample/psnr": model_psnr,
        "sample/l1": model_l1,
        "baseline/psnr": base_psnr,
        "baseline/l1": base_l1,
        "frames": len(target),
    }
    (out_dir / "sample_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("reconstructed %s (%d frames) into %s: %s", video, len(target), out_dir, metrics)
    return metrics


main = hydra_entry("pkg://imf.configs", "sample", fn=sample)

if __name__ == "__main__":
    main()
