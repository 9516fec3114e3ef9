"""Non-finite sample outputs are errors: ``motioncore.diffusion.sample`` stops at the step where the
model output or x_t turns NaN/inf, naming the step, the likely cause and the fix, and an
evaluation through the runner writes no metrics.json of NaNs."""

from __future__ import annotations

import pytest
import torch

from motioncore.diffusion import Guidance, Keyframes, NoiseSchedule, NonFiniteSample, sample
from motioncore.train import run

SHAPE = (2, 8, 3)


def _schedule(**kw) -> NoiseSchedule:
    return NoiseSchedule(num_train_timesteps=100, num_inference_steps=6, **kw)


def _bad_at(k: int, value: float):
    """A model callable whose output becomes ``value`` from its k-th call on (1-based)."""
    calls = []

    def model(x, t, cond):
        calls.append(int(t[0]))
        out = torch.zeros_like(x)
        return out + value if len(calls) >= k else out

    model.calls = calls
    return model


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmsolver++"])
@pytest.mark.parametrize("value, kind", [(float("nan"), "NaN"), (float("inf"), "infinite")])
def test_non_finite_model_output_names_the_step(sampler, value, kind):
    model = _bad_at(3, value)
    with pytest.raises(NonFiniteSample) as e:
        sample(model, _schedule(sampler=sampler), SHAPE, generator=torch.Generator().manual_seed(0))
    message = str(e.value)
    assert f"the model output at step 3/6 (timestep {model.calls[2]}) is {kind}" in message
    assert "nothing was written" in message and "checkpoint" in message
    assert len(model.calls) == 3  # stopped there, not after running the remaining steps


def test_cfg_blowup_names_the_guidance_scale():
    def model(x, t, cond):
        # the conditional half is huge, so u + s (c - u) overflows float32 for a large s
        return torch.where(cond[:, None, None] > 0, 1e37, 0.0).expand_as(x).clone()

    cond, uncond = torch.ones(2), torch.zeros(2)
    with pytest.raises(NonFiniteSample, match=r"step 1/6.*guidance scale \(1000.0"):
        sample(model, _schedule(), SHAPE, cond, guidance=Guidance(uncond=uncond, scale=1000.0))
    # the same model with scale 1 stays finite in the output, so the scale was the cause
    out = sample(model, _schedule(prediction_type="sample"), SHAPE, cond)
    assert torch.isfinite(out).all()


def test_float16_overflow_in_the_scheduler_step_names_the_dtype():
    # a finite float16 x0 estimate of 6e4; DDPM's posterior mean of it leaves the float16 range
    def model(x, t, cond):
        return torch.full_like(x, 6.0e4)

    with pytest.raises(NonFiniteSample) as e:
        sample(
            model,
            _schedule(prediction_type="epsilon"),
            SHAPE,
            dtype=torch.float16,
            generator=torch.Generator().manual_seed(0),
        )
    message = str(e.value)
    assert "torch.float16 overflow" in message and "float32" in message, message
    assert "x_t after the scheduler step at step 2/6" in message


def test_non_finite_inputs_are_named():
    model = _bad_at(10**9, 0.0)
    with pytest.raises(NonFiniteSample, match="x_init is NaN.*finite x_init"):
        sample(model, _schedule(), SHAPE, x_init=torch.full(SHAPE, float("nan")))
    values, mask = torch.zeros(SHAPE), torch.zeros(SHAPE)
    mask[:, 0] = 1
    assert torch.isfinite(
        sample(model, _schedule(), SHAPE, keyframes=Keyframes(values, mask))
    ).all()
    values[:, 1] = float("inf")  # unobserved, but mask 0 times inf is NaN in the blend
    with pytest.raises(
        NonFiniteSample, match="keyframes.values is infinite.*0 where the mask is 0"
    ):
        sample(model, _schedule(), SHAPE, keyframes=Keyframes(values, mask))


def test_callback_never_sees_the_non_finite_step():
    seen = []
    with pytest.raises(NonFiniteSample):
        sample(_bad_at(2, float("nan")), _schedule(), SHAPE, callback=lambda i, *_: seen.append(i))
    assert seen == [0]


def test_eval_of_a_model_that_outputs_nan_fails_without_writing_metrics(
    compose, toy_pipeline, tmp_path, monkeypatch
):
    import toy_pipeline as toy

    def cfg(out, *overrides):
        return compose(
            toy_pipeline / "configs", "toy", [f"paths.output_dir={out}", "logger=none", *overrides]
        )

    run(cfg(tmp_path / "train", "trainer.max_steps=2", "test=false"))
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    monkeypatch.setattr(toy.ToyDenoiser, "forward", lambda self, x, t, label: x * float("nan"))
    with pytest.raises(NonFiniteSample, match="the model output at step 1/10"):
        run(cfg(tmp_path / "eval", "train=false", f"ckpt_path={ckpt}"))
    assert not (tmp_path / "eval" / "metrics.json").exists()
