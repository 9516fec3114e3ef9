"""STMC multi-track timelines (Petrovich et al. 2024): parsing, body-part assignment, and the
per-crop denoising collage with DiffCollage transitions (Zhang et al. 2023).

Timeline file: one interval per line, ``text # start_s # end_s # part [# part ...]`` (parts may
also be comma separated; none = whole body). ``%``/``;`` lines are comments. A blank line ends a
timeline, so one file can hold many (STMC's benchmark format, e.g. its 500-timeline MTT file);
each gives one motion and all of them are sampled in one batch.

Seconds map to frames as upstream does: ``int(fps * seconds)`` (truncation), and every timeline
is shifted so that its first interval starts at frame 0. With an overlap of
``n = int(fps * overlap_s)`` frames (``left = n // 2``, ``right = n - left``):

- one text crop per interval, extended by ``left``/``right`` frames (clipped to the timeline);
- per body part, the interval that owns each stretch of time (SINC heuristic, see
  :func:`assign_parts`), each run extended like the crops and read out of its interval's crop;
- at every interval boundary inside the timeline, one crop without text of the overlap length;
  its x0 is subtracted on the body parts whose owner changes there (DiffCollage), so the
  stitched sequence has unit weight everywhere.

Differences from upstream (STMC at a8b2a1f): ties in the SINC heuristic go to the earlier
interval in the file (upstream shuffles them at random); an interval without body parts means the
whole body (upstream: no part); a stretch no interval covers is denoised without text (upstream
fails on such gaps).

Each denoising step is one call of :class:`TimelineCollage` inside
``motioncore.diffusion.sample``: the crops of every timeline are denoised in one batch (text crops
with classifier-free guidance; crops without text once, since cond == uncond for them), the x0
crops are stitched per body part, and the scheduler steps the full sequences. STMC's own step is
the DDPM posterior with noise scaled by the posterior *variance* (``posterior_noise=upstream``,
:class:`UpstreamNoiseDDPMScheduler`); ``std`` is the textbook square root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import DDPMScheduler, SchedulerMixin

from motioncore.diffusion import Guidance, Keyframes, guided_output, sample
from motioncore.masking import length_mask
from stmc_keyframe.representation import smplrifke

ALL_PARTS = tuple(smplrifke.BODY_PARTS)
POSTERIOR_NOISE = ("std", "upstream")
TIMELINE_SAMPLERS = ("ddpm", "ddim", "dpmsolver++")


@dataclass(frozen=True)
class Interval:
    text: str
    start: float
    end: float
    parts: tuple[str, ...] = ALL_PARTS


@dataclass
class Crop:
    text: str  # "" for transitions and uncovered stretches
    start: int
    end: int
    transition: bool = False


@dataclass
class Plan:
    """Crops to denoise and, per body part, the stretches ``(crop, start, end, sign)`` of the
    output (frames of the timeline) read from a crop and added (+1) or subtracted (-1)."""

    n_frames: int
    crops: list[Crop] = field(default_factory=list)
    uses: dict[str, list[tuple[int, int, int, int]]] = field(default_factory=dict)


def _canonical_part(name: str) -> str:
    name = " ".join(name.strip().lower().split())
    name = smplrifke.PART_ALIASES.get(name, name)
    if name not in smplrifke.BODY_PARTS:
        raise ValueError(
            f"unknown body part {name!r}; use {sorted(smplrifke.BODY_PARTS)} or the aliases "
            f"{sorted(smplrifke.PART_ALIASES)}"
        )
    return name


def _parse_line(raw: str, no: int) -> Interval:
    fields = [f.strip() for f in raw.strip().split("#")]
    if len(fields) < 3:
        raise ValueError(f"timeline line {no}: expected 'text # start # end # parts', got {raw!r}")
    try:
        start, end = float(fields[1]), float(fields[2])
    except ValueError as e:
        raise ValueError(f"timeline line {no}: start/end must be seconds ({e})") from e
    if not 0 <= start < end:
        raise ValueError(f"timeline line {no}: need 0 <= start < end, got {start}, {end}")
    names = [p for f in fields[3:] for p in f.split(",") if p.strip()]
    parts = tuple(dict.fromkeys(_canonical_part(p) for p in names)) or ALL_PARTS
    return Interval(fields[0], start, end, parts)


def parse_timelines(text: str) -> list[list[Interval]]:
    """Every timeline of a file's text (blank lines separate them); errors name the line."""
    timelines: list[list[Interval]] = [[]]
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            if timelines[-1]:
                timelines.append([])
            continue
        if line[0] in "%;":
            continue
        timelines[-1].append(_parse_line(raw, no))
    timelines = [t for t in timelines if t]
    if not timelines:
        raise ValueError("the timeline has no intervals")
    return timelines


