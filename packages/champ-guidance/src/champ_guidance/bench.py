"""``make bench MODEL=champ-guidance``: train-step time and peak memory.

Rows: the built-in tiny configuration (quickstart shapes: 4 clips x 2 frames at 32 px) and one
step of an SD-1.5-shaped model with random weights (UNet2DConditionModel with SD-1.5's block
layout, 768-d context, both UNets, the two guidance encoders), each with and without gradient
checkpointing. The SD-shaped row feeds latents directly (``sd_latent`` x ``sd_latent``, 4
channels; VAE and CLIP excluded, a random 768-d tower stands in for CLIP) so it measures the
trained networks. Its step is forward + backward without the optimizer update: AdamW state for
the two 860M-parameter UNets alone is about 27 GB, more than a 24 GB machine holds, so the
SD-shaped row measures the compute, not the optimizer (SGD-style update cost is negligible).
Sampling rows: the tiny model animates 16, 64 and 256 frames (2 DDIM steps, 16-frame context
windows with overlap 4, guidance encoded 16 frames at a time); the peak should stay flat in the
frame count apart from the clip's own tensors (pose heatmaps 134 x 32 x 32 floats = 0.55 MB and
latents per frame), which the notes give.
Upstream CHAMP publishes no speed or memory figure to compare with.
kwargs: ``quick=1`` skips the SD-shaped rows; ``sd_latent`` (default 32, i.e. 256 px images).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from motioncore.bench import peak_rss_gb, time_fn

SD15_UNET = dict(
    in_channels=4,
    out_channels=4,
    block_out_channels=[320, 640, 1280, 1280],
    layers_per_block=2,
    down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)
SD15_CLIP = dict(
    image_size=32, patch_size=8, width=64, layers=1, heads=4, mlp_ratio=2.0, output_dim=768
)


def _module(kind: str, checkpointing: bool, latent: int):
    import champ_guidance.train  # noqa: F401  (experiments:// source)

    overrides = [f"gradient_checkpointing={str(checkpointing).lower()}", "paths.data_dir=/tmp"]
    if kind == "sd15":
        overrides += [
            f"resolution={latent}",
            "guidance_embedding_channels=320",
            "model.net.reference_concat=false",
            "model.net.guidance_encoder.block_out_channels=[16,32,96,256]",
            "model.net.guidance_encoder.attention_heads=8",
        ]
    GlobalHydra.instance().clear()
    with initialize_config_module("champ_guidance.configs", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    import hydra

    if kind == "sd15":
        cfg.model.net.tiny_unet = SD15_UNET
        cfg.model.net.image_encoder.tiny = SD15_CLIP
    return hydra.utils.instantiate(cfg.model)


def _batch(kind: str, latent: int):
    b, f, size, ch = (4, 2, 32, 3) if kind == "tiny" else (1, 1, latent, 4)
    g = torch.Generator().manual_seed(0)
    return {
        "frames": torch.rand(b, f, ch, size, size, generator=g) * 2 - 1,
        "reference": torch.rand(b, ch, size, size, generator=g) * 2 - 1,
        "guidance": {
            "music": torch.rand(b, f, 35, generator=g),
            "pose": torch.rand(b, f, 134, size, size, generator=g),
        },
    }


def _step_fn(kind: str, checkpointing: bool, latent: int):
    module = _module(kind, checkpointing, latent)
    batch = _batch(kind, latent)
    if (
        kind == "sd15"
    ):  # the reference CLIP tower reads RGB; feed it the first three latent channels
        encode = module.net.image_encoder.forward
        module.net.image_encoder.forward = lambda x: encode(x[:, :3])
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5) if kind == "tiny" else None
    keep = torch.ones(batch["reference"].shape[0])

    def step():
        for p in params:
            p.grad = None
        loss, _ = module._loss(batch, keep)
        loss.backward()
        if opt is not None:
            opt.step()
        module.net.context.clear()

    return step


def run_step(kind: str, checkpointing: bool, latent: int) -> None:
    """Module-level workload for the peak-memory subprocess."""
    _step_fn(kind, checkpointing, latent)()


def run_sampling(frames: int) -> None:
    """Module-level workload for the peak-memory subprocess: one animation of ``frames``."""
    module = _module("tiny", False, 32).eval()
    g = torch.Generator().manual_seed(0)
    guidance = {
        "music": torch.rand(1, frames, 35, generator=g),
        "pose": torch.rand(1, frames, 134, 32, 32, generator=g),
    }
    module.generate(torch.zeros(1, 3, 32, 32), guidance, num_steps=2, window=16, overlap=4)


def benchmarks(
    quick: int | str = 0, sd_latent: int | str = 32, repeats: int | str = 3
) -> Iterator[dict]:
    quick, latent, repeats = int(quick), int(sd_latent), int(repeats)
    kinds = [("tiny", 32)] + ([] if quick else [("sd15", latent)])
    for kind, size in kinds:
        for checkpointing in (False, True):
            step = _step_fn(kind, checkpointing, size)
            timing = time_fn(step, repeats=repeats if kind == "tiny" else 1, warmup=1)
            del step  # free this model before the memory row builds its own copy
            gc.collect()
            label = (
                "tiny 4x2 frames @32px"
                if kind == "tiny"
                else f"SD-1.5-shaped 1 frame @{size}x{size} latent"
            )
            yield (
                {
                    "name": f"champ train step, {label}, checkpointing={checkpointing}",
                    "seconds": timing["median_s"],
                    "peak_mem_gb": round(peak_rss_gb(run_step, kind, checkpointing, size), 2),
                    "notes": (
                        "AdamW step" if kind == "tiny" else "forward + backward, no optimizer"
                    )
                    + " incl. reference UNet pass; peak = RSS of a fresh process",
                }
            )
    for frames in (16, 64, 256):
        input_mb = frames * (35 + 134 * 32 * 32 + 2 * 3 * 32 * 32) * 4 / 1e6
        yield {
            "name": f"champ sampling, tiny @32px, {frames} frames, 16-frame windows",
            "peak_mem_gb": round(peak_rss_gb(run_sampling, frames), 2),
            "notes": f"2 DDIM steps; clip tensors (guidance in, latents, frames) {input_mb:.0f} MB; "
            "peak = RSS of a fresh process",
        }
