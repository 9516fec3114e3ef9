"""``make bench MODEL=imf``: training iteration (G + D) and reconstruction speed and memory.

Rows: the paper-sized model at 256 px, batch 1 (train iteration: upstream
15.5 s / 9.8 GB; reconstruction: 4.55 s / 2.5 GB per frame), in fp32 and with bf16 autocast,
reconstruction at 64/128/256/512 px (upstream only runs at 256), the paper model's iteration
at 64 px and the quickstart model's iteration at 64 px (batch 16). Rows carry iterations/s or
frames/s, FLOPs per call (``tools/bench.py`` turns them into GFLOP/s and fractions of the
machine's matmul peak) and the peak RSS of a fresh process running the workload. ``quick=1``
shrinks the paper model to a smoke of the same code paths; ``repeats=N`` sets timed calls per
row, ``memory=0`` skips the memory subprocesses.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

from imf.module import IMFModule
from motioncore.bench import peak_rss_gb, time_fn

UPSTREAM_TRAIN_S, UPSTREAM_RECON_S = 15.5, 4.55
PAPER = dict(image_size=256)
QUICKSTART = dict(
    image_size=64,
    feature_channels=(32, 64, 96),
    motion_channels=(32, 64, 96),
    stem_channels=16,
    res_blocks=0,
    hidden_blocks=1,
    token_channels=(16, 32, 64, 128),
    token_mlp_layers=2,
    depth=1,
    heads=4,
    mlp_dim=128,
    decoder_refine_blocks=1,
)
SMALL = dict(
    feature_channels=(32, 64, 64, 64),
    motion_channels=(32, 64, 64, 64),
    stem_channels=16,
    token_channels=(16, 32, 64),
    depth=1,
    heads=4,
    mlp_dim=64,
)


def build(generator: dict, paper_losses: bool = True) -> IMFModule:
    torch.manual_seed(0)
    disc = (
        dict(num_scales=2, ndf=64, n_layers=4)
        if paper_losses
        else dict(num_scales=2, ndf=32, n_layers=3)
    )
    return IMFModule(
        generator=generator,
        discriminator=disc,
        ada=dict(enabled=False),
        perceptual=dict(weights=None),
        lambda_perceptual=10.0 if paper_losses else 0.0,
    )


def _autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def train_iteration_fn(module: IMFModule, batch_size: int, bf16: bool):
    size = module.generator.image_size
    batch = {
        "reference": torch.rand(batch_size, 3, size, size) * 2 - 1,
        "current": torch.rand(batch_size, 3, size, size) * 2 - 1,
    }
    opt_g = torch.optim.Adam(module.generator.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(module.discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
    module.train()

    def step():
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        with _autocast(bf16):
            total = module.step_losses(batch, use_gan=True)["total"]
        total.backward()
        opt_d.step()
        opt_g.step()

    return step


def reconstruction_fn(module: IMFModule, bf16: bool, cached_reference: bool):
    """One frame: the full forward (E_F, E_T twice, IMF_D twice), or with the reference code
    cached as in the codec (E_T and IMF_D once, IMF_A, D_F)."""
    gen = module.generator.eval()
    size = gen.image_size
    current, reference = torch.rand(1, 3, size, size) * 2 - 1, torch.rand(1, 3, size, size) * 2 - 1
    with torch.no_grad(), _autocast(bf16):
        cache = gen.encode_reference(reference)

    @torch.no_grad()
    def run():
        with _autocast(bf16):
            if cached_reference:
                return gen.decode(cache, gen.encode_tokens(current))
            return gen(current, reference)

    return run


def _flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def _memory_train(generator: dict, paper_losses: bool, batch_size: int, bf16: bool) -> None:
    torch.set_num_threads(2)
    fn = train_iteration_fn(build(generator, paper_losses), batch_size, bf16)
    fn()
    fn()


def _memory_recon(generator: dict, bf16: bool) -> None:
    torch.set_num_threads(2)
    reconstruction_fn(build(generator), bf16, cached_reference=False)()


def _train_row(name, generator, paper_losses, batch_size, bf16, repeats, memory, upstream, notes):
    step = train_iteration_fn(build(generator, paper_losses), batch_size, bf16)
    seconds = time_fn(step, repeats=repeats, warmup=1)["median_s"]
    return _report(
        {
            "name": name,
            "seconds": seconds,
            "iterations_per_s": round(1 / seconds, 4),
            "flops": _flops(step),
            "peak_mem_gb": peak_rss_gb(_memory_train, generator, paper_losses, batch_size, bf16)
            if memory
            else None,
            "upstream_seconds": upstream,
            "target_ratio": 0.6 if upstream else None,
            "notes": notes,
        }
    )


def _recon_row(name, module, generator, bf16, cached, repeats, memory, upstream, notes):
    recon = reconstruction_fn(module, bf16, cached)
    seconds = time_fn(recon, repeats=repeats, warmup=1)["median_s"]
    return _report(
        {
            "name": name,
            "seconds": seconds,
            "frames_per_s": round(1 / seconds, 4),
            # Counted on the fp32 twin: the FLOPs are the same, and FlopCounterMode breaks the
            # eval-mode fused TransformerEncoderLayer under bf16 autocast.
            "flops": _flops(reconstruction_fn(module, False, cached)),
            "peak_mem_gb": peak_rss_gb(_memory_recon, generator, bf16)
            if memory and not cached
            else None,
            "upstream_seconds": upstream,
            "target_ratio": 0.5 if upstream else None,
            "notes": notes,
        }
    )


def benchmarks(
    quick: int | str = 0, repeats: int | str = 3, memory: int | str = 1
) -> Iterator[dict]:
    """All rows; ``repeats`` timed calls per row (median) after one warm-up, ``memory=0``
    skips the peak-RSS subprocesses. Peak memory is the whole process (torch included)."""
    quick, repeats, memory = int(quick), int(repeats), int(memory)
    paper = {**PAPER, **SMALL} if quick else PAPER
    label = "small (quick=1)" if quick else "paper-sized"
    train_notes = "L1 + VGG19 pyramid + two-scale hinge GAN, one backward, Adam on G and D"
    for bf16 in (False, True):
        precision = "bf16 autocast" if bf16 else "fp32"
        yield (
            _train_row(
                f"train iteration G+D, 256 px, batch 1, {label}, {precision}",
                paper,
                True,
                1,
                bf16,
                repeats,
                memory,
                None if quick else UPSTREAM_TRAIN_S,
                train_notes,
            )
        )
        module = build(paper)
        for cached in (False, True):
            what = "codec decode (reference cached)" if cached else "full forward"
            yield (
                _recon_row(
                    f"reconstruction 256 px, 1 frame, {what}, {label}, {precision}",
                    module,
                    paper,
                    bf16,
                    cached,
                    repeats,
                    memory,
                    None if quick else UPSTREAM_RECON_S,
                    "SDPA flash attention in IMF_A (upstream materialises 4096^2 scores)",
                )
            )
        del module
    small = {**paper, "image_size": 64}
    yield (
        _train_row(
            f"train iteration G+D, 64 px, batch 1, {label}, fp32",
            small,
            True,
            1,
            False,
            repeats,
            memory,
            None,
            train_notes + "; upstream fails at any resolution other than 256",
        )
    )
    for size in (64, 128, 512):
        generator = {**paper, "image_size": size}
        yield (
            _recon_row(
                f"reconstruction {size} px, 1 frame, full forward, {label}, fp32",
                build(generator),
                generator,
                False,
                False,
                repeats,
                memory,
                None,
                "upstream fails at any resolution other than 256",
            )
        )
    yield (
        _train_row(
            "train iteration G+D, 64 px, batch 16, quickstart model, fp32",
            QUICKSTART,
            False,
            16,
            False,
            repeats,
            memory,
            None,
            "L1 + two-scale hinge GAN (experiments/imf/quickstart.yaml)",
        )
    )


def _report(row: dict) -> dict:
    """Print each row as soon as it is measured (the full bench takes many minutes)."""
    print(f"[imf bench] {row['name']}: {row['seconds']:.3f} s", file=sys.stderr, flush=True)
    return row
