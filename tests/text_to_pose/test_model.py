from __future__ import annotations

import copy

import pytest
import torch

from motioncore.diffusion import guided_output
from motioncore.masking import length_mask
from text_to_pose.model.encoders import _relu
from text_to_pose.model.schedule import blend_betas, refinement_steps
from text_to_pose.model.text_to_pose import refine_from_first_pose, unconditional_ids


def test_blend_schedule_matches_upstream_values():
    betas = blend_betas(10)
    expected = [0.028, 0.076, 0.124, 0.177, 0.237, 0.310, 0.404, 0.537, 0.744, 1.0]
    torch.testing.assert_close(betas, torch.tensor(expected), atol=1.5e-3, rtol=0)
    assert betas[-1] == 1.0 and (betas.diff() > 0).all()
    assert refinement_steps(10, None) == list(range(9, -1, -1))
    assert refinement_steps(100, 5) == [99, 74, 50, 25, 0]
    with pytest.raises(ValueError, match="steps must be in 1..10"):
        refinement_steps(10, 11)


def test_refiner_shapes_and_padding_independence(tiny_module, random_batch):
    model = tiny_module.model.eval()
    batch = random_batch()
    cond = model.encode(batch["text_ids"], batch["text_valid"])
    cond["frame_valid"] = batch["frame_valid"]
    t = torch.tensor([0, 5, 9])
    out = model(batch["pose"], t, cond)
    assert out.shape == batch["pose"].shape
    # The 6-frame sample alone (no padding, no other texts) gives the same frames.
    i, n, width = 2, 6, int(batch["text_valid"][2].sum())
    alone = model.encode(
        batch["text_ids"][i : i + 1, :width], batch["text_valid"][i : i + 1, :width]
    )
    alone["frame_valid"] = batch["frame_valid"][i : i + 1, :n]
    single = model(batch["pose"][i : i + 1, :n], t[i : i + 1], alone)
    torch.testing.assert_close(single[0], out[i, :n], atol=1e-4, rtol=1e-4)
    lengths = model.predict_length(cond)
    torch.testing.assert_close(model.predict_length(alone), lengths[i : i + 1], atol=1e-4, rtol=0)


def test_guidance_one_equals_conditional_and_batched_cfg_equals_two_calls(
    tiny_module, random_batch
):
    model = tiny_module.model.eval()
    batch = random_batch()
    cond = model.encode(batch["text_ids"], batch["text_valid"])
    u_ids, u_valid = unconditional_ids(batch["text_ids"])
    uncond = model.encode(u_ids, u_valid)
    for c in (cond, uncond):
        c["frame_valid"] = batch["frame_valid"]
    x, t = batch["pose"], torch.tensor([1, 4, 8])
    c, u = model(x, t, cond), model(x, t, uncond)
    torch.testing.assert_close(guided_output(model, x, t, cond, uncond, 1.0), c)
    torch.testing.assert_close(guided_output(model, x, t, cond, uncond, 2.5), u + 2.5 * (c - u),
                               atol=1e-4, rtol=1e-4)  # fmt: skip


def test_sampler_encodes_text_once_and_starts_from_the_first_pose(tiny_module, random_batch):
    model = tiny_module.model.eval()
    batch = random_batch()
    calls = []
    hook = model.text_encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    try:
        poses, lengths = refine_from_first_pose(
            model, batch["pose"][:, 0], batch["text_ids"], batch["text_valid"], guidance=2.5
        )
    finally:
        hook.remove()
    assert calls == [(6, batch["text_ids"].shape[1])]  # cond + uncond, one call for 10 steps
    assert poses.shape[:2] == (3, int(lengths.max())) and (lengths <= model.max_frames).all()
    assert (poses[torch.arange(poses.shape[1])[None] >= lengths[:, None]] == 0).all()
    forced, forced_len = refine_from_first_pose(
        model, batch["pose"][:, 0], batch["text_ids"], batch["text_valid"],
        lengths=batch["lengths"], guidance=1.0, steps=3,
    )  # fmt: skip
    assert forced_len.tolist() == batch["lengths"].tolist()


def test_bf16_fast_path_matches_fp32(tiny_module, random_batch):
    model = tiny_module.model.eval()
    batch = random_batch()
    args = (model, batch["pose"][:, 0], batch["text_ids"], batch["text_valid"], batch["lengths"])
    plain, _ = refine_from_first_pose(*args, guidance=2.5)
    fast, _ = refine_from_first_pose(*args, guidance=2.5, bf16=True)
    error = (fast - plain).abs().max() / plain.abs().max()
    assert error < 0.05


