"""STMC multi-track timelines (Petrovich et al. 2024): parsing, body-part assignment, and the
per-crop denoising collage with DiffCollage transitions (Zhang et al. 2023).

Timeline file: one interval per line, ``text # start_s # end_s # part [# part ...]`` (parts may
also be comma separated; none = whole body). Blank lines and ``%``/``;`` comments are skipped.

Each step denoises every text crop (cond and uncond in one batch) and, in a second batch, every
crop without text (transitions: cond == uncond, so no guidance pass), stitches the x0 crops per
body part in feature space (adding the crops, subtracting the transitions on their overlaps),
then takes one DDPM posterior step (or a DDIM / DPM-Solver++ step) on the whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from motioncore.diffusion import guided_output
from motioncore.masking import length_mask
from stmc_keyframe.representation import smplrifke

ALL_PARTS = tuple(smplrifke.BODY_PARTS)


@dataclass(frozen=True)
class Interval:
    text: str
    start: float
    end: float
    parts: tuple[str, ...] = ALL_PARTS


@dataclass
class Crop:
    text: str  # "" for transitions
    start: int
    end: int
    transition: bool = False


@dataclass
class Plan:
    """Crops to denoise and, per body part, which crops add (+1) or subtract (-1)."""

    n_frames: int
    crops: list[Crop] = field(default_factory=list)
    uses: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # part -> (crop, sign)


def _canonical_part(name: str) -> str:
    name = " ".join(name.strip().lower().split())
    name = smplrifke.PART_ALIASES.get(name, name)
    if name not in smplrifke.BODY_PARTS:
        raise ValueError(
            f"unknown body part {name!r}; use {sorted(smplrifke.BODY_PARTS)} or the aliases "
            f"{sorted(smplrifke.PART_ALIASES)}"
        )
    return name


def parse_timeline(text: str) -> list[Interval]:
    """Parse the timeline format; errors name the line and what is wrong."""
    out = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "%;":
            continue
        fields = [f.strip() for f in line.split("#")]
        if len(fields) < 3:
            raise ValueError(
                f"timeline line {no}: expected 'text # start # end # parts', got {raw!r}"
            )
        try:
            start, end = float(fields[1]), float(fields[2])
        except ValueError as e:
            raise ValueError(f"timeline line {no}: start/end must be seconds ({e})") from e
        if not 0 <= start < end:
            raise ValueError(f"timeline line {no}: need 0 <= start < end, got {start}, {end}")
        names = [p for f in fields[3:] for p in f.split(",") if p.strip()]
        parts = tuple(dict.fromkeys(_canonical_part(p) for p in names)) or ALL_PARTS
        out.append(Interval(fields[0], start, end, parts))
    if not out:
        raise ValueError("the timeline has no intervals")
    return out


def read_timeline(path: str | Path) -> list[Interval]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"timeline file {path} does not exist")
    return parse_timeline(path.read_text())


def assign_parts(
    intervals: list[Interval], fps: float = 20.0
) -> tuple[int, dict[str, list[tuple[int, int, int]]]]:
    """Per body part a list of ``(interval index or -1, start, end)`` frames covering the
    timeline, by STMC's SINC heuristic on every unique sub-interval: the interval with the
    legs (else the most parts) is the base for all parts; the others override their parts."""
    frames = [(round(iv.start * fps), round(iv.end * fps)) for iv in intervals]
    n = max(e for _, e in frames)
    cuts = sorted({0, n, *[x for f in frames for x in f]})
    per_part: dict[str, list[tuple[int, int, int]]] = {p: [] for p in ALL_PARTS}
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        active = [i for i, (s, e) in enumerate(frames) if s <= a and b <= e]
        owner = dict.fromkeys(ALL_PARTS, -1)
        if active:
            legs = [i for i in active if "legs" in intervals[i].parts]
            base = legs[0] if legs else max(active, key=lambda i: len(intervals[i].parts))
            owner = dict.fromkeys(ALL_PARTS, base)
            for i in active:
                if i != base:
                    for p in intervals[i].parts:
                        owner[p] = i
        for p, i in owner.items():
            runs = per_part[p]
            if runs and runs[-1][0] == i and runs[-1][2] == a:
                runs[-1] = (i, runs[-1][1], b)
            else:
                runs.append((i, a, b))
    return n, per_part


def process_timeline(intervals: list[Interval], fps: float = 20.0, overlap_s: float = 0.5) -> Plan:
    """Crops (text crops extended by half the overlap on each side, transition crops of the
    overlap length around every per-part boundary) and their per-part combination."""
    n, per_part = assign_parts(intervals, fps)
    half = round(overlap_s * fps / 2)
    plan = Plan(n_frames=n)
    index: dict[tuple, int] = {}

    def crop_id(text: str, s: int, e: int, transition: bool) -> int:
        key = (text, max(0, s), min(n, e), transition)
        if key not in index:
            index[key] = len(plan.crops)
            plan.crops.append(Crop(*key))
        return index[key]

    for part, runs in per_part.items():
        uses = []
        for k, (i, s, e) in enumerate(runs):
            text = intervals[i].text if i >= 0 else ""
            lo = s - half if k > 0 else s
            hi = e + half if k < len(runs) - 1 else e
            uses.append((crop_id(text, lo, hi, False), 1))
            if k > 0:
                uses.append((crop_id("", s - half, s + half, True), -1))
        plan.uses[part] = uses
    return plan


def combine(plan: Plan, x0_crops: torch.Tensor) -> torch.Tensor:
    """Stitch per-crop x0 [C, L, F] into the full sequence [n, F] per body part."""
    out = x0_crops.new_zeros(plan.n_frames, x0_crops.shape[-1])
    for part, uses in plan.uses.items():
        idx = torch.tensor(smplrifke.body_part_features(part), device=x0_crops.device)
        for c, sign in uses:
            crop = plan.crops[c]
            length = crop.end - crop.start
            out[crop.start : crop.end, idx] += sign * x0_crops[c, :length][:, idx]
    return out


def posterior_step(
    x0: torch.Tensor,
    x_t: torch.Tensor,
    abar_t: float,
    abar_s: float,
    noise: torch.Tensor,
    mode: str,
) -> torch.Tensor:
    """DDPM posterior q(x_s | x_t, x0) (Ho et al. 2020, eq. 6-7, for any s < t).

    ``mode="std"`` adds ``sqrt(var) * z``; ``mode="upstream"`` reproduces STMC's sampler, which
    adds ``var * z`` (reference, pitfall "STMC sampler noise is variance-scaled"). diffusers'
    DDPM step cannot scale by the variance, hence this function.
    """
    alpha = abar_t / abar_s
    c0 = abar_s**0.5 * (1 - alpha) / (1 - abar_t)
    ct = alpha**0.5 * (1 - abar_s) / (1 - abar_t)
    var = (1 - alpha) * (1 - abar_s) / (1 - abar_t)
    scale = var**0.5 if mode == "std" else var
    return c0 * x0 + ct * x_t + scale * noise


def _crop_groups(plan: Plan) -> list[tuple[list[int], bool]]:
    """Crops denoised together: ``(crop indices, needs CFG)``. Crops with an empty text (the
    transitions and any uncovered span) have cond == uncond, so guidance leaves their output
    unchanged and they run once, unguided; each group is padded only to its own longest crop."""
    texted = [i for i, c in enumerate(plan.crops) if c.text]
    empty = [i for i, c in enumerate(plan.crops) if not c.text]
    return [(ids, guided) for ids, guided in ((texted, True), (empty, False)) if ids]


def denoise_crops(
    module,
    plan: Plan,
    x: torch.Tensor,
    t: int,
    text: torch.Tensor,
    null_text: torch.Tensor,
    guidance_scale: float,
    fast: bool = True,
    bf16: bool = False,
) -> torch.Tensor:
    """Guided x0 of every crop of ``x`` [n, F] at step ``t``: [C, L, F] (L = longest crop).

    ``fast=False`` is the plain reference: all crops, padded to the longest, cond and uncond in
    one batch. ``fast=True`` runs :func:`_crop_groups` (same result up to float rounding).
    ``bf16`` runs the denoiser under bf16 autocast (device type of ``x``)."""
    device, f = x.device, x.shape[-1]
    lengths = [c.end - c.start for c in plan.crops]
    width = max(lengths)
    groups = _crop_groups(plan) if fast else [(list(range(len(plan.crops))), True)]
    out = x.new_zeros(len(plan.crops), width, f)
    for ids, guided in groups:
        w = max(lengths[i] for i in ids)
        crops = x.new_zeros(len(ids), w, f)
        for j, i in enumerate(ids):
            crops[j, : lengths[i]] = x[plan.crops[i].start : plan.crops[i].end]
        valid = length_mask(torch.tensor([lengths[i] for i in ids]), w).to(device)
        index = torch.tensor(ids, device=device)
        cond = {"text": text[index], "valid": valid,
                "obs_mask": torch.zeros(len(ids), w, f, dtype=torch.bool, device=device)}  # fmt: skip
        uncond = {**cond, "text": null_text[index]} if guided else None
        tt = torch.full((len(ids),), t, dtype=torch.long, device=device)
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            pred = guided_output(module.denoiser, crops, tt, cond, uncond, guidance_scale)
        out[index, :w] = module.schedule.predict_x0(pred.float(), crops, tt)
    return out


@torch.no_grad()
def sample_timeline(
    module,
    intervals: list[Interval],
    fps: float = 20.0,
    overlap_s: float = 0.5,
    guidance_scale: float = 2.5,
    num_steps: int | None = None,
    posterior_noise: str = "std",
    generator: torch.Generator | None = None,
    sampler: str = "ddpm",
    bf16: bool = False,
    fast: bool = True,
) -> torch.Tensor:
    """STMC sampling; returns normalised features [n, 205]. ``module`` is a trained
    :class:`~stmc_keyframe.module.StmcKeyframeModule` (for its denoiser, schedule and text).

    ``sampler="ddpm"`` is STMC's posterior step (``posterior_noise`` picks its noise scale);
    ``"ddim"`` / ``"dpmsolver++"`` step the stitched x0 with the diffusers scheduler (DPM-Solver++
    works on x0 directly, so 20-25 steps replace 100). ``bf16``: bf16 autocast for the denoiser;
    ``fast``: see :func:`denoise_crops`."""
    if posterior_noise not in ("std", "upstream"):
        raise ValueError("posterior_noise must be 'std' or 'upstream'")
    if sampler not in ("ddpm", "ddim", "dpmsolver++"):
        raise ValueError(f"sampler={sampler!r} is unknown; use 'ddpm', 'ddim' or 'dpmsolver++'")
    plan = process_timeline(intervals, fps, overlap_s)
    device = module.device
    f = smplrifke.N_FEATS
    text = module.encode_text([c.text for c in plan.crops])
    null_text = module.encode_text([""] * len(plan.crops))
    sched = module.schedule.make_scheduler(sampler)
    sched.set_timesteps(num_steps or module.d["num_steps"])
    steps = [int(s) for s in sched.timesteps]
    abar = module.schedule.alphas_cumprod.double()
    x = torch.randn(plan.n_frames, f, generator=generator).to(device) * sched.init_noise_sigma
    for k, t in enumerate(steps):
        x0_crops = denoise_crops(
            module, plan, x, t, text, null_text, guidance_scale, fast=fast, bf16=bf16
        )
        x0 = combine(plan, x0_crops)
        if sampler != "ddpm":
            tt = torch.full((1,), t, dtype=torch.long, device=device)
            out = module.schedule.output_from_x0(x0[None], x[None], tt)[0]
            x = sched.step(out, t, x, generator=generator).prev_sample
            continue
        if k == len(steps) - 1:
            return x0
        s = steps[k + 1]
        noise = torch.randn(x.shape, generator=generator).to(device)
        x = posterior_step(x0, x, float(abar[t]), float(abar[s]), noise, posterior_noise)
    return x
