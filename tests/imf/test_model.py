"""Shapes, the modulated convolution, attention fast path and input checks of the IMF nets."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from imf.model import (
    IMFGenerator,
    ImplicitMotionAlignment,
    ModulatedConv2d,
    MultiScalePatchDiscriminator,
    cross_attention,
)
from imf.model.alignment import transformer_block


def test_modulated_conv_demodulates_to_unit_norm_kernels():
    conv = ModulatedConv2d(6, 5, 3, style_dim=4)
    style = torch.randn(3, 4)
    weight = conv.modulated_weight(style)
    assert weight.shape == (3, 5, 6, 3, 3)
    norms = weight.square().sum(dim=(2, 3, 4))
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-4, rtol=1e-4)


def test_modulated_conv_modulation_changes_output_but_demodulation_removes_global_scale():
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 4, 3, style_dim=4)
    x = torch.randn(2, 4, 8, 8)
    style = torch.randn(2, 4)
    out = conv(x, style)
    # Per-example kernels: a different style gives a different output...
    assert not torch.allclose(out, conv(x, style + 1.0))
    # ...but scaling every input channel's modulation by one factor is undone by eq. 3.
    with torch.no_grad():
        conv.modulation.weight.mul_(3.0)
        conv.modulation.bias.mul_(3.0)
    torch.testing.assert_close(conv(x, style), out, atol=1e-4, rtol=1e-4)


def test_modulated_conv_matches_per_example_conv2d():
    torch.manual_seed(1)
    conv = ModulatedConv2d(3, 2, 3, style_dim=5, demodulate=False)
    x, style = torch.randn(2, 3, 6, 6), torch.randn(2, 5)
    weight = conv.modulated_weight(style)
    expected = torch.cat(
        [torch.nn.functional.conv2d(x[i : i + 1], weight[i], padding=1) for i in range(2)]
    )
    torch.testing.assert_close(conv(x, style), expected, atol=1e-5, rtol=1e-5)
    s = conv.modulation(style)  # eq. 1: w' = s_i * w
    torch.testing.assert_close(weight, conv.scale * conv.weight * s[:, None, :, None, None])


@pytest.mark.parametrize("d_qk,d_v", [(8, 24), (24, 8), (16, 16)])
def test_fused_cross_attention_equals_plain(d_qk, d_v):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 50, d_qk), torch.randn(2, 50, d_qk), torch.randn(2, 50, d_v)
    torch.testing.assert_close(
        cross_attention(q, k, v), cross_attention(q, k, v, fused=False), atol=1e-5, rtol=1e-4
    )


def test_alignment_fused_equals_plain_and_runs_off_grid():
    torch.manual_seed(0)
    align = ImplicitMotionAlignment(
        motion_dim=8, feature_dim=12, grid_size=4, depth=1, heads=2, mlp_dim=16
    ).eval()
    m_c, m_r, f_r = torch.randn(2, 8, 6, 6), torch.randn(2, 8, 6, 6), torch.randn(2, 12, 6, 6)
    fused = align(m_c, m_r, f_r)
    align.fused = False
    assert fused.shape == (2, 12, 6, 6)
    torch.testing.assert_close(fused, align(m_c, m_r, f_r), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("train", [False, True])
def test_alignment_attention_runs_on_the_flash_kernel(train):
    """Both attentions of IMF_A take SDPA's flash kernel (O(N) memory), in eval without
    gradients (where torch's own layer materialises the scores) and in training; the query side
    wider than the values is not padded, so it must be made contiguous first."""
    torch.manual_seed(0)
    align = ImplicitMotionAlignment(16, 8, 4, depth=1, heads=2, mlp_dim=16).train(train)
    m_c, m_r, f_r = torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4), torch.randn(1, 8, 4, 4)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.set_grad_enabled(train):
        out = align(m_c, m_r, f_r)
        if train:
            out.sum().backward()
    assert out.shape == (1, 8, 4, 4)


def test_transformer_block_equals_torch_layer_in_eval_training_and_bf16():
    """The SDPA block is torch's ``TransformerEncoderLayer`` forward (its eval fast path and its
    training path), with equal parameter gradients; under bf16 autocast within bf16 rounding."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(
        16, 4, 32, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    )
    x = torch.randn(2, 40, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            transformer_block(layer.eval(), x), layer(x), atol=1e-5, rtol=1e-5
        )
    layer.train()
    grads = []
    for fn in (transformer_block, lambda module, h: module(h)):
        layer.zero_grad()
        out = fn(layer, x)
        (out * torch.linspace(-1, 1, 16)).sum().backward()
        grads.append([p.grad.clone() for p in layer.parameters()])
        if len(grads) == 1:
            fast = out.detach()
    torch.testing.assert_close(fast, out.detach(), atol=1e-5, rtol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast_bf16 = transformer_block(layer.eval(), x)
    torch.testing.assert_close(fast_bf16.float(), layer(x).detach(), atol=0.05, rtol=0.05)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_generator_shapes_and_range(tiny_generator_kwargs, size):
    gen = IMFGenerator(**{**tiny_generator_kwargs, "image_size": size}).eval()
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        out = gen(x, x.flip(0))
        tokens = gen.encode_tokens(x)
    assert out.shape == x.shape
    assert out.min() >= -1 and out.max() <= 1
    assert tokens.shape == (2, tiny_generator_kwargs["token_dim"])


def test_flop_counter_runs_on_inference_and_codec_decode(tiny_generator_kwargs):
    """make bench counts FLOPs of no_grad reconstruction; module hooks must accept every input
    (a parameter view made under no_grad used to trip FlopCounterMode's module tracker)."""
    from torch.utils.flop_counter import FlopCounterMode

    gen = IMFGenerator(**tiny_generator_kwargs).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        full, cached = FlopCounterMode(display=False), FlopCounterMode(display=False)
        with full:
            out = gen(x, x.flip(0))
        cache = gen.encode_reference(x[:1])
        with cached:
            decoded = gen.decode(cache, gen.encode_tokens(x))
        torch.testing.assert_close(decoded, gen(x, x[:1].expand(2, -1, -1, -1)))
    assert out.shape == x.shape
    # The cached decode skips E_F and the reference's E_T and IMF_D.
    assert 0 < cached.get_total_flops() < full.get_total_flops()


@pytest.mark.slow
def test_paper_generator_levels_match_reference_shapes():
    gen = IMFGenerator(image_size=256)
    code = gen.encode_reference(torch.zeros(1, 3, 256, 256))
    assert [tuple(f.shape[1:]) for f in code.features] == [
        (128, 64, 64),
        (256, 32, 32),
        (512, 16, 16),
        (512, 8, 8),
    ]
    assert [tuple(m.shape[1:]) for m in code.motion] == [
        (256, 64, 64),
        (512, 32, 32),
        (512, 16, 16),
        (512, 8, 8),
    ]
    params = sum(p.numel() for p in gen.parameters()) / 1e6
    assert 150 < params < 170  # upstream 158.8M


def test_discriminator_gives_one_logit_map_per_scale():
    disc = MultiScalePatchDiscriminator(num_scales=2, ndf=8, n_layers=3)
    logits = disc(torch.randn(2, 3, 64, 64))
    assert [tuple(t.shape) for t in logits] == [(2, 1, 8, 8), (2, 1, 4, 4)]


def test_bad_inputs_are_clear_errors(tiny_generator_kwargs):
    gen = IMFGenerator(**tiny_generator_kwargs)
    with pytest.raises(ValueError, match="model built for 32 px"):
        gen(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        gen(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="one entry per level"):
        IMFGenerator(**{**tiny_generator_kwargs, "motion_channels": (8,)})
    with pytest.raises(ValueError, match="norm must be one of"):
        IMFGenerator(**{**tiny_generator_kwargs, "norm": "layer"})
    with pytest.raises(ValueError, match="power of two"):
        IMFGenerator(**{**tiny_generator_kwargs, "image_size": 48})
