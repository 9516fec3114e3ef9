"""``make bench MODEL=stdiff``: the upstream KITTI range-image (kitti_range) workloads, 64 x 512.

Rows (kwargs from ``make bench ARGS="k=v"``):
- UNet forward of one 64 x 512 frame, fp32 and bf16 autocast + channels-last (diffusers' SDPA
  attention);
- seconds per predicted frame for DDPM-100 and DPM-Solver++ at ``dpm_steps`` (default 10, the
  fewest measured at equal quality: ``DPM_QUALITY``) (bf16 autocast, channels-last, SPADE
  gamma/beta cached over the steps of a frame): motion branch + ``sample_steps`` timed denoising
  steps, extrapolated linearly to the full step count and labelled so; ``sample_steps=99``
  measures DDPM-100 without extrapolation;
- training step, batch 1, 3 observed + 3 predicted frames (AdamW; ``train=0`` skips it, the
  longest row: two steps of about 16 TFLOP each): ``train_bf16`` (default 1) bf16 autocast,
  ``checkpointing`` (default 1) gradient checkpointing of the UNet's ResNet blocks,
  ``train_warmup`` (default 1) untimed steps; channels-last weights, as kitti_range.yaml trains;
- training step of the quickstart model (seconds).
Each heavy row runs in a fresh spawned process that reports its own timings and peak RSS
(``peak_mem_gb``). FLOPs come from torch's FlopCounterMode on the ``meta`` device (no compute):
a denoising step with cached SPADE excludes the SPADE heads' FLOPs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from motioncore.bench import load_average, run_in_fresh_process, time_fn
from stdiff.schema import model_kwargs

UPSTREAM_UNET_S, UPSTREAM_FRAME_S, UPSTREAM_TRAIN_S = 7.3, 730.0, 92.0
# make eval of one quickstart checkpoint (seed 42, 600 steps), same test clips and seeds
DPM_QUALITY = (
    "best-of-4 PSNR on the quickstart checkpoint: DPM-Solver++ 10 / 15 / 20 steps 16.55 / 16.53 / "
    "16.51 dB, SSIM 0.738; DDPM-100 16.03 dB / 0.729 (copy-last-frame baseline 16.06 / 0.722)"
)


def _module(name: str = "kitti_range", device: str = "cpu", **kw):
    from stdiff.module import STDiffModule

    # the bench frames are single-channel (${data.channels} in training); rows other than the
    # training step time the NCHW weights upstream has (sampling converts them itself)
    cfg = {**model_kwargs(name, 1), "train_channels_last": False, **kw}
    torch.manual_seed(0)
    with torch.device(device):
        return STDiffModule(**cfg).eval()


def _inputs(device="cpu", frames: int = 1):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(frames, 2, 64, 512, generator=g).to(device)
    m = torch.randn(frames, 256, 16, 128, generator=g).to(device)
    t = torch.full((frames,), 500, dtype=torch.long, device=device)
    return x, t, m


def _train_batch(device="cpu"):
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(1, 6, 1, 64, 512, generator=g).to(device) * 2 - 1
    times = torch.arange(6.0, device=device)[None]
    return {"vo": frames[:, :3], "idx_o": times[:, :3], "vp": frames[:, 3:], "idx_p": times[:, 3:]}


def _unet_flops() -> tuple[int, int]:
    """(FLOPs of one 64 x 512 UNet forward, of which the SPADE heads) on the meta device."""
    unet = _module(device="meta").model.unet
    x, t, m = _inputs("meta")
    counter = FlopCounterMode(display=False, depth=None)
    with counter:
        unet(x, t, m)
    spade = sum(
        sum(v.values()) for k, v in counter.get_flop_counts().items() if k.endswith(".spade")
    )
    return counter.get_total_flops(), spade


# ---- workloads, each run in a fresh process by run_in_fresh_process ---------------------------
def _w_unet(bf16: bool, repeats: int) -> float:
    unet = _module().model.unet
    x, t, m = _inputs()

    def forward():
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return unet(x, t, m)

    with unet.channels_last(bf16):  # the sampling path's layout; fp32 stays upstream's NCHW
        return time_fn(forward, repeats, warmup=1)["median_s"]


def _sample_frame(module, steps: int) -> None:
    b = _train_batch()
    g = torch.Generator().manual_seed(0)
    module.predict(b["vo"], b["idx_o"], b["idx_p"][:, :1], 1, sampler="ddpm", num_steps=steps,
                   generator=g, bf16=True)  # fmt: skip


def _w_sample(steps: int) -> tuple[float, float]:
    """(seconds of a frame with 1 denoising step, with ``steps + 1``), after a warm-up frame."""
    module = _module()
    one = time_fn(lambda: _sample_frame(module, 1), 1, warmup=1)["median_s"]
    more = time_fn(lambda: _sample_frame(module, steps + 1), 1, warmup=0)["median_s"]
    return one, more


def _w_train(bf16: bool, checkpointing: bool, repeats: int, warmup: int) -> float:
    module = _module(gradient_checkpointing=checkpointing, train_channels_last=True).train()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4, betas=(0.95, 0.999))
    batch = _train_batch()

    def step():
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = module.diffusion_loss(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return time_fn(step, repeats, warmup)["median_s"]


def benchmarks(
    quick: str = "0",
    train: str = "1",
    sample_steps: str = "2",
    repeats: str = "2",
    train_bf16: str = "1",
    checkpointing: str = "1",
    train_warmup: str = "1",
    dpm_steps: str = "10",
    **kw,
) -> Iterator[dict]:
    if kw:
        raise ValueError(
            f"unknown bench options {sorted(kw)}; use quick, train, sample_steps, repeats, "
            "train_bf16, checkpointing, train_warmup, dpm_steps"
        )
    reps, steps = int(repeats), int(sample_steps)
    if quick != "1":
        unet_flops, spade_flops = _unet_flops()
        step_flops = unet_flops - spade_flops
        for bf16 in (False, True):
            label = "bf16 autocast + channels-last" if bf16 else "fp32"
            seconds, peak = run_in_fresh_process(_w_unet, bf16, reps)
            yield ({
                "name": f"kitti_range UNet forward, 1 frame 64x512, {label}, SDPA",
                "seconds": seconds, "flops": unet_flops, "peak_mem_gb": peak,
                "upstream_seconds": UPSTREAM_UNET_S, "target_ratio": 0.5,
                "notes": f"204M-parameter model; {unet_flops / 1e9:.0f} GFLOP of which "
                f"{spade_flops / 1e9:.0f} in the 27 SPADE heads; upstream 7.3 s / 2.8 GB "
                f"(materialised 8192^2 scores); median of {reps} after 1 warm-up; "
                f"load average {load_average()}",
            })  # fmt: skip

        # seconds per predicted frame: motion branch + `steps` denoising steps, extrapolated
        (one, more), peak = run_in_fresh_process(_w_sample, steps)
        per_step = (more - one) / steps
        overhead = one - per_step  # SDE + context encoding + SPADE heads, once per frame
        load = load_average()
        for sampler, total in (("ddpm", 100), ("dpmsolver++", int(dpm_steps))):
            exact = sampler == "ddpm" and total == steps + 1
            yield ({
                "name": f"predict 1 frame 64x512, {sampler} {total} steps, bf16 + SDPA + "
                "cached SPADE + channels-last",
                "seconds": overhead + total * per_step,
                "flops": step_flops * total + spade_flops, "peak_mem_gb": peak,
                "upstream_seconds": UPSTREAM_FRAME_S,
                "target_ratio": None if sampler == "ddpm" else 0.1,
                "notes": (
                    "measured"
                    if exact
                    else f"EXTRAPOLATED linearly: {steps} timed UNet steps ({per_step:.2f} s "
                    f"each, {step_flops / 1e9:.0f} GFLOP with cached SPADE) + {overhead:.2f} s "
                    "motion SDE/SPADE per frame"
                )
                + "; upstream is DDPM-100 fp32 (730 s); target <= 0.1 for a frame of equal "
                f"quality: {DPM_QUALITY}; "
                f"load average {load}",
            })  # fmt: skip

    if train == "1":
        bf16, ckpt = train_bf16 == "1", checkpointing == "1"
        warm = int(train_warmup)
        seconds, peak = run_in_fresh_process(_w_train, bf16, ckpt, 1, warm)
        what = ("bf16 autocast" if bf16 else "fp32") + (" + gradient checkpointing" if ckpt else "")
        what += " + channels-last"
        yield ({
            "name": f"kitti_range training step, batch 1, 3 obs + 3 pred frames, AdamW, {what}",
            "seconds": seconds, "peak_mem_gb": peak,
            "flops": 3 * 3 * unet_flops if quick != "1" else None,
            "upstream_seconds": UPSTREAM_TRAIN_S, "target_ratio": 0.5,
            "notes": f"step {warm + 1} of a fresh process ({warm} warm-up steps); "
            f"{3 / seconds:.3f} predicted frames/s; "
            "FLOPs = 3 x 3 UNet forwards (recomputation not counted); upstream 90-94 s, "
            f"21.9 GB, target <= 1/3 memory (7.3 GB); load average {load_average()}",
        })  # fmt: skip

    q = {
        "vo": torch.rand(6, 3, 1, 32, 32) * 2 - 1,
        "idx_o": torch.arange(3.0).repeat(6, 1),
        "vp": torch.rand(6, 2, 1, 32, 32) * 2 - 1,
        "idx_p": torch.tensor([[3.0, 5.0]]).repeat(6, 1),
    }
    quick_module = _quickstart_module()
    seconds = time_fn(lambda: _quick_step(quick_module, q), max(reps, 3), warmup=1)["median_s"]
    yield ({
        "name": "quickstart training step, batch 6 clips x 2 frames at 32x32",
        "seconds": seconds, "notes": f"{6 / seconds:.1f} train clips/s; load average {load_average()}",
    })  # fmt: skip


def _quickstart_module():
    from stdiff.module import STDiffModule

    exp = OmegaConf.load(Path(__file__).parents[4] / "experiments/stdiff/quickstart.yaml")
    torch.manual_seed(0)
    return STDiffModule(**model_kwargs("default", 1, exp.model))


def _quick_step(module, batch):
    loss = module.diffusion_loss(batch)
    loss.backward()
    module.zero_grad(set_to_none=True)
