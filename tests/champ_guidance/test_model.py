"""Model: shapes, guidance entry points, registry, every parameter used, reference attention,
sliding windows vs the plain path, temporal modules, diffusers-folder loading, overfitting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from champ_guidance.model.champ import ChampModel
from champ_guidance.model.guidance import register_guidance_encoder, zero_module
from champ_guidance.model.temporal import MotionModule
from champ_guidance.module import ChampModule

SCHEDULE = dict(
    num_train_timesteps=1000,
    beta_schedule="linear",
    prediction_type="v_prediction",
    rescale_zero_snr=True,
    sampler="ddim",
    num_inference_steps=4,
    min_snr_gamma=5.0,
    noise_offset=0.05,
)


def _cond(net, batch, keep=None):
    b = batch["reference"].shape[0]
    return net.encode_conditions(
        batch["reference"], batch["guidance"], torch.ones(b) if keep is None else keep
    )


@pytest.mark.parametrize("channels,target", [(16, "spatial"), (64, "embedding")])
def test_denoiser_shapes_and_zero_initialised_guidance(
    make_net_kwargs, make_batch, channels, target
):
    torch.manual_seed(0)
    net = ChampModel(**make_net_kwargs(guidance_embedding_channels=channels))
    assert net.injector.target == target
    batch = make_batch()
    cond = _cond(net, batch)
    feats = cond["guidance"]
    assert feats.shape == ((6, 16, 16, 16) if target == "spatial" else (6, 64))
    assert feats.abs().max() == 0  # zero-initialised outputs: the UNet starts unchanged
    x = torch.randn(6, 3, 16, 16)
    t = torch.randint(0, 1000, (6,))
    out = net.denoise(x, t, cond)
    assert out.shape == x.shape
    # after a change of the encoders' output layer the guidance changes the prediction
    for enc in net.guidance_encoders.values():
        for p in enc.conv_out.parameters():
            nn.init.normal_(p, std=0.1)
    assert not torch.allclose(net.denoise(x, t, _cond(net, batch)), out)


def test_invalid_guidance_embedding_channels_is_a_clear_error(make_net_kwargs):
    with pytest.raises(ValueError, match=r"use 16 \(conv_in width.*or 64 \(time-embedding"):
        ChampModel(**make_net_kwargs(guidance_embedding_channels=320))


def test_unknown_guidance_type_names_the_registry(make_net_kwargs):
    with pytest.raises(KeyError, match="register_guidance_encoder"):
        ChampModel(
            **make_net_kwargs(guidance_types=["music", "thermal"], guidance_input_channels=[3, 2])
        )


@register_guidance_encoder("test_mean_color")
class MeanColourEncoder(nn.Module):
    """A custom guidance type for the test: per-frame vector -> spatial map (zero-init)."""

    def __init__(self, in_channels, out_channels, target, downsample, guidance_size):
        super().__init__()
        self.size = guidance_size // downsample
        self.proj = zero_module(nn.Linear(in_channels, out_channels))

    def forward(self, x):
        return self.proj(x)[:, :, None, None].expand(-1, -1, self.size, self.size)


def test_every_trainable_parameter_gets_a_gradient(make_net_kwargs, make_batch):
    """Both built-in types and a registered custom type; no unused parameters under DDP."""
    torch.manual_seed(0)
    kw = make_net_kwargs(
        guidance_types=["music", "pose", "test_mean_color"],
        guidance_input_channels=[3, 6, 4],
        reference_concat=True,
    )
    module = ChampModule(net=kw, schedule=SCHEDULE)
    batch = make_batch(channels=(("music", 3), ("pose", 6)))
    batch["guidance"]["test_mean_color"] = torch.rand(2, 3, 4)
    loss, _ = module._loss(batch, keep=torch.ones(2))
    loss.backward()
    trainable = {n: p for n, p in module.named_parameters() if p.requires_grad}
    assert any(n.startswith("net.guidance_encoders.test_mean_color") for n in trainable)
    missing = [n for n, p in trainable.items() if p.grad is None]
    assert missing == []
    frozen = [n for n, p in module.named_parameters() if not p.requires_grad]
    assert any("reference_unet.conv_out" in n for n in frozen)  # never reaches a bank
    assert all("denoising_unet" not in n for n in frozen)


def test_dropped_reference_equals_plain_self_attention(make_net_kwargs, make_batch):
    """The masked bank (CFG's unconditional branch) is exactly attention without the bank."""
    torch.manual_seed(0)
    net = ChampModel(**make_net_kwargs())
    batch = make_batch()
    x, t = torch.randn(6, 3, 16, 16), torch.randint(0, 1000, (6,))
    mixed = _cond(net, batch, keep=torch.tensor([1.0, 0.0]))
    out_mixed = net.denoise(x, t, mixed)
    empty = {**mixed, "bank": {}}  # no reference at all for both clips
    out_plain = net.denoise(x, t, empty)
    torch.testing.assert_close(out_mixed[3:], out_plain[3:], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out_mixed[:3], out_plain[:3], atol=1e-4)


def test_reference_concat_starts_neutral_and_is_dropped_with_the_reference(
    make_net_kwargs, make_batch
):
    torch.manual_seed(0)
    net = ChampModel(**make_net_kwargs(reference_concat=True))
    assert net.denoising_unet.conv_in.in_channels == 6
    assert net.denoising_unet.config.in_channels == 6
    assert net.reference_unet.conv_in.in_channels == 3
    batch = make_batch()
    x, t = torch.randn(6, 3, 16, 16), torch.randint(0, 1000, (6,))
    cond = _cond(net, batch, keep=torch.tensor([1.0, 0.0]))
    blank = {**cond, "latent": torch.zeros_like(cond["latent"])}
    # zero-initialised extra channels: the widened UNet computes what the plain one did
    torch.testing.assert_close(net.denoise(x, t, cond), net.denoise(x, t, blank))
    nn.init.normal_(net.denoising_unet.conv_in.weight, std=0.1)
    out, out_blank = net.denoise(x, t, cond), net.denoise(x, t, blank)
    assert not torch.allclose(out[:3], out_blank[:3], atol=1e-4)  # kept: the latent matters
    torch.testing.assert_close(out[3:], out_blank[3:])  # dropped (CFG uncond): zeros


def test_sliding_windows_match_the_plain_path(make_net_kwargs, make_batch):
    """Stage 1 denoises frames independently, so windowed averaging must equal one pass."""
    torch.manual_seed(0)
    net = ChampModel(**make_net_kwargs())
    batch = make_batch(b=1, f=7)
    cond = _cond(net, batch)
    x, t = torch.randn(7, 3, 16, 16), torch.full((7,), 500)
    full = net.denoise(x, t, cond)
    windowed = net.denoise_windows(x, t, cond, window=3, overlap=1)
    torch.testing.assert_close(windowed, full, rtol=1e-4, atol=1e-5)


def test_temporal_modules_start_as_identity_and_mix_frames(make_net_kwargs, make_batch):
    torch.manual_seed(0)
    kw = make_net_kwargs()
    plain = ChampModel(**kw)
    torch.manual_seed(0)
    temporal = ChampModel(**{**kw, "temporal": dict(enabled=True, heads=2, max_frames=16)})
    temporal.load_state_dict(plain.state_dict(), strict=False)
    batch = make_batch(b=1, f=4)
    x, t = torch.randn(4, 3, 16, 16), torch.full((4,), 300)
    torch.testing.assert_close(
        temporal.denoise(x, t, _cond(temporal, batch)),
        plain.denoise(x, t, _cond(plain, batch)),
        rtol=1e-4,
        atol=1e-5,
    )
    for m in temporal.temporal.modules():
        if isinstance(m, MotionModule):
            nn.init.normal_(m.temporal_transformer.proj_out.weight, std=0.1)
    cond = _cond(temporal, batch)
    base = temporal.denoise(x, t, cond)
    x2 = x.clone()
    x2[3] = torch.randn(3, 16, 16)
    # frame 0 now depends on frame 3 through attention over frames
    assert not torch.allclose(temporal.denoise(x2, t, cond)[0], base[0], atol=1e-5)


def test_stage2_trains_only_temporal_modules(make_net_kwargs, tmp_path):
    kw = make_net_kwargs(temporal=dict(enabled=True, heads=2, max_frames=16))
    module = ChampModule(net=kw, schedule=SCHEDULE, stage=2)
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    assert names and all(".temporal." in n for n in names)
    with pytest.raises(FileNotFoundError, match="stage1_ckpt"):
        ChampModule(net=kw, schedule=SCHEDULE, stage=2, stage1_ckpt=str(tmp_path / "none.ckpt"))


def test_diffusers_folder_loading_and_errors(make_net_kwargs, tmp_path):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from champ_guidance.model.backbone import load_backbone

    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_backbone(str(tmp_path / "nowhere"), {}, 32)
    (tmp_path / "broken" / "unet").mkdir(parents=True)
    (tmp_path / "broken" / "unet" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"vae/config.json is missing"):
        load_backbone(str(tmp_path / "broken"), {}, 32)
    folder = tmp_path / "sd"
    unet_kw = {k: v for k, v in make_net_kwargs()["tiny_unet"].items()}
    unet_kw.update(in_channels=4, out_channels=4)
    torch.manual_seed(0)
    UNet2DConditionModel(sample_size=8, **unet_kw).save_pretrained(folder / "unet")
    AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4,
        sample_size=16,
    ).save_pretrained(folder / "vae")
    ref, den, codec = load_backbone(str(folder), {}, 16)
    assert codec.downsample == 2 and codec.channels == 4
    assert torch.equal(ref.conv_in.weight, den.conv_in.weight)
    kw = make_net_kwargs(
        pretrained_model_name_or_path=str(folder),
        guidance_encoder=dict(block_out_channels=(8, 16), attention_heads=2),
    )
    net = ChampModel(**kw)
    assert net.latent_shape == (4, 8, 8)
    batch = {
        "reference": torch.rand(1, 3, 16, 16) * 2 - 1,
        "guidance": {"music": torch.rand(1, 2, 3), "pose": torch.rand(1, 2, 6, 16, 16)},
    }
    out = net.denoise(torch.randn(2, 4, 8, 8), torch.tensor([10, 10]), _cond(net, batch))
    assert out.shape == (2, 4, 8, 8)


