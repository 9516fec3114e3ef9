"""Our STDiff reproduces the official code (fixtures of tools/upstream/stdiff.py) to 1e-5."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stdiff.model.stdiff import STDiffModel
from stdiff.pretrained import config_from_upstream, state_from_upstream

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures/upstream/stdiff"
TOL = 1e-5


def _load(name: str) -> tuple[dict, STDiffModel]:
    fix = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    cfg = config_from_upstream({"_class_name": "STDiffDiffusers", **fix["config"]})
    model = STDiffModel(cfg).eval()
    state, unmapped = state_from_upstream(fix["state_dict"])
    assert unmapped == []
    model.load_state_dict(state)  # strict: every parameter is mapped
    return fix, model


def _perturbed(model: STDiffModel, key: str) -> STDiffModel:
    with torch.no_grad():
        model.state_dict()[key].add_(0.05)
    return model


def _context(fix, model):
    i = fix["inputs"]
    return model.tde.context_encode(i["vo"], i["idx_o"].repeat(i["vo"].shape[0], 1))


def _future(fix, model):
    i = fix["inputs"]
    ts = i["ts"]
    offsets = (ts[1:] - ts[0]).repeat(i["m_context"].shape[0], 1)
    out = model.tde.future_predict(i["m_context"], offsets, entropy=i["entropy"])
    return out.transpose(0, 1)  # upstream: [Tp, N, C, h, w]


def _unet(fix, model):
    i = fix["inputs"]
    return model.unet(i["sample"], i["timestep"], i["m_feat"])


CASES = {
    # name: (run, output key, a weight that must matter); run None: the upstream_forward fixture
    "context": (_context, "m_context", "tde.gru.candidate.weight"),
    "future": (_future, "m_future", "tde.sde.diffusion.net.4.weight"),
    "unet": (_unet, "eps", "unet.unet.down_blocks.1.resnets.0.conv1.spade.gamma.weight"),
    "forward": (None, "eps", "tde.encoder.net.0.weight"),
    "super_res": (None, "eps", "unet.unet.up_blocks.0.attentions.0.to_q.weight"),
}


@pytest.mark.parametrize("name", list(CASES))
@torch.no_grad()
def test_matches_upstream(name, upstream_forward):
    run, key, weight = CASES[name]
    run = run or upstream_forward
    fix, model = _load(name)
    assert fix["upstream_commit"].startswith("XiYe20/STDiffProject@be16cc7")
    want = fix["outputs"][key]
    assert (run(fix, model) - want).abs().max() <= TOL
    assert (run(fix, _perturbed(model, weight)) - want).abs().max() > 1e-3


@torch.no_grad()
def test_standard_gru_is_not_upstreams():
    fix, model = _load("context")
    model.tde.gru.update = "standard"
    assert (_context(fix, model) - fix["outputs"]["m_context"]).abs().max() > 1e-3


@torch.no_grad()
def test_super_res_accepts_large_observations():
    """The branch downsamples large observed frames itself (antialiased bicubic, as upstream's
    data pipeline): feeding 16 px frames whose 8 px version is the fixture's input gives the
    same motion as upstream's 8 px input."""
    fix, model = _load("super_res")
    assert model.super_res and model.motion_size == (8, 8) and model.image_size == (16, 16)
    i = fix["inputs"]
    big = i["clean_Vp"][:, :1].repeat(1, 4, 1, 1, 1)
    small = torch.nn.functional.interpolate(
        big.flatten(0, 1), size=(8, 8), mode="bicubic", antialias=True
    ).unflatten(0, (2, 4))
    idx_o = i["idx_o"].repeat(2, 1)
    m_big = model.tde.context_encode(model.motion_input(big), idx_o)
    m_small = model.tde.context_encode(small, idx_o)
    assert torch.allclose(m_big, m_small, atol=1e-6)
    assert model.first_prev(small).shape[-2:] == (16, 16)


@torch.no_grad()
def test_super_res_forward_and_sampling_from_either_observation_size():
    """Observed frames at the UNet's size give the same eps as their downsampled version (what
    upstream feeds), and sampling predicts frames at the UNet's size from small observations."""
    from stdiff.module import STDiffModule

    fix, model = _load("super_res")
    i = fix["inputs"]
    big = torch.cat([i["clean_Vp"][:, :1]] * 4, 1)
    small = model.motion_input(big)
    args = (i["idx_o"].repeat(2, 1), i["idx_p"].repeat(2, 1), i["noisy_Vp"].unflatten(0, (2, 3)))
    kw = {"clean_vp": i["clean_Vp"], "entropy": 3}
    eps_big = model(big, *args[:2], args[2], i["timestep"], **kw)
    eps_small = model(small, *args[:2], args[2], i["timestep"], **kw)
    assert torch.allclose(eps_big, eps_small, atol=1e-5)
    noise = {"num_train_timesteps": 1000, "beta_schedule": "linear"}
    optim = {"lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0.0, "eps": 1e-8}
    ev = {"num_samples": 2, "sampler": "ddim", "num_steps": 2, "chunk": 2}
    module = STDiffModule(model.config, noise, {**optim, "warmup_steps": 1, "num_cycles": 1}, ev)
    module.model.load_state_dict(model.state_dict())
    preds = module.predict(small, args[0], args[1], 2, generator=torch.Generator().manual_seed(0))
    assert preds.shape == (2, 2, 3, 3, 16, 16) and torch.isfinite(preds).all()
