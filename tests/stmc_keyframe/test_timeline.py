"""STMC timelines: parsing, SINC body-part assignment, collage combination, posterior, sampling."""

from __future__ import annotations

import pytest
import torch

from stmc_keyframe.representation import smplrifke
from stmc_keyframe.timeline import (
    Interval,
    TimelineCollage,
    assign_parts,
    combine,
    make_timeline_scheduler,
    parse_timeline,
    parse_timelines,
    process_timeline,
    sample_timeline,
    sample_timelines,
)

TIMELINE = """
a person walks forward # 0.0 # 4.0 # legs
a person waves with the right hand # 1.0 # 3.0 # right hand
a person raises both arms # 3.5 # 6.0 # left arm, right arm, spine
"""


def test_parse_aliases_and_errors():
    tl = parse_timeline(TIMELINE)
    assert [iv.parts for iv in tl] == [
        ("legs",),
        ("right arm",),
        ("left arm", "right arm", "spine"),
    ]
    assert parse_timeline("jump # 0 # 2")[0].parts == tuple(smplrifke.BODY_PARTS)
    with pytest.raises(ValueError, match="line 1"):
        parse_timeline("walk # zero # 2 # legs")
    with pytest.raises(ValueError, match="unknown body part"):
        parse_timeline("walk # 0 # 2 # tail")
    with pytest.raises(ValueError, match="start < end"):
        parse_timeline("walk # 3 # 2 # legs")


def test_sinc_assignment():
    n, per_part = assign_parts(parse_timeline(TIMELINE), fps=20)
    assert n == 120
    # legs follow the walk while it lasts, then the last interval (its base), never uncovered
    assert per_part["legs"][0] == (0, 0, 80)
    # the right arm waves over 1-3 s, is the walk's (base) elsewhere until 3.5 s, then raises
    assert (1, 20, 60) in per_part["right arm"] and per_part["right arm"][-1][0] == 2
    for runs in per_part.values():  # every part tiles the whole timeline
        assert runs[0][1] == 0 and runs[-1][2] == n
        assert all(a[2] == b[1] for a, b in zip(runs[:-1], runs[1:], strict=True))


def test_combine_has_unit_coverage_everywhere():
    plan = process_timeline(parse_timeline(TIMELINE), fps=20, overlap_s=0.5)
    assert any(c.transition for c in plan.crops) and all(
        c.text == "" for c in plan.crops if c.transition
    )
    truth = torch.randn(plan.n_frames, 205)
    width = max(c.end - c.start for c in plan.crops)
    crops = torch.zeros(len(plan.crops), width, 205)
    for i, c in enumerate(plan.crops):
        crops[i, : c.end - c.start] = truth[c.start : c.end]
    # crops that agree with one sequence stitch back to it: +text crops - transitions = 1
    torch.testing.assert_close(combine(plan, crops), truth, atol=1e-5, rtol=0)


def test_posterior_noise_std_is_diffusers_ddpm_and_upstream_scales_by_variance():
    from motioncore.diffusion import NoiseSchedule

    sched = NoiseSchedule(num_train_timesteps=100, beta_schedule="cosine", prediction_type="sample")
    x0, xt, t = torch.randn(3, 205), torch.randn(3, 205), 40

    def step(mode):  # both modes draw the same z from the seeded generator
        s = make_timeline_scheduler(sched, "ddpm", mode)
        s.set_timesteps(100)
        return s.step(x0, t, xt, generator=torch.Generator().manual_seed(0)).prev_sample

    ddpm = sched.make_scheduler("ddpm")
    ddpm.set_timesteps(100)
    ref = ddpm.step(x0, t, xt, generator=torch.Generator().manual_seed(0)).prev_sample
    torch.testing.assert_close(step("std"), ref)
    abar = sched.alphas_cumprod.double()
    var = float((1 - abar[t - 1]) / (1 - abar[t]) * (1 - abar[t] / abar[t - 1]))
    z = torch.randn(3, 205, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        step("upstream") - step("std"), (var - var**0.5) * z, atol=1e-5, rtol=1e-4
    )
    with pytest.raises(ValueError, match="posterior_noise"):
        make_timeline_scheduler(sched, "ddpm", "variance")


