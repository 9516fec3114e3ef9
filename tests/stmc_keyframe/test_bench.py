"""The bench's fast paths against the plain ones, and a quick run of every bench row."""

from __future__ import annotations

import pytest
import torch

from stmc_keyframe.bench import benchmarks, single_prompt_sampler
from stmc_keyframe.model.denoiser import TransformerDenoiser


def _net() -> TransformerDenoiser:
    torch.manual_seed(0)
    return TransformerDenoiser(tx_dim=16, latent_dim=32, ff_size=64, num_layers=2, num_heads=4,
                               dropout=0.0).eval()  # fmt: skip


def test_single_prompt_bf16_autocast_matches_fp32():
    net = _net()
    plain = single_prompt_sampler(net, 24, "ddpm", 4, bf16=False)(torch.Generator().manual_seed(0))
    fast = single_prompt_sampler(net, 24, "ddpm", 4, bf16=True)(torch.Generator().manual_seed(0))
    assert fast.dtype == torch.float32
    err = (fast - plain).abs().max() / plain.abs().max()
    assert 0 < err < 0.05  # bf16 rounds (not bitwise the fp32 path) but stays close


@pytest.mark.slow
def test_quick_bench_yields_every_row():
    rows = list(benchmarks(quick=1, repeats=1))
    names = [r["name"] for r in rows]
    assert len(rows) == 6 and all(r["seconds"] > 0 and r["peak_mem_gb"] > 0 for r in rows)
    assert sum("one text prompt" in n for n in names) == 3
    assert "equal quality" in rows[4]["notes"] and "timeline" in names[5]


def test_unpadded_batch_without_a_mask_equals_the_masked_path():
    """All frames valid: the encoder runs without a padding mask; the same sample next to a
    padded one (mask path) gives the same output, in training mode too."""
    net = TransformerDenoiser(tx_dim=16, latent_dim=32, ff_size=64, num_layers=2, num_heads=4,
                              dropout=0.0, keyframe_conditioned=True)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(2, 12, 205, generator=g), torch.randn(2, 16, generator=g)
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[1, 7:] = False
    obs = torch.zeros(2, 12, 205, dtype=torch.bool)
    t = torch.tensor([3, 9])
    for mode in (net.eval, net.train):
        mode()
        both = net(x, t, {"text": text, "valid": valid, "obs_mask": obs})
        alone = net(x[:1], t[:1], {"text": text[:1], "valid": valid[:1], "obs_mask": obs[:1]})
        torch.testing.assert_close(alone, both[:1], atol=1e-5, rtol=1e-5)