def parse_timeline(text: str) -> list[Interval]:
    """The single timeline of ``text``; a text holding several (blank-line separated) is refused."""
    timelines = parse_timelines(text)
    if len(timelines) > 1:
        raise ValueError(
            f"the text holds {len(timelines)} timelines separated by blank lines; use "
            "parse_timelines/read_timelines, or remove the blank lines to make one timeline"
        )
    return timelines[0]


def read_timelines(path: str | Path) -> list[list[Interval]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"timeline file {path} does not exist")
    return parse_timelines(path.read_text())


def to_frames(intervals: list[Interval], fps: float = 20.0) -> list[tuple[int, int]]:
    """Frame spans as upstream: ``int(fps * s)``, shifted so the timeline starts at frame 0."""
    spans = [(int(fps * iv.start), int(fps * iv.end)) for iv in intervals]
    first = min(s for s, _ in spans)
    spans = [(s - first, e - first) for s, e in spans]
    for iv, (s, e) in zip(intervals, spans, strict=True):
        if e <= s:
            raise ValueError(f"interval {iv.text!r} ({iv.start}-{iv.end} s) is under one frame")
    return spans


def _owners(active: list[int], parts: list[tuple[str, ...]]) -> dict[str, int]:
    """SINC heuristic on one stretch: the base (an interval with the legs, else the one with the
    most parts) gets every part; the others, most parts first, take over their own parts."""
    legs = [i for i in active if "legs" in parts[i]]
    base = max(legs or active, key=lambda i: len(parts[i]))
    owner = dict.fromkeys(ALL_PARTS, base)
    for i in sorted((i for i in active if i != base), key=lambda i: -len(parts[i])):
        for p in parts[i]:
            owner[p] = i
    return owner


def assign_parts(
    intervals: list[Interval], fps: float = 20.0
) -> tuple[int, dict[str, list[tuple[int, int, int]]]]:
    """``(n_frames, {part: [(interval index or -1, start, end), ...]})``: per body part the runs
    of frames each interval owns (-1: no interval covers the stretch); every part's runs tile
    ``[0, n_frames)``."""
    spans = to_frames(intervals, fps)
    parts = [iv.parts for iv in intervals]
    n = max(e for _, e in spans)
    cuts = sorted({x for span in spans for x in span})
    per_part: dict[str, list[tuple[int, int, int]]] = {p: [] for p in ALL_PARTS}
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        active = [i for i, (s, e) in enumerate(spans) if s <= a and b <= e]
        owner = _owners(active, parts) if active else dict.fromkeys(ALL_PARTS, -1)
        for p, i in owner.items():
            runs = per_part[p]
            if runs and runs[-1][0] == i:
                runs[-1] = (i, runs[-1][1], b)
            else:
                runs.append((i, a, b))
    return n, per_part


def process_timeline(intervals: list[Interval], fps: float = 20.0, overlap_s: float = 0.5) -> Plan:
    """The crops of one timeline and how they combine (see the module docstring)."""
    n, per_part = assign_parts(intervals, fps)
    spans = to_frames(intervals, fps)
    overlap = int(fps * overlap_s)
    left, right = overlap // 2, overlap - overlap // 2

    def grow(s: int, e: int) -> tuple[int, int]:
        return max(s - left, 0), min(e + right, n)

    plan = Plan(n_frames=n)
    plan.crops = [Crop(iv.text, *grow(s, e)) for iv, (s, e) in zip(intervals, spans, strict=True)]
    gap_crops: dict[tuple[int, int], int] = {}
    for part, runs in per_part.items():
        uses = []
        for i, s, e in runs:
            if i < 0:  # no interval covers this stretch: a crop without text of its own
                if (s, e) not in gap_crops:
                    gap_crops[(s, e)] = len(plan.crops)
                    plan.crops.append(Crop("", *grow(s, e)))
                i = gap_crops[(s, e)]
            uses.append((i, *grow(s, e), 1))
        plan.uses[part] = uses
    starts = {p: {s for _, s, _ in runs} for p, runs in per_part.items()}
    for x in sorted({c for r in per_part.values() for _, s, e in r for c in (s, e)})[1:-1]:
        changed = [p for p in ALL_PARTS if x in starts[p]]
        if changed:
            lo, hi = max(x - left, 0), min(x + right, n)
            plan.crops.append(Crop("", lo, hi, transition=True))
            for p in changed:
                plan.uses[p].append((len(plan.crops) - 1, lo, hi, -1))
    return plan


