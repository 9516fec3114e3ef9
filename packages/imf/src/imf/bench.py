"""``make bench MODEL=imf``: training iteration (G + D) and reconstruction speed and memory.

Rows: the paper-sized model at 256 px, batch 1 (train iteration: upstream 15.5 s / 9.8 GB;
reconstruction: 4.55 s / 2.5 GB per frame), in fp32 and with bf16 autocast; reconstruction at
64 and 128 px (fp32 and bf16) and 512 px (bf16; upstream only runs at 256), the paper model's
iteration at 64 px and the quickstart model's iteration at 64 px (batch 16).

Every row runs in its own fresh process: it builds the model, counts the FLOPs of one call
(which is also the warm-up), times ``repeats`` calls (median) and reports that process's peak
RSS (torch included) as the row's memory. The process first tells glibc to keep freed blocks
(see :func:`reuse_freed_memory`): with its defaults every iteration hands the 256 px activations
back to the kernel and faults them in again, and what that costs depends on the machine's
memory state (in a loaded profile 25 s of system time in one 128 px iteration whose compute
took 5.7 s), which made the fp32 training row vary 2x between runs. Rows carry iterations/s or
frames/s and FLOPs per call (``tools/bench.py`` turns them into GFLOP/s and fractions of the
machine's matmul peak). ``quick=1`` shrinks the paper model to a smoke of the same code paths;
``repeats=N`` sets timed calls per row.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from collections.abc import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

from imf.module import IMFModule
from motioncore.bench import run_in_fresh_process, time_fn

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
# glibc mallopt parameters and values: blocks below 32 MB (glibc's ceiling for the threshold)
# come from the heap, and up to 1 GB of free heap is kept instead of trimmed.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 1 << 30


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel.

    torch's CPU tensors come from ``malloc``; by default glibc serves large blocks with fresh
    ``mmap``s and trims the heap's free top, so each iteration page-faults its activations in
    again (the same as ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824`` in
    the environment of any other run). Returns False where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
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


def measure(
    generator: dict,
    train: bool,
    bf16: bool,
    repeats: int,
    threads: int,
    paper_losses: bool = True,
    batch_size: int = 1,
    cached_reference: bool = False,
) -> dict:
    """One row's workload in this process: ``{"seconds": median, "flops": per call}``."""
    reuse_freed_memory()
    torch.set_num_threads(threads)
    module = build(generator, paper_losses)
    if train:
        fn = train_iteration_fn(module, batch_size, bf16)
    else:
        fn = reconstruction_fn(module, bf16, cached_reference)
    flops = _flops(fn)  # doubles as the warm-up call
    return {"seconds": time_fn(fn, repeats=repeats, warmup=0)["median_s"], "flops": flops}


def _row(
    name: str,
    upstream: float | None,
    target: float,
    notes: str,
    generator: dict,
    train: bool,
    bf16: bool,
    repeats: int,
    paper_losses: bool = True,
    batch_size: int = 1,
    cached_reference: bool = False,
) -> dict:
    threads = torch.get_num_threads()
    measured, peak_gb = run_in_fresh_process(
        measure, generator, train, bf16, repeats, threads, paper_losses, batch_size,
        cached_reference,
    )  # fmt: skip
    seconds = measured["seconds"]
    print(f"[imf bench] {name}: {seconds:.3f} s, {peak_gb:.2f} GB", file=sys.stderr, flush=True)
    return {
        "name": name,
        "seconds": seconds,
        "iterations_per_s" if train else "frames_per_s": round(1 / seconds, 4),
        "flops": measured["flops"],
        "peak_mem_gb": round(peak_gb, 3),
        "upstream_seconds": upstream,
        "target_ratio": target if upstream else None,
        "notes": notes,
    }


def benchmarks(quick: int | str = 0, repeats: int | str = 2) -> Iterator[dict]:
    """All rows, each in a fresh process; ``repeats`` timed calls per row (median) after one
    warm-up call that also counts the FLOPs."""
    quick, repeats = int(quick), int(repeats)
    paper = {**PAPER, **SMALL} if quick else PAPER
    label = "small (quick=1)" if quick else "paper-sized"
    train_notes = "L1 + VGG19 pyramid + two-scale hinge GAN, one backward, Adam on G and D"
    recon_notes = "SDPA flash attention in IMF_A (upstream materialises 4096^2 scores)"
    elsewhere = "upstream fails at any resolution other than 256"
    for bf16 in (False, True):
        precision = "bf16 autocast" if bf16 else "fp32"
        yield _row(
            f"train iteration G+D, 256 px, batch 1, {label}, {precision}",
            None if quick else UPSTREAM_TRAIN_S,
            0.6,
            train_notes,
            paper,
            True,
            bf16,
            repeats,
        )
        for cached in (False, True):
            what = "codec decode (reference cached)" if cached else "full forward"
            yield _row(
                f"reconstruction 256 px, 1 frame, {what}, {label}, {precision}",
                None if quick else UPSTREAM_RECON_S,
                0.5,
                recon_notes,
                paper,
                False,
                bf16,
                repeats,
                cached_reference=cached,
            )
    yield _row(
        f"train iteration G+D, 64 px, batch 1, {label}, fp32",
        None,
        0.6,
        f"{train_notes}; {elsewhere}",
        {**paper, "image_size": 64},
        True,
        False,
        repeats,
    )
    # 512 px in bf16 only: in fp32 its three calls alone would take a third of the bench
    for size, precisions in ((64, (False, True)), (128, (False, True)), (512, (True,))):
        for bf16 in precisions:
            precision = "bf16 autocast" if bf16 else "fp32"
            yield _row(
                f"reconstruction {size} px, 1 frame, full forward, {label}, {precision}",
                None,
                0.5,
                f"{recon_notes}; {elsewhere}",
                {**paper, "image_size": size},
                False,
                bf16,
                repeats,
            )
    yield _row(
        "train iteration G+D, 64 px, batch 16, quickstart model, fp32",
        None,
        0.6,
        "L1 + two-scale hinge GAN (experiments/imf/quickstart.yaml)",
        QUICKSTART,
        True,
        False,
        repeats,
        paper_losses=False,
        batch_size=16,
    )
