"""Denoiser shapes, keyframe-conditioned training (every scheme), config errors, overfitting."""

from __future__ import annotations

import pytest
import torch

from motioncore.masking import SCHEMES
from stmc_keyframe.model.denoiser import TransformerDenoiser


def _batch(tiny_data, n=4):
    ds = tiny_data.train_set
    return ds.collate([ds[i] for i in range(n)])


def test_denoiser_shapes_and_padding_invariance():
    torch.manual_seed(0)
    net = TransformerDenoiser(tx_dim=16, latent_dim=32, ff_size=64, num_layers=2, num_heads=4,
                              dropout=0.0, keyframe_conditioned=True).eval()  # fmt: skip
    x = torch.randn(2, 12, 205)
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[1, 8:] = False
    cond = {
        "text": torch.randn(2, 16),
        "valid": valid,
        "obs_mask": torch.zeros(2, 12, 205, dtype=torch.bool),
    }
    out = net(x, torch.tensor([3, 7]), cond)
    assert out.shape == x.shape
    x2 = x.clone()
    x2[1, 8:] = 100.0  # padding must not change valid outputs
    torch.testing.assert_close(net(x2, torch.tensor([3, 7]), cond)[1, :8], out[1, :8])
    with pytest.raises(ValueError, match="text embedding"):
        net(x, torch.tensor([3, 7]), {**cond, "text": torch.randn(2, 8)})


def _stock_copy(net: TransformerDenoiser) -> TransformerDenoiser:
    """The same weights run through torch's own encoder layer (the plain path)."""
    import copy

    ref = copy.deepcopy(net)
    for layer in ref.encoder.layers:
        layer.__class__ = torch.nn.TransformerEncoderLayer
    return ref


@pytest.mark.parametrize("padded", [False, True])
def test_cpu_training_fast_path_equals_torch_layer(padded):
    torch.manual_seed(0)
    net = TransformerDenoiser(tx_dim=16, latent_dim=32, ff_size=64, num_layers=2, num_heads=4,
                              dropout=0.0, keyframe_conditioned=True)  # fmt: skip
    ref = _stock_copy(net)
    x, valid = torch.randn(3, 10, 205), torch.ones(3, 10, dtype=torch.bool)
    if padded:
        valid[1, 6:] = False
    cond = {"text": torch.randn(3, 16), "valid": valid,
            "obs_mask": torch.zeros(3, 10, 205, dtype=torch.bool)}  # fmt: skip
    t = torch.tensor([1, 5, 9])
    out, expected = net.train()(x, t, cond), ref.train()(x, t, cond)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    out.pow(2).sum().backward()
    expected.pow(2).sum().backward()
    for (name, p), q in zip(net.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4, msg=name)
    # eval mode is torch's layer: bit-identical (the upstream parity tests run here)
    with torch.no_grad():
        assert torch.equal(net.eval()(x, t, cond), ref.eval()(x, t, cond))
    assert list(net.state_dict()) == list(ref.state_dict())


def test_cpu_dropout_keeps_one_minus_p_and_the_expectation():
    from stmc_keyframe.model.denoiser import cpu_dropout

    torch.manual_seed(0)
    x = torch.full((400, 1000), 2.0)
    out = cpu_dropout(x, 0.1)
    kept = out != 0
    assert abs(float(kept.float().mean()) - 0.9) < 3e-3
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 2 * 65536 / 58982))
    assert abs(float(out.mean()) - 2.0) < 1e-2
    torch.manual_seed(0)
    assert torch.equal(cpu_dropout(x, 0.1), out)  # the global RNG drives it
    assert torch.equal(cpu_dropout(x, 0.0), x)
    # gradients flow only through kept entries, scaled like the values
    leaf = torch.ones(8, 64, requires_grad=True)
    cpu_dropout(leaf, 0.5).sum().backward()
    assert set(leaf.grad.unique().tolist()) <= {0.0, 2.0}


def test_denoiser_paper_size_is_about_27m_parameters():
    net = TransformerDenoiser(tx_dim=512)
    n = sum(p.numel() for p in net.parameters())
    assert 26.5e6 < n < 27.5e6


def test_keyframe_flag_mismatch_is_a_config_error(make_module):
    with pytest.raises(ValueError, match="diffusion.denoiser.keyframe_conditioned"):
        make_module(keyframe_conditioned=True, denoiser={"keyframe_conditioned": False})
    with pytest.raises(ValueError, match="diffusion.keyframe_dropout: Key 'keyframe_dropout' not"):
        make_module(keyframe_dropout=0.3)
    with pytest.raises(ValueError, match="diffusion.num_steps"):
        make_module(num_steps="many")
    with pytest.raises(ValueError, match="tx_dim"):
        make_module(denoiser={"tx_dim": 512})


