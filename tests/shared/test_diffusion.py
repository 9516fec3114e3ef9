"""Contract tests for motioncore.diffusion over every scheduler and prediction type."""

from __future__ import annotations

import itertools

import pytest
import torch

from motioncore.diffusion import (
    PREDICTION_TYPES,
    SAMPLERS,
    Guidance,
    Keyframes,
    NoiseSchedule,
    guided_output,
    sample,
)

SHAPES = [(2, 9, 5), (2, 3, 8, 8)]  # sequences [B, T, F] and images [B, C, H, W]
CASES = [
    (s, p, b, z)
    for s, p, b, z in itertools.product(
        SAMPLERS, PREDICTION_TYPES, ["linear", "scaled_linear", "cosine"], [False, True]
    )
    if not (z and p == "epsilon")
]


def oracle(schedule: NoiseSchedule, x0: torch.Tensor):
    """A perfect model: returns the target implied by the true x0 at any (x_t, t)."""

    def model(x, t, cond):
        truth = x0.repeat(x.shape[0] // x0.shape[0], *([1] * (x0.ndim - 1)))
        return schedule.output_from_x0(truth, x, t)

    return model


@pytest.mark.parametrize("sampler,prediction,betas,zero_snr", CASES)
def test_perfect_model_sampler_reproduces_x0(sampler, prediction, betas, zero_snr):
    s = NoiseSchedule(
        num_train_timesteps=100,
        beta_schedule=betas,
        prediction_type=prediction,
        rescale_zero_snr=zero_snr,
    )
    x0 = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(1))
    out = sample(
        oracle(s, x0),
        s,
        tuple(x0.shape),
        num_steps=10,
        sampler=sampler,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.shape == x0.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, x0, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("prediction", PREDICTION_TYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_training_target_agrees_with_conversions(prediction, shape):
    s = NoiseSchedule(num_train_timesteps=50, prediction_type=prediction, beta_schedule="cosine")
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    t = s.sample_timesteps(shape[0], generator=g)
    x_t = s.add_noise(x0, noise, t)
    target = s.training_target(x0, noise, t)
    assert target.shape == x0.shape
    torch.testing.assert_close(s.predict_x0(target, x_t, t), x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(s.output_from_x0(x0, x_t, t), target, atol=1e-4, rtol=1e-4)


def test_add_noise_matches_diffusers_for_any_shape():
    s = NoiseSchedule(num_train_timesteps=100, beta_schedule="scaled_linear")
    ref = s.make_scheduler("ddpm")
    x0, noise = torch.randn(3, 2, 4, 4, 2), torch.randn(3, 2, 4, 4, 2)
    t = torch.tensor([0, 50, 99])
    torch.testing.assert_close(s.add_noise(x0, noise, t), ref.add_noise(x0, noise, t))


def test_min_snr_weights():
    gamma = 5.0
    for prediction in PREDICTION_TYPES:
        s = NoiseSchedule(num_train_timesteps=1000, prediction_type=prediction, min_snr_gamma=gamma)
        t = torch.tensor([1, 500, 999])
        snr = s.snr(t)
        w = s.loss_weights(t)
        expected = {
            "sample": snr.clamp(max=gamma),
            "epsilon": snr.clamp(max=gamma) / snr,
            "v_prediction": snr.clamp(max=gamma) / (snr + 1),
        }[prediction]
        torch.testing.assert_close(w, expected)
    assert torch.equal(NoiseSchedule().loss_weights(torch.tensor([3, 4])), torch.ones(2))


def test_bad_config_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match="v_prediction"):
        NoiseSchedule(prediction_type="epsilon", rescale_zero_snr=True)
    with pytest.raises(ValueError, match="one of"):
        NoiseSchedule(beta_schedule="sigmoid")
    with pytest.raises(ValueError, match="one of"):
        NoiseSchedule(sampler="euler")


def _linear_cond_model(calls: list):
    def model(x, t, cond):
        calls.append(x.shape[0])
        return 0.5 * x + cond["scale"][:, None, None] * torch.ones_like(x)

    return model


def test_cfg_scale_one_equals_conditional_and_batches_once():
    calls: list = []
    model = _linear_cond_model(calls)
    x = torch.randn(2, 4, 3)
    t = torch.tensor([10, 10])
    cond, uncond = {"scale": torch.tensor([1.0, 2.0])}, {"scale": torch.zeros(2)}
    torch.testing.assert_close(guided_output(model, x, t, cond, uncond, 1.0), model(x, t, cond))
    calls.clear()
    out = guided_output(model, x, t, cond, uncond, 3.0)
    assert calls == [4], "cond and uncond must run in ONE batched forward"
    c, u = model(x, t, cond), model(x, t, uncond)
    torch.testing.assert_close(out, u + 3.0 * (c - u))


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("injection", ["clean", "noised"])
def test_keyframes_are_never_changed_and_reach_the_model(sampler, injection):
    s = NoiseSchedule(num_train_timesteps=50, prediction_type="sample", beta_schedule="cosine")
    g = torch.Generator().manual_seed(0)
    values = torch.randn(2, 8, 3, generator=g)
    mask = torch.zeros(2, 8, 3)
    mask[:, [0, 7]] = 1
    seen = []

    def model(x, t, cond):
        seen.append(x.clone())
        return torch.zeros_like(x)

    out = sample(
        model,
        s,
        (2, 8, 3),
        num_steps=5,
        sampler=sampler,
        keyframes=Keyframes(values, mask, injection=injection),
        generator=g,
    )
    assert torch.equal(out[mask.bool()], values[mask.bool()])
    if injection == "clean":
        for x in seen:
            assert torch.equal(x[mask.bool()], values[mask.bool()])
    raw = sample(
        model,
        s,
        (2, 8, 3),
        num_steps=5,
        sampler=sampler,
        keyframes=Keyframes(values, mask, injection=injection, impute_final=False),
        generator=torch.Generator().manual_seed(0),
    )
    assert not torch.equal(raw[mask.bool()], values[mask.bool()])


def test_reconstruction_guidance_pulls_toward_keyframes():
    s = NoiseSchedule(num_train_timesteps=50, prediction_type="sample", beta_schedule="cosine")
    values = torch.full((1, 6, 2), 2.0)
    mask = torch.zeros(1, 6, 2)
    mask[:, 2] = 1

    def model(x, t, cond):  # smooths across frames, so guidance on frame 2 spreads to 1 and 3
        return torch.nn.functional.avg_pool1d(x.transpose(1, 2), 3, 1, 1).transpose(1, 2)

    def run(weight):
        return sample(
            model,
            s,
            (1, 6, 2),
            num_steps=10,
            keyframes=Keyframes(values, mask, injection="noised", impute_final=False),
            guidance=Guidance(weight=weight),
            generator=torch.Generator().manual_seed(0),
        )

    plain, guided = run(0.0), run(5.0)
    err = lambda x: (x[:, 2] - 2.0).abs().mean()  # noqa: E731
    assert err(guided) < err(plain)


def test_custom_guidance_loss_is_used():
    s = NoiseSchedule(num_train_timesteps=50, prediction_type="sample", beta_schedule="cosine")
    model = lambda x, t, c: x  # noqa: E731
    target = 3.0
    out = sample(
        model,
        s,
        (4, 5),
        num_steps=10,
        guidance=Guidance(loss=lambda x0: (x0.mean(1) - target) ** 2, weight=20.0),
        generator=torch.Generator().manual_seed(0),
    )
    base = sample(model, s, (4, 5), num_steps=10, generator=torch.Generator().manual_seed(0))
    assert (out.mean(1) - target).abs().mean() < (base.mean(1) - target).abs().mean()


def test_keyframe_shape_mismatch_is_an_error():
    s = NoiseSchedule(num_train_timesteps=10)
    with pytest.raises(ValueError, match="do not match"):
        sample(
            lambda x, t, c: x,
            s,
            (2, 4),
            num_steps=2,
            keyframes=Keyframes(torch.zeros(2, 5), torch.ones(2, 5)),
        )


def test_sampling_is_deterministic_given_generator():
    s = NoiseSchedule(num_train_timesteps=20)
    model = lambda x, t, c: 0.1 * x  # noqa: E731
    a = sample(model, s, (2, 3), num_steps=5, generator=torch.Generator().manual_seed(3))
    b = sample(model, s, (2, 3), num_steps=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_unknown_injection_is_an_error_naming_the_choices():
    with pytest.raises(ValueError, match="clean"):
        Keyframes(torch.zeros(1), torch.ones(1), injection="replace")


def test_cfg_through_sample_matches_guided_output_per_step():
    s = NoiseSchedule(num_train_timesteps=20, prediction_type="sample", sampler="ddim")
    calls: list = []
    model = _linear_cond_model(calls)
    cond, uncond = {"scale": torch.tensor([1.0, 2.0])}, {"scale": torch.zeros(2)}
    seen = []
    sample(
        model,
        s,
        (2, 4, 3),
        cond,
        guidance=Guidance(uncond=uncond, scale=2.0),
        num_steps=3,
        generator=torch.Generator().manual_seed(0),
        callback=lambda i, t, x, x0: seen.append((x, torch.full((2,), t), x0)),
    )
    assert set(calls) == {4} and len(seen) == 3
    for x, t, x0 in seen:
        torch.testing.assert_close(x0, guided_output(model, x, t, cond, uncond, 2.0))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_callback_sees_every_step_with_the_x0_estimate(sampler):
    s = NoiseSchedule(
        num_train_timesteps=100, prediction_type="v_prediction", rescale_zero_snr=True
    )
    x0 = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(1))
    steps = []

    def callback(step, t, x_t, estimate):
        steps.append((step, t))
        assert x_t.shape == x0.shape
        torch.testing.assert_close(estimate, x0, atol=1e-4, rtol=1e-4)

    sample(oracle(s, x0), s, tuple(x0.shape), num_steps=7, sampler=sampler, callback=callback)
    scheduler = s.make_scheduler(sampler)
    scheduler.set_timesteps(7)
    assert steps == list(enumerate(int(t) for t in scheduler.timesteps))


def test_a_caller_built_scheduler_is_stepped():
    s = NoiseSchedule(num_train_timesteps=50)
    model = lambda x, t, c: 0.1 * x  # noqa: E731
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    by_name = sample(model, s, (2, 3), num_steps=5, sampler="ddim", generator=g())
    by_object = sample(
        model, s, (2, 3), num_steps=5, sampler=s.make_scheduler("ddim"), generator=g()
    )
    assert torch.equal(by_name, by_object)
    assert not torch.equal(by_name, sample(model, s, (2, 3), num_steps=5, generator=g()))