def test_missing_clip_weights_warn_and_fall_back_to_random(tmp_path, make_net_kwargs):
    from champ_guidance.model.image_encoder import ReferenceImageEncoder

    tiny = make_net_kwargs()["image_encoder"]["tiny"]  # output_dim 16
    with pytest.warns(UserWarning, match="random initialisation"):
        enc = ReferenceImageEncoder("tiny", weights=str(tmp_path / "clip.bin"), tiny=tiny)
    assert enc(torch.zeros(2, 3, 20, 20)).shape == (2, 1, 16)
    assert not any(p.requires_grad for p in enc.parameters())


def test_overfits_one_batch(make_net_kwargs, make_batch):
    """Loss on one fixed batch (fixed noise/timesteps) falls by at least 3x in 40 AdamW steps."""
    torch.manual_seed(0)
    module = ChampModule(net=make_net_kwargs(), schedule=SCHEDULE, uncond_ratio=0.0)
    batch = make_batch(b=2, f=2)
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=3e-3)

    def loss():
        return module._loss(batch, torch.ones(2), torch.Generator().manual_seed(0))[0]

    first = float(loss())
    for _ in range(40):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert float(loss()) < first / 3


def test_test_step_samples_follow_the_seeds_round(make_net_kwargs, make_batch):
    """SEEDS=N: each evaluation round samples from other noise (round_seed); round 0 repeats."""
    module = ChampModule(net=make_net_kwargs(), schedule=SCHEDULE, num_inference_steps=2).eval()
    batch = make_batch()
    rounds = []
    module.log = lambda name, value, **_: rounds[-1].update({name: float(value)})
    for r in (0, 1, 0):
        rounds.append({})
        module.eval_round = r
        module.test_step(batch, 1)  # batch 0 would write media through the trainer
    assert rounds[2] == rounds[0]
    assert rounds[1]["test/l1"] != rounds[0]["test/l1"]
    assert rounds[1]["baseline/l1"] == rounds[0]["baseline/l1"]