def combine(plan: Plan, x0_crops: torch.Tensor) -> torch.Tensor:
    """Stitch per-crop x0 [C, L, F] (crop frames from 0) into the timeline [n, F]."""
    out = x0_crops.new_zeros(plan.n_frames, x0_crops.shape[-1])
    for part, uses in plan.uses.items():
        idx = torch.tensor(smplrifke.body_part_features(part), device=x0_crops.device)
        for c, s, e, sign in uses:
            offset = plan.crops[c].start
            out[s:e, idx] += sign * x0_crops[c, s - offset : e - offset][:, idx]
    return out


class UpstreamNoiseDDPMScheduler(DDPMScheduler):
    """DDPM whose posterior noise is ``variance * z`` instead of ``sqrt(variance) * z``.

    STMC's sampler takes ``sigma = posterior_variance`` and adds ``sigma * z``; its published
    results depend on it. diffusers' step multiplies the noise by ``_get_variance(t) ** 0.5``, so
    returning the squared variance there gives exactly the upstream step.
    """

    def _get_variance(self, t, predicted_variance=None, variance_type=None):
        return super()._get_variance(t, predicted_variance, variance_type) ** 2


def make_timeline_scheduler(schedule, sampler: str, posterior_noise: str) -> SchedulerMixin:
    """The diffusers scheduler for a sampler name; ``ddpm`` honours ``posterior_noise``."""
    if sampler not in TIMELINE_SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is unknown; use one of {TIMELINE_SAMPLERS}")
    if posterior_noise not in POSTERIOR_NOISE:
        raise ValueError(f"posterior_noise={posterior_noise!r} is unknown; use {POSTERIOR_NOISE}")
    scheduler = schedule.make_scheduler(sampler)
    if sampler == "ddpm" and posterior_noise == "upstream":
        return UpstreamNoiseDDPMScheduler.from_config(scheduler.config)
    return scheduler