def test_multi_timeline_file_and_upstream_frames():
    text = "walk # 0 # 2 # legs\nwave # 0.6 # 1.6 # right hand\n\n\n% comment\njump # 1 # 2.55\n"
    walks, jumps = parse_timelines(text)
    assert [iv.text for iv in walks] == ["walk", "wave"] and [iv.text for iv in jumps] == ["jump"]
    # upstream: int(fps * s) frames and each timeline shifted to start at frame 0
    assert process_timeline(jumps, fps=20).n_frames == int(20 * 2.55) - 20 == 31
    with pytest.raises(ValueError, match="2 timelines"):
        parse_timeline(text)


def test_sample_timeline_shapes_and_modes(make_module, tiny_data):
    module = make_module(tiny_data.stats).eval()
    intervals = [Interval("a person walks forward", 0.0, 2.0, ("legs",)),
                 Interval("a person waves with the right hand", 0.5, 1.5, ("right arm",)),
                 Interval("a person jumps in place", 2.0, 3.0)]  # fmt: skip
    a = sample_timeline(module, intervals, num_steps=4, generator=torch.Generator().manual_seed(0))
    b = sample_timeline(module, intervals, num_steps=4, posterior_noise="upstream",
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert a.shape == b.shape == (60, 205) and torch.isfinite(a).all()
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="posterior_noise"):
        sample_timeline(module, intervals, posterior_noise="variance")


def test_fast_crop_batches_match_plain_batch_and_other_samplers(make_module):
    """The fast path (text-less crops once, per-group padding) and bf16 autocast agree with the
    plain single padded CFG batch; DPM-Solver++ / DDIM sampling runs on the stitched x0."""
    module = make_module().eval()
    intervals = parse_timeline(TIMELINE)
    plan = process_timeline(intervals, fps=20, overlap_s=0.5)
    assert any(not c.text for c in plan.crops) and any(c.text for c in plan.crops)
    x = torch.randn(1, plan.n_frames, 205, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([10])
    with torch.no_grad():
        ref = TimelineCollage(module, [plan], 2.5, fast=False).denoise_crops(x, t, None)
        fast = TimelineCollage(module, [plan], 2.5).denoise_crops(x, t, None)
        bf16 = TimelineCollage(module, [plan], 2.5, bf16=True).denoise_crops(x, t, None)
    for i, c in enumerate(plan.crops):
        n = c.end - c.start
        torch.testing.assert_close(fast[i, :n], ref[i, :n], atol=1e-5, rtol=1e-5)
        err = (bf16[i, :n] - ref[i, :n]).norm() / ref[i, :n].norm()
        assert err < 0.05, f"bf16 crop {i}: relative error {err:.3f}"
    g = torch.Generator().manual_seed(0)
    a = sample_timeline(module, intervals, num_steps=4, generator=g, fast=False)
    g = torch.Generator().manual_seed(0)
    b = sample_timeline(module, intervals, num_steps=4, generator=g)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    for sampler in ("dpmsolver++", "ddim"):
        out = sample_timeline(module, intervals, num_steps=3, sampler=sampler, bf16=True)
        assert out.shape == (plan.n_frames, 205) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="sampler"):
        sample_timeline(module, intervals, sampler="euler")


def test_many_timelines_in_one_batch_equal_each_alone(make_module):
    """Batched timelines of different lengths give what each gives alone (same noise)."""
    module = make_module().eval()
    timelines = parse_timelines(TIMELINE + "\n\njump # 0 # 1.5\nwave # 0.5 # 1.2 # left arm\n")
    plans = [process_timeline(tl) for tl in timelines]
    n = max(p.n_frames for p in plans)
    x_init = torch.randn(2, n, 205, generator=torch.Generator().manual_seed(1))
    both, lengths = sample_timelines(module, timelines, num_steps=1, x_init=x_init)
    assert lengths.tolist() == [p.n_frames for p in plans] and both.shape == (2, n, 205)
    for k, tl in enumerate(timelines):
        m = plans[k].n_frames
        alone, _ = sample_timelines(module, [tl], num_steps=1, x_init=x_init[k : k + 1, :m])
        torch.testing.assert_close(both[k, :m], alone[0], atol=1e-4, rtol=1e-4)
        assert not both[k, m:].any()
