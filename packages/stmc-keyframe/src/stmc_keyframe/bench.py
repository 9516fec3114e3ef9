"""``make bench MODEL=stmc-keyframe``: the PERFORMANCE.md workloads of this package.

Rows: a denoiser training step (batch 32, 200 frames, 27.0M parameters, AdamW) and STMC
sampling of a 3-interval 12 s timeline (240 frames) with CFG 2.5 at 100 steps (cond and
uncond of every crop in one batched forward). ``quick=1`` shrinks both to seconds.
"""

from __future__ import annotations

import torch

from motioncore.bench import peak_rss_gb, time_fn
from stmc_keyframe.model.denoiser import TransformerDenoiser
from stmc_keyframe.timeline import parse_timeline, sample_timeline

TIMELINE = """a person walks forward # 0 # 5 # legs
a person waves with the right hand # 3 # 8 # right arm
a person jumps in place # 7.5 # 12 # legs
"""


class _Module:
    """The attributes ``sample_timeline`` needs, without data or checkpoints."""

    def __init__(self, denoiser: TransformerDenoiser, steps: int):
        from motioncore.diffusion import NoiseSchedule

        self.denoiser, self.device = denoiser.eval(), torch.device("cpu")
        self.schedule = NoiseSchedule(
            steps, "cosine", prediction_type="sample", num_inference_steps=steps
        )
        self.d = {"num_steps": steps}

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        g = torch.Generator().manual_seed(len(texts))
        return torch.randn(
            len(texts), self.denoiser.tx_dim, generator=g
        )  # encoding is cached upstream too


def _sizes(quick: bool) -> dict:
    if quick:
        return {"latent_dim": 128, "ff_size": 256, "num_layers": 2, "num_heads": 4}
    return {}


def _train_step(quick: bool):
    torch.manual_seed(0)
    net = TransformerDenoiser(tx_dim=512, dropout=0.1, keyframe_conditioned=True, **_sizes(quick))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    b, n = (8, 50) if quick else (32, 200)
    x = torch.randn(b, n, 205)
    cond = {"text": torch.randn(b, 512), "valid": torch.ones(b, n, dtype=torch.bool),
            "obs_mask": torch.zeros(b, n, 205, dtype=torch.bool)}  # fmt: skip
    t = torch.randint(0, 100, (b,))

    def step():
        loss = (net(x, t, cond) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    params = sum(p.numel() for p in net.parameters())
    tokens = b * (n + 4)
    return step, 6 * params * tokens, params, f"batch {b}, {n} frames"


def _bench_train(quick: bool) -> None:
    _train_step(quick)[0]()


def benchmarks(quick: int | str = 0, **_) -> list[dict]:
    quick = bool(int(quick))
    step, flops, params, what = _train_step(quick)
    t = time_fn(step, repeats=2 if quick else 5, warmup=1)
    rows = [{
        "name": f"train step ({what}, {params / 1e6:.1f}M params, AdamW)", "seconds": t["median_s"],
        "flops": flops, "peak_mem_gb": peak_rss_gb(_bench_train, quick),
        "upstream_seconds": None if quick else 8.68, "target_ratio": 0.6,
        "notes": "6 * params * tokens FLOPs (attention excluded)",
    }]  # fmt: skip
    steps = 5 if quick else 100
    module = _Module(TransformerDenoiser(tx_dim=512, dropout=0.0, **_sizes(quick)), steps)
    intervals = parse_timeline(TIMELINE)

    def run():
        with torch.inference_mode():
            sample_timeline(module, intervals, guidance_scale=2.5, num_steps=steps,
                            generator=torch.Generator().manual_seed(0))  # fmt: skip

    t = time_fn(run, repeats=1 if quick else 3, warmup=1)
    rows.append({
        "name": f"STMC timeline sampling (3 intervals, 12 s, CFG 2.5, {steps} steps, batch 1)",
        "seconds": t["median_s"], "upstream_seconds": None if quick else 20.3, "target_ratio": 0.5,
        "notes": "all crops (text + transitions) and cond/uncond in one batched forward per step",
    })  # fmt: skip
    return rows
