"""STDiffModel: kitti_range size and layout, config errors, SPADE wrapping, SDE motion."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.resnet import ResnetBlock2D

from stdiff.model.motion import ConvGRUCell
from stdiff.model.stdiff import STDiffModel
from stdiff.model.unet import SpadeConv, count_parameters
from stdiff.schema import model_kwargs


def _kitti_range_cfg(repo_root) -> dict:
    return model_kwargs("kitti_range", 1)["STDiff"]


def test_kitti_range_parameter_count_and_layout(repo_root):
    cfg = _kitti_range_cfg(repo_root)
    unet = cfg["Diffusion"]["unet_config"]
    assert unet["block_out_channels"] == [128, 256, 256, 512, 512]
    assert unet["attention_head_dim"] == [None, 128, 128, 128, 128]
    with torch.device("meta"):
        model = STDiffModel(cfg, channels=1)
    total = count_parameters(model)
    spade = sum(p.numel() for n, p in model.named_parameters() if ".spade." in n)
    assert 203.5e6 < total < 205.0e6  # upstream: ~204.2M
    assert 193.5e6 < count_parameters(model.unet) < 195e6  # UNet incl. SPADE ~194M
    assert 74.5e6 < spade < 76e6  # ~75M in the SPADE modules
    assert 1.7e6 < count_parameters(model.tde.encoder) < 1.9e6
    assert 3.4e6 < count_parameters(model.tde.gru) < 3.6e6
    assert 4.6e6 < count_parameters(model.tde.sde) < 4.8e6
    u = model.unet.unet
    assert [type(b).__name__ for b in u.down_blocks] == ["DownBlock2D"] + ["AttnDownBlock2D"] * 4
    assert [type(b).__name__ for b in u.up_blocks] == ["AttnUpBlock2D"] * 4 + ["UpBlock2D"]
    resnets = [m for m in u.modules() if isinstance(m, ResnetBlock2D)]
    assert len(resnets) == 27 and all(isinstance(r.conv1, SpadeConv) for r in resnets)
    heads = {a.inner_dim // a.heads for b in u.down_blocks[1:] for a in b.attentions}
    assert heads == {128}
    assert model.tde.channels == 256 and model.unet.in_channels == 2


def test_unknown_config_keys_are_rejected(tiny_cfg):
    tiny_cfg["DiffNet"]["Int"]["stepsize"] = 0.1
    with pytest.raises(ValueError, match="stepsize"):
        STDiffModel(tiny_cfg)


def test_mismatched_channels_name_the_fix(tiny_cfg):
    tiny_cfg["Diffusion"]["unet_config"]["in_channels"] = 1
    with pytest.raises(ValueError, match=r"in_channels=1 \(needs 2\)"):
        STDiffModel(tiny_cfg)


def test_attention_head_dim_per_block(tiny_cfg):
    """Upstream's 128 px configs give each block its own head dim ([.., 192, 256])."""
    tiny_cfg["Diffusion"]["unet_config"]["attention_head_dim"] = [None, 4]
    u = STDiffModel(tiny_cfg).unet.unet
    attn = u.down_blocks[1].attentions[0]
    assert (attn.heads, attn.scale) == (4, 4**-0.5)  # 16 channels / head dim 4
    assert u.up_blocks[0].attentions[0].heads == 16 // 4 and u.mid_block.attentions[0].heads == 4
    tiny_cfg["Diffusion"]["unet_config"]["attention_head_dim"] = [4]
    with pytest.raises(ValueError, match="one per block"):
        STDiffModel(tiny_cfg)


def test_channels_follow_the_data(tiny_cfg):
    for key in ("in_channels", "out_channels"):
        del tiny_cfg["Diffusion"]["unet_config"][key]
    del tiny_cfg["DiffNet"]["MotionEncoder"]["in_channels"]
    model = STDiffModel(tiny_cfg, channels=3)
    assert (model.unet.in_channels, model.unet.unet.config.out_channels) == (6, 3)
    assert model.tde.encoder.net[0].in_channels == 3 and model.channels == 3
    assert model.config["Diffusion"]["unet_config"]["in_channels"] == 6
    with pytest.raises(ValueError, match="data.channels"):
        STDiffModel(tiny_cfg)
    tiny_cfg["Diffusion"]["unet_config"]["out_channels"] = 1
    with pytest.raises(ValueError, match=r"3-channel frames but STDiff.Diffusion.unet_config.out"):
        STDiffModel(tiny_cfg, channels=3)