@pytest.mark.parametrize("padded", [True, False])
def test_sdpa_encoder_equals_torch_transformer_encoder(tiny_module, random_batch, padded):
    """The SDPA path (additive mask, or none when all tokens are valid) reproduces torch's
    encoder, fused inference path included, with the same state dict."""
    from torch import nn

    from text_to_pose.model.encoders import Encoder

    torch.manual_seed(1)
    ours = Encoder(32, 4, 64, 2, 0.0).eval()
    layer = nn.TransformerEncoderLayer(32, 4, 64, 0.0, batch_first=True)
    torch_encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    torch_encoder.load_state_dict(ours.state_dict())
    x = torch.randn(3, 11, 32)
    valid = length_mask([11, 7, 3] if padded else [11, 11, 11], 11)
    for context in (torch.no_grad, torch.inference_mode):  # plain and fused torch paths
        with context():
            expected = torch_encoder(x, src_key_padding_mask=~valid)
            torch.testing.assert_close(ours(x, valid), expected, atol=1e-5, rtol=0)
    ours.train()
    torch_encoder.train()
    torch.testing.assert_close(ours(x, valid), torch_encoder(x, src_key_padding_mask=~valid),
                               atol=1e-5, rtol=0)  # fmt: skip
    # The whole sampler in bf16 autocast stays within bf16 tolerance of fp32.
    model = tiny_module.model.eval()
    batch = random_batch()
    args = (model, batch["pose"][:, 0], batch["text_ids"], batch["text_valid"], batch["lengths"])
    with torch.inference_mode():
        plain, _ = refine_from_first_pose(*args, guidance=2.5)
        fast, _ = refine_from_first_pose(*args, guidance=2.5, bf16=True)
    assert (fast - plain).abs().max() / plain.abs().max() < 0.05


def test_test_step_loss_follows_the_seeds_round(tiny_module, random_batch):
    """SEEDS=N rounds draw different loss steps (round_seed); the sampler draws nothing, so
    the generated poses are the same in every round."""
    module = tiny_module.eval()
    module._test_media_written = True  # no trainer: skip the media
    batch = random_batch()
    rounds = []
    module.log = lambda name, value, **_: rounds[-1].update({name: float(value)})
    for r in (0, 1, 0):
        rounds.append({})
        module.eval_round = r
        with torch.no_grad():
            module.test_step(batch, 0)
    assert rounds[2] == rounds[0]
    assert rounds[1]["test/loss"] != rounds[0]["test/loss"]
    assert rounds[1]["test/dtw_mje"] == rounds[0]["test/dtw_mje"]


def test_loss_does_not_mutate_the_batch_and_length_is_clamped(tiny_module, random_batch):
    batch = random_batch()
    before = {k: v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)}
    tiny_module.train()
    out = tiny_module.losses(batch)
    out["loss"].backward()
    for k, v in before.items():
        assert torch.equal(batch[k], v), k
    assert set(out) == {"loss", "pose", "smooth", "length", "correction"}
    huge = tiny_module.model.clamp_lengths(torch.tensor([1e6, -5.0, 7.4]))
    assert huge.tolist() == [tiny_module.model.max_frames, 2, 7]


def test_missing_keypoints_and_padding_carry_no_pose_loss(tiny_module, random_batch, monkeypatch):
    tiny_module.eval()
    # A stub refiner predicting zeros: the pose loss is then the weighted mean of x0^2.
    monkeypatch.setattr(tiny_module.model, "forward", lambda x_t, *a: torch.zeros_like(x_t))
    batch = random_batch()
    batch["confidence"][:, :, 40:] = 0
    base = tiny_module.losses(batch, torch.Generator().manual_seed(0))["pose"]
    batch["pose"][:, :, 40:] += 100.0  # missing keypoints
    batch["pose"][0, 9:] += 100.0  # padding frames of the 9-frame sample
    changed = tiny_module.losses(batch, torch.Generator().manual_seed(0))["pose"]
    torch.testing.assert_close(changed, base)
    batch["pose"][:, 1:, :40] += 1.0  # a confident keypoint does count
    assert tiny_module.losses(batch, torch.Generator().manual_seed(0))["pose"] > base + 1


def test_correction_fills_only_missing_coordinates(tiny_module):
    model = tiny_module.model.eval()
    pose = torch.randn(2, 75, 3)
    pose[:, 25:33] = 0
    filled = model.correction.fill(pose)
    assert torch.equal(filled[:, :25], pose[:, :25]) and torch.equal(filled[:, 33:], pose[:, 33:])
    assert (filled[:, 25:33] != 0).all()


