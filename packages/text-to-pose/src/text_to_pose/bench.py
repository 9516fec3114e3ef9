"""``make bench MODEL=text-to-pose``: sampling and training speed at the upstream model size.

Workload (upstream defaults): batch 32, 100 frames, 40 text tokens, hidden 512, 8 heads, ff
2048, 2 text + 4 pose layers, 10 refinements. Sampling is timed without guidance, with CFG 2.5
(cond + uncond in one batched forward) in fp32, and with CFG in bf16 autocast; the text is
encoded once per sample before the loop. Training is one Adam step at batch 32 / 100 frames.
``flops`` counts the matmuls analytically (linear layers and attention), per timed call.
Keyword arguments: ``repeats`` (default 2, after one warm-up call; the workload is fixed and
the runner re-runs contended rows, so one attempt must stay near 2.5 idle minutes), ``batch``
(32), ``frames`` (100).
"""

from __future__ import annotations

import torch

from motioncore.bench import peak_rss_gb, time_fn
from text_to_pose.data.tokenizer import BOS
from text_to_pose.model.text_to_pose import refine_from_first_pose
from text_to_pose.module import TextToPoseModule

SIZES = dict(hidden=512, heads=8, ff=2048, text_layers=2, pose_layers=4, num_steps=10,
             max_frames=200, max_text_len=64)  # fmt: skip
TOKENS, KEYPOINT_FEATURES = 40, 225


def encoder_flops(tokens: int, layers: int, hidden: int, ff: int) -> float:
    """Matmul FLOPs of post-LN encoder layers over ``tokens`` tokens (one sample)."""
    linear = 2 * tokens * (4 * hidden * hidden + 2 * hidden * ff)
    attention = 2 * 2 * tokens * tokens * hidden
    return layers * (linear + attention)


def refiner_flops(frames: int, batch: int) -> float:
    h, ff = SIZES["hidden"], SIZES["ff"]
    tokens = frames + 1 + TOKENS
    io = 2 * frames * (KEYPOINT_FEATURES * h + h * h + h * KEYPOINT_FEATURES)
    return batch * (encoder_flops(tokens, SIZES["pose_layers"], h, ff) + io)


def text_flops(batch: int) -> float:
    return batch * encoder_flops(TOKENS, SIZES["text_layers"], SIZES["hidden"], SIZES["ff"])


def _inputs(batch: int, frames: int):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 200, (batch, TOKENS), generator=g)
    ids[:, 0] = BOS
    return {
        "pose": torch.randn(batch, frames, 75, 3, generator=g),
        "confidence": torch.rand(batch, frames, 75, generator=g),
        "lengths": torch.full((batch,), frames),
        "frame_valid": torch.ones(batch, frames, dtype=torch.bool),
        "text_ids": ids,
        "text_valid": torch.ones(batch, TOKENS, dtype=torch.bool),
    }


def _module() -> TextToPoseModule:
    torch.manual_seed(0)
    return TextToPoseModule(**SIZES)


def sampling_call(batch: int, frames: int, guidance: float, bf16: bool):
    module = _module().eval()
    x = _inputs(batch, frames)
    return lambda: refine_from_first_pose(
        module.model, x["pose"][:, 0], x["text_ids"], x["text_valid"], x["lengths"],
        guidance=guidance, steps=10, bf16=bf16,
    )  # fmt: skip


def training_call(batch: int, frames: int):
    module = _module().train()
    optimiser = module.configure_optimizers()
    x = _inputs(batch, frames)

    def step():
        out = module.losses(x)
        optimiser.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimiser.step()

    return step


def run_sampling(batch: int, frames: int, guidance: float, bf16: bool) -> None:
    sampling_call(batch, frames, guidance, bf16)()


def run_training(batch: int, frames: int) -> None:
    training_call(batch, frames)()


def benchmarks(repeats: int | str = 2, batch: int | str = 32, frames: int | str = 100, **_):
    repeats, batch, frames = int(repeats), int(batch), int(frames)
    for name, guidance, bf16, upstream in (
        ("sampling 10 refinements, no CFG, fp32", 1.0, False, 8.0),
        ("sampling 10 refinements, CFG 2.5 batched, fp32", 2.5, False, 14.1),
        ("sampling 10 refinements, CFG 2.5 batched, bf16 autocast", 2.5, True, 14.1),
    ):
        passes = 2 if guidance != 1.0 else 1
        flops = 10 * refiner_flops(frames, passes * batch) + text_flops(passes * batch)
        with torch.inference_mode():
            timing = time_fn(sampling_call(batch, frames, guidance, bf16), repeats=repeats)
        yield ({
            "name": f"{name} (B{batch}, {frames} frames, {TOKENS} tokens)",
            "seconds": timing["median_s"],
            "flops": flops,
            "peak_mem_gb": peak_rss_gb(run_sampling, batch, frames, guidance, bf16),
            "upstream_seconds": upstream,
            "target_ratio": 0.35,
            "notes": "text encoded once per sample (cond+uncond in one text-encoder call)",
        })  # fmt: skip
    timing = time_fn(training_call(batch, frames), repeats=repeats)
    train_flops = 3 * (refiner_flops(frames, batch) + text_flops(batch))
    yield ({
        "name": f"training step, Adam (B{batch}, {frames} frames, fp32)",
        "seconds": timing["median_s"],
        "flops": train_flops,
        "peak_mem_gb": peak_rss_gb(run_training, batch, frames),
        "upstream_seconds": 3.07,
        "target_ratio": 0.6,
        "notes": f"{batch / timing['median_s']:.1f} training samples/s",
    })  # fmt: skip