def test_training_forward_shapes_and_motion_changes_output(tiny_cfg, clip_batch):
    torch.manual_seed(0)
    model = STDiffModel(tiny_cfg)
    b = clip_batch
    t = torch.randint(0, 1000, (4,))
    eps = model(b["vo"], b["idx_o"], b["idx_p"], b["vp"], t, clean_vp=b["vp"], entropy=1)
    assert eps.shape == b["vp"].shape
    m1 = torch.randn(4, 8, 8, 8)
    x = b["vp"].flatten(0, 1)
    out1 = model.denoise(x, t, m1, x)
    out2 = model.denoise(x, t, m1 + 1, x)
    assert not torch.allclose(out1, out2)  # the SPADE heads see the motion map


def test_spade_cache_matches_plain_forward(tiny_cfg):
    torch.manual_seed(0)
    model = STDiffModel(tiny_cfg).eval()
    x, m = torch.randn(3, 2, 16, 16), torch.randn(3, 8, 8, 8)
    t1, t2 = torch.full((3,), 10), torch.full((3,), 500)
    plain = [model.unet(x, t, m) for t in (t1, t2)]
    with model.unet.reuse_motion():
        cached = [model.unet(x, t, m) for t in (t1, t2)]
    for a, c in zip(plain, cached, strict=True):
        torch.testing.assert_close(a, c)


