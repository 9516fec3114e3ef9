"""``stdiff-sample``: N stochastic futures at any frame rate from a checkpoint.

Writes ``samples/video_<i>.{png,gif,npy}`` and ``times.json`` (the predicted frame times) into the
run directory. Inputs are test clips of ``data`` or the sequences found in ``input``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from motioncore.train import hydra_entry, load_module
from stdiff.data.formats import frame_files, list_sequences, load_sequence
from stdiff.media import write_prediction_media

log = logging.getLogger(__name__)


def observed_clips(cfg: DictConfig) -> torch.Tensor:
    """[B, To, C, H, W] observed frames: the first To frames of each input sequence."""
    data = hydra.utils.instantiate(cfg.data, **({"generator": None} if cfg.input else {}))
    to = data.To
    if cfg.input:
        path = Path(cfg.input)
        if not path.exists():
            raise FileNotFoundError(f"input={path} does not exist")
        single = path.is_file() or (data.format != "video" and frame_files(path, data.format))
        seqs = [path] if single else list_sequences(path, data.format)
        clips = [
            load_sequence(
                s,
                data.format,
                data.image_size,
                data.channels,
                data.max_range,
                data.png_scale,
                data.center_crop,
            )
            for s in seqs
        ]
        short = [str(s) for s, c in zip(seqs, clips, strict=True) if len(c) < to]
        if short:
            raise ValueError(f"{short} have fewer than To={to} frames")
        return torch.stack([c[:to] for c in clips])[: cfg.num_videos]
    data.setup("test")
    items = [data.test_set[i] for i in range(min(cfg.num_videos, len(data.test_set)))]
    return torch.stack([it["vo"] for it in items])


def future_times(to: int, num_frames: int, fps: float) -> torch.Tensor:
    """Times after the last observed frame (To - 1) every 1/fps frames, ``num_frames`` of them."""
    if num_frames < 1 or fps <= 0:
        raise ValueError(f"num_frames must be >= 1 and fps > 0, got {num_frames}, {fps}")
    return (to - 1) + torch.arange(1, num_frames + 1, dtype=torch.float32) / fps


def sample_videos(cfg: DictConfig) -> Path:
    module = load_module(cfg)
    vo = observed_clips(cfg).to(module.device)
    b, to = vo.shape[:2]
    idx_o = torch.arange(to, dtype=torch.float32).repeat(b, 1)
    idx_p = future_times(to, cfg.num_frames, cfg.fps).repeat(b, 1)
    g = torch.Generator().manual_seed(cfg.seed)
    preds = module.predict(
        vo,
        idx_o,
        idx_p,
        cfg.num_samples,
        sampler=cfg.sampler,
        num_steps=cfg.num_steps,
        chunk=cfg.chunk,
        generator=g,
    )
    out = Path(cfg.paths.output_dir) / "samples"
    paths = write_prediction_media(out, "video", vo, None, preds)
    (out / "times.json").write_text(
        json.dumps({"observed": idx_o[0].tolist(), "predicted": idx_p[0].tolist()}) + "\n"
    )
    log.info("wrote %d files to %s", len(paths) + 1, out)
    return out


main = hydra_entry("pkg://stdiff.configs", "sample", fn=sample_videos)

if __name__ == "__main__":
    main()