def test_pretrain_ignores_the_text(random_batch):
    from text_to_pose.module import TextToPoseModule

    from .conftest import TINY_MODEL

    torch.manual_seed(0)
    module = TextToPoseModule(**TINY_MODEL, pretrain=True).train()
    batch = random_batch()
    other = dict(batch, text_ids=batch["text_ids"].flip(0), text_valid=batch["text_valid"].flip(0))
    first = module.losses(batch, torch.Generator().manual_seed(0))["loss"]
    second = module.losses(other, torch.Generator().manual_seed(0))["loss"]
    torch.testing.assert_close(first, second)
    poses, _ = module.eval().generate(batch, force_length=True)
    again, _ = module.generate(other, force_length=True)
    torch.testing.assert_close(poses, again)


def test_length_losses(random_batch):
    from text_to_pose.module import TextToPoseModule

    from .conftest import TINY_MODEL

    batch = random_batch()
    torch.manual_seed(0)
    module = TextToPoseModule(**TINY_MODEL).train()
    cond = module.model.encode(batch["text_ids"], batch["text_valid"])
    lengths = batch["lengths"].float()
    # regression: the NLL reaches the variance head only, the MSE the mean head and encoder.
    encoder = module.model.text_encoder.embed.weight

    def grads(loss):
        module.zero_grad()
        loss.sum().backward(retain_graph=True)
        return encoder.grad.clone(), module.model.length.log_var.weight.grad

    mu = module.model.predict_length(cond)
    full_encoder, full_var = grads(module.length_loss(cond, lengths, torch.randn))
    mse_encoder, mse_var = grads((mu - lengths).square())
    torch.testing.assert_close(full_encoder, mse_encoder)
    assert full_var.abs().sum() > 0 and (mse_var is None or mse_var.abs().sum() == 0)
    # sample_mse (upstream): a reparameterised sample in training, the mean in evaluation.
    upstream = TextToPoseModule(**TINY_MODEL, length_loss="sample_mse", length_scale=1.0)
    cond = upstream.model.encode(batch["text_ids"], batch["text_valid"])
    noisy = [upstream.length_loss(cond, lengths, torch.randn) for _ in range(2)]
    assert not torch.allclose(*noisy)
    upstream.eval()
    mu, _ = upstream.model.length_distribution(cond)
    torch.testing.assert_close(
        upstream.length_loss(cond, lengths, torch.randn), (mu - lengths) ** 2
    )
    with pytest.raises(ValueError, match="length_loss"):
        TextToPoseModule(**TINY_MODEL, length_loss="nll")


@pytest.mark.parametrize(
    "kwargs, match",
    [({"guidance": float("nan")}, "guidance must be a finite"), ({"steps": 0}, "steps must be"),
     ({"steps": -3}, "steps must be"), ({"length": 0}, "length must be"),
     ({"length": 10_000}, "length must be")],
)  # fmt: skip
def test_bad_sampler_knobs_are_refused(tiny_module, kwargs, match):
    first = torch.randn(1, 75, 3)
    with pytest.raises(ValueError, match=match):
        tiny_module.generate_text(["\ue000\ue071"], first, **kwargs)


def test_non_finite_refinement_stops_naming_the_step(tiny_module):
    from motioncore.diffusion import NonFiniteSample

    module = copy.deepcopy(tiny_module)
    first = torch.randn(1, 75, 3)
    module.generate_text(["\ue000\ue071"], first, length=10, guidance=2.0)  # finite weights pass
    with torch.no_grad():
        for p in module.model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(NonFiniteSample, match=r"refined poses at step 1 of .*guidance scale \(2.0"):
        module.generate_text(["\ue000\ue071"], first, length=10, guidance=2.0)


def test_bf16_int16_relu_is_relu_bit_for_bit():
    """The bf16 ReLU of the sampling path clamps the int16 view; it must equal torch's ReLU on
    every finite and infinite value (negative zero included), and leave fp32 to torch."""
    torch.manual_seed(0)
    x = torch.cat([torch.randn(4096), torch.tensor([0.0, -0.0, float("inf"), -float("inf")])])
    for dtype in (torch.bfloat16, torch.float32):
        value = x.to(dtype)
        ours = _relu(value.clone())
        assert torch.equal(ours.view(-1).float(), torch.relu(value).float())
        assert (ours >= 0).all()
