"""``make bench MODEL=stmc-keyframe``: training-step and sampling speed and memory.

Rows: a denoiser training step (batch 32, 200 frames, 27.0M parameters, AdamW) in fp32 and under
bf16 autocast; STMC sampling of ONE text prompt (240 frames, CFG 2.5, batch 1: upstream's
workload, cond and uncond in one batched forward) with DDPM at 100 steps in fp32 and bf16 and with
DPM-Solver++ on the x0 prediction at ``dpm_steps`` steps; and, beyond upstream's table (no
upstream ratio), a 3-interval 12 s timeline with DDPM at 100 steps. Every row runs in a fresh
spawned process that reports its wall times (``motioncore.bench.time_fn``) and its peak RSS, so
the memory column is the workload's own. Options (``make bench ARGS="k=v ..."``): ``quick=1``
shrinks everything to seconds; ``repeats`` (default 2) timed training steps after one warm-up
step (sampling rows: ``repeats - 1``, at least one, without warm-up); ``dpm_steps`` (default
10, the fewest steps measured at equal quality).
"""

from __future__ import annotations

import torch

from motioncore.bench import load_average, run_in_fresh_process, time_fn
from motioncore.diffusion import Guidance, NoiseSchedule, sample
from stmc_keyframe.model.denoiser import TransformerDenoiser
from stmc_keyframe.timeline import (
    make_timeline_scheduler,
    parse_timeline,
    process_timeline,
    sample_timeline,
)

TIMELINE = """a person walks forward # 0 # 5 # legs
a person waves with the right hand # 3 # 8 # right arm
a person jumps in place # 7.5 # 12 # legs
"""
UPSTREAM_TRAIN_S, UPSTREAM_SAMPLE_S = 8.68, 20.3
TRAIN_TIMESTEPS = 100  # STMC's cosine schedule; samplers take num_inference_steps of it
# measured on the quickstart checkpoint (make eval's 30 test crops and seeds, keyframe
# in-betweening, the quickstart's post-processes): in-between MPJPE at DDPM 100 / 50 steps and at
# DPM-Solver++(2M) 20 / 10 steps
DPM_QUALITY = (
    "in-between MPJPE on the quickstart checkpoint (make eval, same seeds): DDPM-100 0.189 m, "
    "DPM-Solver++ 10 steps 0.184 m (-2.7%), 20 steps 0.183 m"
)


class _Module:
    """The attributes ``sample_timeline`` needs, without data or checkpoints."""

    def __init__(self, denoiser: TransformerDenoiser, steps: int):
        self.denoiser, self.device = denoiser.eval(), torch.device("cpu")
        self.schedule = _schedule(steps)
        self.d = {"num_steps": steps}

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        g = torch.Generator().manual_seed(len(texts))
        return torch.randn(
            len(texts), self.denoiser.tx_dim, generator=g
        )  # encoding is cached upstream too


def _schedule(steps: int) -> NoiseSchedule:
    return NoiseSchedule(
        TRAIN_TIMESTEPS, "cosine", prediction_type="sample", num_inference_steps=steps
    )


def _sizes(quick: bool) -> dict:
    if quick:
        return {"latent_dim": 128, "ff_size": 256, "num_layers": 2, "num_heads": 4}
    return {}


def _flops_per_token(net: TransformerDenoiser) -> int:
    """Multiply-adds x 2 of the matmuls one frame token goes through (attention scores aside)."""
    enc = sum(p.numel() for n, p in net.encoder.named_parameters() if p.ndim == 2)
    return 2 * (enc + net.input.weight.numel() + net.output.weight.numel())


def _attention_flops(net: TransformerDenoiser, b: int, n: int) -> int:
    layers = len(net.encoder.layers)
    return 4 * b * n * n * net.input.out_features * layers  # QK^T and AV


