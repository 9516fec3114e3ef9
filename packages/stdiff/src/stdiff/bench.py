"""``make bench MODEL=stdiff``: the kitti_range workloads of PERFORMANCE.md at 64 x 512.

Rows (kwargs from ``make bench ARGS="k=v"``):
- UNet forward of one 64 x 512 frame, fp32 and bf16 autocast (SDPA attention);
- seconds per predicted frame for DDPM-100 and DPM-Solver++-20: motion branch + ``sample_steps``
  timed denoising steps (SPADE gamma/beta cached over steps), extrapolated to the full step count
  and labelled so; ``sample_steps=100`` measures DDPM-100 without extrapolation;
- training step, batch 1, 3 observed + 3 predicted frames (AdamW), only with ``train=1``: it takes
  minutes and ~10 GB on a 2-core CPU;
- training samples/s of the quickstart model (always; seconds).
FLOPs per call come from torch's FlopCounterMode on the ``meta`` device (no compute).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from motioncore.bench import peak_rss_gb, time_fn

CONFIGS = Path(__file__).parent / "configs"
UPSTREAM_UNET_S, UPSTREAM_FRAME_S, UPSTREAM_TRAIN_S = 7.3, 730.0, 92.0


def _model_cfg(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONFIGS / "model" / f"{name}.yaml"), resolve=True)


@functools.cache
def _module(name: str = "kitti_range", device: str = "cpu"):
    from stdiff.module import STDiffModule

    cfg = _model_cfg(name)
    cfg.pop("_target_")
    torch.manual_seed(0)
    with torch.device(device):
        return STDiffModule(**cfg).eval()


def _inputs(device="cpu", frames: int = 1):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(frames, 2, 64, 512, generator=g).to(device)
    m = torch.randn(frames, 256, 16, 128, generator=g).to(device)
    t = torch.full((frames,), 500, dtype=torch.long, device=device)
    return x, t, m


def _unet_forward(bf16: bool, device: str = "cpu"):
    unet = _module(device=device).model.unet
    x, t, m = _inputs(device)
    with torch.no_grad(), torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16):
        return unet(x, t, m)


def _train_batch(device="cpu"):
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(1, 6, 1, 64, 512, generator=g).to(device) * 2 - 1
    times = torch.arange(6.0, device=device)[None]
    return {"vo": frames[:, :3], "idx_o": times[:, :3], "vp": frames[:, 3:], "idx_p": times[:, 3:]}


def _train_step(name: str = "kitti_range", batch=None):
    module = _module(name).train()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4, betas=(0.95, 0.999))
    loss = module.diffusion_loss(batch if batch is not None else _train_batch())
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def _meta_flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def _unet_flops() -> int:
    unet = _module(device="meta").model.unet
    x, t, m = _inputs("meta")
    return _meta_flops(lambda: unet(x, t, m))


def _sample_frame(sampler: str, steps: int, bf16: bool):
    module = _module()
    b = _train_batch()
    g = torch.Generator().manual_seed(0)
    return module.predict(
        b["vo"],
        b["idx_o"],
        b["idx_p"][:, :1],
        1,
        sampler=sampler,
        num_steps=steps,
        generator=g,
        bf16=bf16,
    )


def benchmarks(
    quick: str = "0", train: str = "0", sample_steps: str = "2", repeats: str = "3", **kw
) -> list[dict]:
    if kw:
        raise ValueError(
            f"unknown bench options {sorted(kw)}; use quick, train, sample_steps, repeats"
        )
    torch.manual_seed(0)
    reps, steps = int(repeats), int(sample_steps)
    rows = []
    unet_flops = _unet_flops()
    for bf16 in (False, True):
        label = "bf16 autocast" if bf16 else "fp32"
        t = time_fn(lambda bf16=bf16: _unet_forward(bf16), repeats=reps, warmup=1)
        rows.append(
            {
                "name": f"kitti_range UNet forward, 1 frame 64x512, {label}, SDPA",
                "seconds": t["median_s"],
                "flops": unet_flops,
                "upstream_seconds": UPSTREAM_UNET_S,
                "target_ratio": 0.5,
                "notes": "204M-parameter model; upstream 7.3 s / 2.8 GB (materialised 8192^2 scores)",
            }
        )
    if quick != "1":
        rows[0]["peak_mem_gb"] = peak_rss_gb(_unet_forward, False)
        rows[1]["peak_mem_gb"] = peak_rss_gb(_unet_forward, True)

    # seconds per predicted frame: motion branch + `steps` denoising steps, extrapolated
    motion = time_fn(lambda: _sample_frame("ddpm", 1, True), repeats=1, warmup=1)["median_s"]
    timed = time_fn(lambda: _sample_frame("ddpm", steps + 1, True), repeats=1, warmup=0)["median_s"]
    per_step = (timed - motion) / steps
    overhead = motion - per_step  # SDE + context encoding + SPADE heads, once per frame
    for sampler, total in (("ddpm", 100), ("dpmsolver++", 20)):
        exact = total == steps + 1
        rows.append(
            {
                "name": f"predict 1 frame 64x512, {sampler} {total} steps, bf16 + SDPA + cached SPADE",
                "seconds": overhead + total * per_step,
                "flops": unet_flops * total,
                "upstream_seconds": UPSTREAM_FRAME_S,
                "target_ratio": 0.1,
                "notes": (
                    "measured"
                    if exact
                    else f"extrapolated: {steps} timed UNet steps ({per_step:.2f} s each) + "
                    f"{overhead:.2f} s motion/SPADE per frame; upstream is DDPM-100 fp32"
                ),
            }
        )

    if train == "1":
        t = time_fn(_train_step, repeats=1, warmup=1)
        rows.append(
            {
                "name": "kitti_range training step, batch 1, 3 obs + 3 pred frames, fp32 AdamW",
                "seconds": t["median_s"],
                "peak_mem_gb": peak_rss_gb(_train_step),
                "upstream_seconds": UPSTREAM_TRAIN_S,
                "target_ratio": 0.5,
                "notes": f"{3 / t['median_s']:.3f} predicted frames/s; upstream 90-94 s, 21.9 GB",
            }
        )
    q = {
        "vo": torch.rand(6, 3, 1, 32, 32) * 2 - 1,
        "idx_o": torch.arange(3.0).repeat(6, 1),
        "vp": torch.rand(6, 2, 1, 32, 32) * 2 - 1,
        "idx_p": torch.tensor([[3.0, 5.0]]).repeat(6, 1),
    }
    quick_module = _quickstart_module()
    t = time_fn(lambda: _quick_step(quick_module, q), repeats=reps, warmup=1)
    rows.append(
        {
            "name": "quickstart training step, batch 6 clips x 2 frames at 32x32",
            "seconds": t["median_s"],
            "notes": f"{6 / t['median_s']:.1f} train clips/s",
        }
    )
    return rows


def _quickstart_module():
    from stdiff.module import STDiffModule

    cfg = _model_cfg("default")
    cfg.pop("_target_")
    exp = OmegaConf.load(Path(__file__).parents[4] / "experiments/stdiff/quickstart.yaml")
    merged = OmegaConf.to_container(OmegaConf.merge(cfg, exp.model), resolve=True)
    torch.manual_seed(0)
    return STDiffModule(**merged)


def _quick_step(module, batch):
    loss = module.diffusion_loss(batch)
    loss.backward()
    module.zero_grad(set_to_none=True)