class TimelineCollage:
    """``model(x_t [S, N, F], t [S], cond) -> stitched x0 [S, N, F]`` for S timelines.

    Built from a module with ``denoiser``, ``schedule``, ``device`` and ``encode_text`` (text
    embeddings as the denoiser takes them). ``cond`` may hold ``obs_mask`` [S, N, F] (keyframes in
    timeline frames) for a keyframe-conditioned denoiser; every crop gets its slice of it.
    ``fast=False`` denoises all crops in one padded CFG batch (the plain reference);
    ``fast=True`` runs the crops without text once and pads each group to its own longest crop
    (same result up to float rounding). ``bf16``: bf16 autocast for the denoiser.
    """

    def __init__(
        self,
        module,
        plans: list[Plan],
        guidance_scale: float,
        fast: bool = True,
        bf16: bool = False,
    ):
        self.module, self.plans = module, plans
        self.scale, self.fast, self.bf16 = float(guidance_scale), fast, bf16
        self.crops = [(s, c) for s, plan in enumerate(plans) for c in plan.crops]
        self.text = module.encode_text([c.text for _, c in self.crops])
        self.null_text = module.encode_text([""]).expand(len(self.crops), -1)

    def _groups(self) -> list[tuple[list[int], bool]]:
        if not self.fast:
            return [(list(range(len(self.crops))), True)]
        texted = [i for i, (_, c) in enumerate(self.crops) if c.text]
        empty = [i for i, (_, c) in enumerate(self.crops) if not c.text]
        return [(ids, guided) for ids, guided in ((texted, True), (empty, False)) if ids]

    def denoise_crops(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor | None):
        """Guided x0 of every crop: [C, L, F] (crop frames from 0, L = longest crop)."""
        device, f = x.device, x.shape[-1]
        lengths = [c.end - c.start for _, c in self.crops]
        out = x.new_zeros(len(self.crops), max(lengths), f)
        for ids, guided in self._groups():
            w = max(lengths[i] for i in ids)
            crops = x.new_zeros(len(ids), w, f)
            mask = torch.zeros(len(ids), w, f, dtype=torch.bool, device=device)
            for j, i in enumerate(ids):
                s, c = self.crops[i]
                crops[j, : lengths[i]] = x[s, c.start : c.end]
                if obs is not None:
                    mask[j, : lengths[i]] = obs[s, c.start : c.end]
            valid = length_mask(torch.tensor([lengths[i] for i in ids]), w).to(device)
            index = torch.tensor(ids, device=device)
            cond = {"text": self.text[index], "valid": valid, "obs_mask": mask}
            uncond = {**cond, "text": self.null_text[index]} if guided else None
            tt = t[torch.tensor([self.crops[i][0] for i in ids], device=t.device)]
            with torch.autocast(device.type, torch.bfloat16, enabled=self.bf16):
                pred = guided_output(self.module.denoiser, crops, tt, cond, uncond, self.scale)
            x0 = self.module.schedule.predict_x0(pred.float(), crops, tt)
            out = out.index_put((index,), torch.nn.functional.pad(x0, (0, 0, 0, out.shape[1] - w)))
        return out

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: dict | None = None):
        obs = None if cond is None else cond.get("obs_mask")
        x0_crops = self.denoise_crops(x, t, obs)
        offsets = torch.tensor([0] + [len(p.crops) for p in self.plans]).cumsum(0).tolist()
        stitched = [
            combine(plan, x0_crops[offsets[s] : offsets[s + 1]])
            for s, plan in enumerate(self.plans)
        ]
        x0 = torch.stack(
            [torch.nn.functional.pad(y, (0, 0, 0, x.shape[1] - len(y))) for y in stitched]
        )
        return self.module.schedule.output_from_x0(x0, x, t)


def sample_timelines(
    module,
    timelines: list[list[Interval]],
    fps: float = 20.0,
    overlap_s: float = 0.5,
    guidance_scale: float = 2.5,
    num_steps: int | None = None,
    posterior_noise: str = "std",
    generator: torch.Generator | None = None,
    sampler: str = "ddpm",
    bf16: bool = False,
    fast: bool = True,
    keyframes: Keyframes | None = None,
    guidance: Guidance | None = None,
    obs_mask: torch.Tensor | None = None,
    x_init: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """STMC sampling of many timelines in one batch: ``(x [S, N, 205] normalised features,
    lengths [S])``, frames past a timeline's length are zero.

    ``sampler="ddpm"`` is STMC's posterior step (``posterior_noise`` picks its noise scale);
    ``"ddim"`` / ``"dpmsolver++"`` step the stitched x0 with the diffusers scheduler (20-25 steps
    replace 100). ``keyframes`` / ``guidance`` (reconstruction loss and weight, no CFG: the
    collage guides its crops itself) / ``obs_mask`` pass through to ``motioncore.diffusion.sample``
    in timeline frames."""
    scheduler = make_timeline_scheduler(module.schedule, sampler, posterior_noise)
    plans = [process_timeline(intervals, fps, overlap_s) for intervals in timelines]
    lengths = torch.tensor([p.n_frames for p in plans])
    shape = (len(plans), int(lengths.max()), smplrifke.N_FEATS)
    collage = TimelineCollage(module, plans, guidance_scale, fast=fast, bf16=bf16)
    cond = None if obs_mask is None else {"obs_mask": obs_mask}
    x = sample(
        collage, module.schedule, shape, cond=cond, guidance=guidance, keyframes=keyframes,
        num_steps=num_steps or module.d["num_steps"], sampler=scheduler, generator=generator,
        device=module.device, x_init=x_init,
    )  # fmt: skip
    return x * length_mask(lengths, shape[1]).to(x.device)[..., None], lengths


@torch.no_grad()
def sample_timeline(module, intervals: list[Interval], **kw) -> torch.Tensor:
    """One timeline: normalised features [n, 205] (see :func:`sample_timelines`)."""
    x, lengths = sample_timelines(module, [intervals], **kw)
    return x[0, : int(lengths[0])]