def _train_step(quick: bool, bf16: bool):
    torch.manual_seed(0)
    net = TransformerDenoiser(tx_dim=512, dropout=0.1, keyframe_conditioned=True, **_sizes(quick))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    b, n = (8, 50) if quick else (32, 200)
    x = torch.randn(b, n, 205)
    cond = {"text": torch.randn(b, 512), "valid": torch.ones(b, n, dtype=torch.bool),
            "obs_mask": torch.zeros(b, n, 205, dtype=torch.bool)}  # fmt: skip
    t = torch.randint(0, 100, (b,))

    def step():
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            out = net(x, t, cond)
        loss = (out.float() - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    tokens = n + 2 + net.nb_registers
    flops = 3 * (b * tokens * _flops_per_token(net) + _attention_flops(net, b, tokens))
    params = sum(p.numel() for p in net.parameters())
    return step, flops, params, b, n


def single_prompt_sampler(net: TransformerDenoiser, n: int, sampler: str, steps: int, bf16: bool):
    """``run(generator) -> x0 [1, n, 205]``: text-to-motion sampling of one prompt as
    ``StmcKeyframeModule.generate`` runs it (CFG 2.5 with cond and uncond batched into one
    forward), the denoiser under bf16 autocast when ``bf16``."""
    g = torch.Generator().manual_seed(1)
    text, empty = torch.randn(1, net.tx_dim, generator=g), torch.randn(1, net.tx_dim, generator=g)
    valid = torch.ones(1, n, dtype=torch.bool)
    schedule = _schedule(steps)

    def model(x, t, cond):
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return net(x, t, cond).float()

    def run(generator: torch.Generator) -> torch.Tensor:
        with torch.inference_mode():
            return sample(model, schedule, (1, n, net.nfeats), cond={"text": text, "valid": valid},
                          guidance=Guidance(uncond={"text": empty, "valid": valid}, scale=2.5),
                          num_steps=steps, generator=generator,
                          sampler=make_timeline_scheduler(schedule, sampler, "std"))  # fmt: skip

    return run


def _single_prompt(quick: bool, sampler: str, steps: int, bf16: bool):
    torch.manual_seed(0)
    net = TransformerDenoiser(tx_dim=512, dropout=0.0, **_sizes(quick)).eval()
    n = 48 if quick else 240
    run = single_prompt_sampler(net, n, sampler, steps, bf16)
    w = n + 2 + net.nb_registers
    flops = steps * (2 * w * _flops_per_token(net) + _attention_flops(net, 2, w))
    return (lambda: run(torch.Generator().manual_seed(0))), flops


def _sampling(quick: bool, sampler: str, steps: int, bf16: bool):
    torch.manual_seed(0)
    module = _Module(TransformerDenoiser(tx_dim=512, dropout=0.0, **_sizes(quick)), steps)
    intervals = parse_timeline(TIMELINE)

    def run():
        with torch.inference_mode():
            sample_timeline(module, intervals, guidance_scale=2.5, num_steps=steps,
                            sampler=sampler, bf16=bf16, generator=torch.Generator().manual_seed(0))  # fmt: skip

    # FLOPs of the forwards actually run: text crops twice (CFG), text-less crops once
    plan = process_timeline(intervals)
    per_tok, prefix = _flops_per_token(module.denoiser), 2 + module.denoiser.nb_registers
    lengths = [(c.end - c.start, bool(c.text)) for c in plan.crops]
    flops = 0
    for guided in (True, False):
        group = [n for n, g in lengths if g == guided]
        if group:
            b, w = len(group) * (2 if guided else 1), max(group) + prefix
            flops += b * w * per_tok + _attention_flops(module.denoiser, b, w)
    return run, flops * steps


def _run_timed(builder, args: tuple, repeats: int, warmup: int) -> float:
    return time_fn(builder(*args)[0], repeats=repeats, warmup=warmup)["median_s"]


def _timed(builder, args: tuple, repeats: int, warmup: int = 1) -> tuple[float, float]:
    """(median seconds over ``repeats`` runs after ``warmup`` runs, peak RSS GB) of
    ``builder(*args)[0]()`` in a fresh spawned process (threads as in the parent)."""
    return run_in_fresh_process(_run_timed, builder, args, repeats, warmup)


def benchmarks(quick: int | str = 0, repeats: int | str = 2, dpm_steps: int | str = 10, **kw):
    if kw:
        raise ValueError(f"unknown bench options {sorted(kw)}; use quick, repeats, dpm_steps")
    quick, reps, dpm = bool(int(quick)), int(repeats), int(dpm_steps)
    for bf16 in (False, True):
        _, flops, params, b, n = _train_step(quick, bf16)
        seconds, peak = _timed(_train_step, (quick, bf16), reps)
        yield ({
            "name": f"train step (batch {b}, {n} frames, {params / 1e6:.1f}M params, AdamW, "
            f"{'bf16 autocast' if bf16 else 'fp32'})",
            "seconds": seconds, "flops": flops, "peak_mem_gb": peak,
            "upstream_seconds": None if quick else UPSTREAM_TRAIN_S, "target_ratio": 0.6,
            "notes": f"{b / seconds:.2f} train samples/s; FLOPs = 3 x forward matmuls incl. "
            f"attention scores; load average {load_average()}",
        })  # fmt: skip
    steps = 5 if quick else 100
    dpm = max(2, dpm // 4) if quick else dpm
    for sampler, n_steps, bf16, target in (
        ("ddpm", steps, False, 0.5),
        ("ddpm", steps, True, 0.5),
        ("dpmsolver++", dpm, False, 0.25),
    ):
        _, flops = _single_prompt(quick, sampler, n_steps, bf16)
        # a sampling run is n_steps forwards: one timed run without warm-up is steady state
        seconds, peak = _timed(_single_prompt, (quick, sampler, n_steps, bf16), max(1, reps - 1), 0)
        yield ({
            "name": f"STMC sampling of one text prompt ({48 if quick else 240} frames, CFG 2.5, "
            f"{sampler} {n_steps} steps, batch 1, {'bf16 autocast' if bf16 else 'fp32'})",
            "seconds": seconds, "flops": flops, "peak_mem_gb": peak,
            "upstream_seconds": None if quick else UPSTREAM_SAMPLE_S, "target_ratio": target,
            "notes": "cond and uncond in one batched forward per step (upstream: two calls); "
            "upstream: DDPM-100 fp32"
            + (f"; equal quality: {DPM_QUALITY}" if sampler != "ddpm" else "")
            + f"; load average {load_average()}",
        })  # fmt: skip
    plan = process_timeline(parse_timeline(TIMELINE))
    texted = sum(bool(c.text) for c in plan.crops)
    _, flops = _sampling(quick, "ddpm", steps, False)
    seconds, peak = _timed(_sampling, (quick, "ddpm", steps, False), max(1, reps - 1), 0)
    yield ({
        "name": f"STMC timeline sampling (3 intervals, 12 s, CFG 2.5, ddpm {steps} steps, batch 1, "
        "fp32; no upstream figure)",
        "seconds": seconds, "flops": flops, "peak_mem_gb": peak,
        "upstream_seconds": None, "target_ratio": None,
        "notes": f"{texted} text crops (cond+uncond) in one forward, {len(plan.crops) - texted} "
        "text-less crops (cond == uncond) once in a second forward, each padded to its own "
        f"longest crop; load average {load_average()}",
    })  # fmt: skip