class _Recorder:
    def __init__(self):
        self.values = {}

    def __call__(self, name, value, **_):
        self.values[name] = float(value.detach()) if hasattr(value, "detach") else float(value)


@pytest.mark.parametrize("scheme", [s for s in SCHEMES])
def test_every_keyframe_scheme_trains(make_module, tiny_data, scheme):
    torch.manual_seed(0)
    module = make_module(tiny_data.stats, keyframe_selection_scheme=scheme, keyframe_mask_prob=0.0)
    module.log = rec = _Recorder()
    seen = {}
    original = module.denoiser.forward

    def spy(x, t, cond):
        seen["x"], seen["obs"] = x, cond["obs_mask"]
        return original(x, t, cond)

    module.denoiser.forward = spy
    batch = _batch(tiny_data)
    loss = module.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    ratio = rec.values["train/keyframe_ratio"]
    if scheme == "uncond":
        assert ratio == 0.0
    else:
        assert 0.0 < ratio < 1.0
    # observed entries of the denoiser input hold the clean normalised data
    from motioncore.masking import length_mask

    valid = length_mask(batch["lengths"], batch["feats"].shape[1])
    x0 = module.normalize(batch["feats"], valid)
    obs = seen["obs"]
    torch.testing.assert_close(seen["x"][obs], x0[obs])
    assert "train/non_keyframe_loss" in rec.values


def test_scheme_ratios_are_ordered(make_module, tiny_data):
    ratios = {}
    for scheme in ("pelvis_only", "gmd_keyframes", "benchmark_clip"):
        torch.manual_seed(0)
        module = make_module(
            tiny_data.stats, keyframe_selection_scheme=scheme, keyframe_mask_prob=0.0
        )
        module.log = rec = _Recorder()
        module.training_step(_batch(tiny_data), 0)
        ratios[scheme] = rec.values["train/keyframe_ratio"]
    assert ratios["pelvis_only"] < ratios["gmd_keyframes"] < ratios["benchmark_clip"]


def test_keyframe_dropout_and_zero_keyframe_loss(make_module, tiny_data):
    torch.manual_seed(0)
    module = make_module(
        tiny_data.stats, keyframe_selection_scheme="benchmark_clip", keyframe_mask_prob=1.0
    )
    module.log = rec = _Recorder()
    module.training_step(_batch(tiny_data), 0)
    assert rec.values["train/keyframe_ratio"] == 0.0  # every mask dropped
    torch.manual_seed(0)
    zero = make_module(tiny_data.stats, keyframe_selection_scheme="benchmark_clip", keyframe_mask_prob=0.0,
                       zero_keyframe_loss=True)  # fmt: skip
    zero.log = rec = _Recorder()
    loss = zero.training_step(_batch(tiny_data), 0)
    # with the keyframe entries excluded, the loss is exactly the non-keyframe loss
    assert float(loss) == pytest.approx(rec.values["train/non_keyframe_loss"], rel=1e-5)


def test_plain_text_to_motion_when_not_keyframe_conditioned(make_module, tiny_data):
    module = make_module(tiny_data.stats, keyframe_conditioned=False)
    assert module.denoiser.input.in_features == 205 and module.denoiser.keyframe_embedding is None
    module.log = rec = _Recorder()
    module.training_step(_batch(tiny_data), 0)
    assert rec.values["train/keyframe_ratio"] == 0.0


def test_overfits_one_batch(make_module, tiny_data):
    torch.manual_seed(0)
    module = make_module(tiny_data.stats, keyframe_mask_prob=0.0)
    module.hparams.drop_cond = 0.0
    module.log = lambda *a, **k: None
    opt = torch.optim.AdamW(module.denoiser.parameters(), lr=3e-3)
    batch = _batch(tiny_data)
    losses = []
    for _ in range(120):
        torch.manual_seed(1)  # same t and noise every step: a fixed regression problem
        loss = module.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0] / 5, losses[::20]


def test_missing_clip_weights_name_the_file_to_pass_and_switch_nothing(tmp_path):
    from stmc_keyframe.model.text_encoder import TextEncoder

    enc = TextEncoder("clip", clip_pretrained=str(tmp_path / "missing_vit_b32.bin"))
    with pytest.raises(
        FileNotFoundError, match="clip_pretrained=/path/to/open_clip_vit_b32.bin"
    ) as e:
        enc(["a person walks"])
    assert "no other encoder is substituted" in str(e.value) and enc.dim == 512
