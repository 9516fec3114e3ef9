"""motioncore.diffusion.diffusion_loss against the computations the packages did before it.

Each ``legacy_*`` function is the exact sequence a package ran by hand (RNG draws included); with
the same generator the shared loss must give the same numbers, so seeded runs are unchanged.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from motioncore.diffusion import NoiseSchedule, diffusion_loss
from motioncore.losses import masked_mse
from motioncore.masking import length_mask


def toy_model(x, t, cond):
    return torch.tanh(x * 0.7 + t[(...,) + (None,) * (x.ndim - 1)] / 1000.0 + cond)


def _a(schedule, t, like):
    return schedule.alphas_cumprod[t].reshape(-1, *([1] * (like.ndim - 1)))


def legacy_target(schedule, x0, noise, t):
    a = _a(schedule, t, x0)
    return {"epsilon": noise, "sample": x0,
            "v_prediction": a.sqrt() * noise - (1 - a).sqrt() * x0}[schedule.prediction_type]  # fmt: skip


def legacy_add_noise(schedule, x0, noise, t):
    a = _a(schedule, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def legacy_stmc(schedule, x0, valid, obs, cond, g):
    t = torch.randint(0, schedule.num_train_timesteps, (len(x0),), generator=g)
    noise = torch.randn(x0.shape, generator=g) * valid[..., None]
    x_t = torch.where(obs, x0, legacy_add_noise(schedule, x0, noise, t))
    pred = toy_model(x_t, t, cond)
    where = valid[..., None] & ~obs
    return masked_mse(pred, legacy_target(schedule, x0, noise, t), where) * schedule.loss_weights(t)


def legacy_champ(schedule, x0, b, f, stage, cond, g):
    if stage == 2:
        t = torch.randint(0, schedule.num_train_timesteps, (b,), generator=g).repeat_interleave(f)
    else:
        t = torch.randint(0, schedule.num_train_timesteps, (b * f,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    noise = noise + schedule.noise_offset * torch.randn(x0.shape[:2] + (1, 1), generator=g)
    pred = toy_model(legacy_add_noise(schedule, x0, noise, t), t, cond)
    per_frame = (pred - legacy_target(schedule, x0, noise, t)).pow(2).flatten(1).mean(1)
    return schedule.loss_weights(t) * per_frame


def legacy_stdiff(schedule, x0, cond, g):
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, schedule.num_train_timesteps, (len(x0),), generator=g)
    pred = toy_model(legacy_add_noise(schedule, x0, noise, t), t, cond)
    return F.l1_loss(pred, legacy_target(schedule, x0, noise, t))


def test_stmc_keyframe_loss_is_unchanged():
    s = NoiseSchedule(num_train_timesteps=1000, beta_schedule="cosine", prediction_type="sample")
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([9, 5, 7])
    valid = length_mask(lengths, 9)
    x0 = torch.randn(3, 9, 6, generator=g) * valid[..., None]
    obs = (torch.rand(3, 9, 6, generator=g) < 0.2) & valid[..., None]
    cond = torch.randn(3, 1, 6, generator=g)
    expected = legacy_stmc(s, x0, valid, obs, cond, torch.Generator().manual_seed(5))

    g = torch.Generator().manual_seed(5)
    t = s.sample_timesteps(3, generator=g)
    noise = s.sample_noise(x0, g)  # stmc draws its keyframe mask here, between noise and model
    out = diffusion_loss(toy_model, s, x0, cond, valid[..., None] & ~obs, t=t, noise=noise,
                         noise_mask=valid, clean=obs)  # fmt: skip
    torch.testing.assert_close(out.loss, expected, rtol=1e-6, atol=1e-7)
    assert torch.equal(out.x_t[obs], x0[obs])
    assert torch.equal(out.x_t[~valid], torch.zeros_like(out.x_t[~valid]))


@pytest.mark.parametrize("stage", [1, 2])
def test_champ_guidance_loss_is_unchanged(stage):
    s = NoiseSchedule(num_train_timesteps=1000, beta_schedule="scaled_linear",
                      prediction_type="v_prediction", rescale_zero_snr=True, min_snr_gamma=5.0,
                      noise_offset=0.05)  # fmt: skip
    b, f = 2, 3
    x0 = torch.randn(b * f, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    expected = legacy_champ(s, x0, b, f, stage, 0.1, torch.Generator().manual_seed(7))

    g = torch.Generator().manual_seed(7)
    t = s.sample_timesteps(b, generator=g).repeat_interleave(f) if stage == 2 else None
    out = diffusion_loss(toy_model, s, x0, 0.1, generator=g, t=t)
    torch.testing.assert_close(out.loss, expected, rtol=1e-6, atol=1e-7)
    if stage == 2:
        assert torch.equal(out.t.view(b, f), out.t.view(b, f)[:, :1].expand(b, f))


def test_stdiff_loss_is_unchanged_and_now_honours_offset_noise_and_min_snr():
    s = NoiseSchedule(num_train_timesteps=1000, prediction_type="epsilon")
    x0 = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    expected = legacy_stdiff(s, x0, -0.2, torch.Generator().manual_seed(3))

    def stdiff_loss(schedule):
        g = torch.Generator().manual_seed(3)
        noise = schedule.sample_noise(x0, g)  # stdiff draws noise before t
        return diffusion_loss(toy_model, schedule, x0, -0.2, generator=g, kind="l1", noise=noise)

    torch.testing.assert_close(stdiff_loss(s).loss.mean(), expected, rtol=1e-6, atol=1e-7)
    offset = stdiff_loss(NoiseSchedule(num_train_timesteps=1000, noise_offset=0.1))
    assert not torch.allclose(offset.loss.mean(), expected)
    plain = stdiff_loss(NoiseSchedule(num_train_timesteps=1000, prediction_type="sample"))
    weighted = stdiff_loss(
        NoiseSchedule(num_train_timesteps=1000, prediction_type="sample", min_snr_gamma=5.0)
    )
    abar = s.alphas_cumprod[plain.t]
    torch.testing.assert_close(weighted.loss, plain.loss * (abar / (1 - abar)).clamp(max=5.0))


def test_padding_never_reaches_the_loss():
    s = NoiseSchedule(num_train_timesteps=100, prediction_type="sample")
    x0 = torch.randn(2, 6, 3)
    valid = length_mask(torch.tensor([6, 2]), 6)

    def run(pad_value):
        def model(x, t, c):
            return torch.where(valid[..., None], x, torch.full_like(x, pad_value))

        return diffusion_loss(model, s, x0, mask=valid, generator=torch.Generator().manual_seed(0))

    torch.testing.assert_close(run(0.0).loss, run(1e3).loss)


def test_bad_arguments_name_the_fix():
    s = NoiseSchedule(num_train_timesteps=10)
    with pytest.raises(ValueError, match="mse"):
        diffusion_loss(toy_model, s, torch.zeros(2, 3), 0.0, kind="huber")
    with pytest.raises(ValueError, match="one timestep per example"):
        diffusion_loss(toy_model, s, torch.zeros(2, 3), 0.0, t=torch.zeros(3, dtype=torch.long))