def _plain_spade(block: SpadeConv, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The fork's formula per head, in fp32 NCHW: IN(conv1(x)) * (1 + gamma) + beta, the motion
    map resized (nearest) by every head itself."""
    h = block.conv(x.float().contiguous())
    m = torch.nn.functional.interpolate(m.float(), size=h.shape[-2:], mode="nearest")
    a = block.spade.shared(m)
    return torch.nn.functional.instance_norm(h) * (1 + block.spade.gamma(a)) + block.spade.beta(a)


@pytest.mark.parametrize("fast", [False, True], ids=["fp32-nchw", "bf16-channels-last"])
def test_spade_blocks_equal_the_plain_formula(tiny_cfg, fast):
    """Every SPADE-wrapped conv1 of a UNet forward (the motion map resized once per resolution
    and shared by the heads there, group_norm as instance norm, channels-last in the fast path)
    gives the plain per-head formula: fp32 to rounding, bf16 autocast to bf16 precision."""
    torch.manual_seed(0)
    model = STDiffModel(tiny_cfg).eval()
    x, m = torch.randn(3, 2, 16, 16), torch.randn(3, 8, 8, 8)
    seen = []

    def hook(block, inputs, out):
        seen.append((block, inputs[0].detach(), out.detach()))

    blocks = [b for b in model.unet.modules() if isinstance(b, SpadeConv)]
    handles = [b.register_forward_hook(hook) for b in blocks]
    with (
        torch.no_grad(),
        torch.autocast("cpu", torch.bfloat16, enabled=fast),
        model.unet.channels_last(fast),
    ):
        model.unet(x, torch.full((3,), 400), m)
    for h in handles:
        h.remove()
    assert len(seen) == len(blocks) > 2
    tol = {"atol": 6e-2, "rtol": 3e-2} if fast else {"atol": 1e-5, "rtol": 1e-5}
    with torch.no_grad():
        for block, inp, out in seen:
            assert out.is_contiguous(memory_format=torch.channels_last) or not fast
            torch.testing.assert_close(out.float(), _plain_spade(block, inp, m), **tol)


def test_motion_sde_starts_constant_then_is_stochastic(tiny_cfg):
    torch.manual_seed(0)
    model = STDiffModel(tiny_cfg)
    m = torch.randn(2, 8, 8, 8)
    times = torch.tensor([[0.5, 1.25, 2.0]]).repeat(2, 1)
    out = model.tde.future_predict(m, times, entropy=0)
    assert out.shape == (2, 3, 8, 8, 8)
    torch.testing.assert_close(out, m[:, None].expand_as(out))  # f = g = 0 at initialisation
    for p in model.tde.sde.parameters():
        p.data.normal_(0, 0.05)
    a = model.tde.future_predict(m, times, entropy=1)
    b = model.tde.future_predict(m, times, entropy=1)
    c = model.tde.future_predict(m, times, entropy=2)
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 1e-3


def test_per_example_future_times_match_separate_solves(tiny_cfg):
    tiny_cfg["DiffNet"]["Int"]["sde"] = False  # deterministic drift: comparable across batches
    torch.manual_seed(0)
    model = STDiffModel(tiny_cfg)
    for p in model.tde.sde.parameters():
        p.data.normal_(0, 0.05)
    m = torch.randn(2, 8, 8, 8)
    times = torch.tensor([[0.5, 2.0], [1.25, 3.0]])
    joint = model.tde.future_predict(m, times)
    for i in range(2):
        alone = model.tde.future_predict(m[i : i + 1], times[i : i + 1])
        torch.testing.assert_close(joint[i : i + 1], alone, rtol=1e-5, atol=1e-5)


def test_convgru_update_rules():
    torch.manual_seed(0)
    std, up = ConvGRUCell(4, "standard"), ConvGRUCell(4, "upstream")
    up.load_state_dict(std.state_dict())
    x, h = torch.randn(1, 4, 5, 5), torch.randn(1, 4, 5, 5)
    u, r = torch.sigmoid(std.gates(torch.cat([x, h], 1))).chunk(2, 1)
    cand = torch.tanh(std.candidate(torch.cat([x, r * h], 1)))
    torch.testing.assert_close(std(x, h), (1 - u) * h + u * cand)
    torch.testing.assert_close(up(x, h), (1 - u) * h + cand)


def test_uneven_observation_times_scale_frame_differences(tiny_cfg):
    torch.manual_seed(0)
    model = STDiffModel(tiny_cfg)
    vo = torch.randn(1, 3, 1, 16, 16)
    even = model.tde.context_encode(vo, torch.tensor([[0.0, 1.0, 2.0]]))
    # the same clip observed at half the frame rate is a slower motion
    slow = model.tde.context_encode(vo, torch.tensor([[0.0, 2.0, 4.0]]))
    halved = model.tde.context_encode(
        torch.cat(
            [
                vo[:, :1],
                vo[:, :1] + (vo[:, 1:2] - vo[:, :1]) / 2,
                vo[:, :1] + (vo[:, 2:3] - vo[:, :1]) / 2,
            ],
            1,
        ),
        torch.tensor([[0.0, 1.0, 2.0]]),
    )
    torch.testing.assert_close(slow, halved, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(even, slow)
    with pytest.raises(ValueError, match="increasing"):
        model.tde.context_encode(vo, torch.tensor([[0.0, 0.0, 1.0]]))


@pytest.mark.slow
def test_kitti_range_forward_backward_full_size(repo_root):
    """One training step of the 204M model on a 3 + 3 frame 64 x 512 clip (minutes on CPU)."""
    from stdiff.module import STDiffModule

    torch.manual_seed(0)
    module = STDiffModule(**model_kwargs("kitti_range", 1))
    frames = torch.rand(1, 6, 1, 64, 512) * 2 - 1
    times = torch.arange(6.0)[None]
    batch = {"vo": frames[:, :3], "idx_o": times[:, :3], "vp": frames[:, 3:], "idx_p": times[:, 3:]}
    loss = module.diffusion_loss(batch, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in module.model.unet.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    spade_grad = sum(
        p.grad.abs().sum() for n, p in module.model.named_parameters() if ".spade." in n
    )
    assert spade_grad > 0


def test_gradient_checkpointing_matches_plain_backward(tiny_cfg, clip_batch):
    """Checkpointed ResNet blocks recompute their SPADE modulation in backward (the motion map
    is restored for the recomputation): loss and every gradient equal the plain backward."""
    b = clip_batch
    t = torch.randint(0, 1000, (4,), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = STDiffModel(tiny_cfg)
    grads = []
    for enable in (False, True):
        model.unet.enable_gradient_checkpointing(enable)
        model.zero_grad(set_to_none=True)
        eps = model(b["vo"], b["idx_o"], b["idx_p"], b["vp"], t, clean_vp=b["vp"], entropy=1)
        eps.square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert any(
        m.gradient_checkpointing
        for m in model.unet.modules()
        if hasattr(m, "gradient_checkpointing")
    )
    assert grads[0].keys() == grads[1].keys() and any(".spade." in n for n in grads[0])
    for n, g in grads[0].items():
        torch.testing.assert_close(grads[1][n], g, atol=1e-6, rtol=1e-5, msg=n)
