"""Parity with johndpope/IMF (fixtures from tools/upstream/imf.py): every generator component
converted by imf.importer reproduces the upstream outputs to 1e-5, and a perturbed weight
breaks it; imf-import turns an upstream-format checkpoint into one of ours end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imf import importer
from imf.model import (
    DenseFeatureEncoder,
    FrameDecoder,
    ImplicitMotionAlignment,
    LatentTokenDecoder,
    LatentTokenEncoder,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream" / "imf"
TOL = 1e-5


def _fixture(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


def _feature_encoder(cfg):
    module = DenseFeatureEncoder(
        cfg["feature_channels"], cfg["stem_channels"], block_style="johndpope"
    )
    return module, importer.feature_encoder_key, lambda m, i: m(i["x"])


def _token_encoder(cfg):
    module = LatentTokenEncoder(
        cfg["image_size"], cfg["token_channels"], cfg["token_dim"], layout="johndpope"
    )
    return module, lambda k: importer.token_encoder_key(k, 4), lambda m, i: m(i["x"])


def _token_decoder(cfg):
    module = LatentTokenDecoder(
        cfg["motion_channels"], 8, cfg["token_dim"], cfg["const_channels"], layout="johndpope"
    )
    return module, importer.token_decoder_key, lambda m, i: m(i["t"])


def _alignment(cfg):
    module = ImplicitMotionAlignment(
        cfg["motion_dim"],
        cfg["feature_dim"],
        cfg["grid_size"],
        cfg["depth"],
        cfg["heads"],
        cfg["mlp_dim"],
    )
    return module, importer.alignment_key, lambda m, i: m(i["m_c"], i["m_r"], i["f_r"])


def _frame_decoder(cfg):
    channels = cfg["feature_channels"]
    module = FrameDecoder(channels, cfg["extra_up"], cfg["refine_blocks"], block_style="johndpope")
    # ours returns 2 * sigmoid - 1, upstream the sigmoid itself
    return (
        module,
        lambda k: importer.frame_decoder_key(k, len(channels)),
        lambda m, i: (m(i["features"]) + 1) / 2,
    )


COMPONENTS = {
    "dense_feature_encoder": _feature_encoder,
    "latent_token_encoder": _token_encoder,
    "latent_token_decoder": _token_decoder,
    "implicit_motion_alignment": _alignment,
    "frame_decoder": _frame_decoder,
}


def _max_diff(ours, theirs) -> float:
    if isinstance(theirs, list):
        assert len(ours) == len(theirs)
        return max(_max_diff(a, b) for a, b in zip(ours, theirs))
    assert ours.shape == theirs.shape
    return float((ours - theirs).abs().max())


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_component_matches_upstream(name):
    fixture = _fixture(name)
    assert fixture["upstream_commit"] == importer.UPSTREAM_COMMIT
    module, key_fn, run = COMPONENTS[name](fixture["config"])
    state, unmapped = importer.convert(fixture["state_dict"], module.state_dict(), key_fn)
    if name == "latent_token_decoder":  # NoiseInjection weights: upstream never passes noise
        assert unmapped and all(k.endswith("noise.weight") for k in unmapped)
    else:
        assert unmapped == []
    module.load_state_dict(state)
    module.eval()
    with torch.no_grad():
        assert _max_diff(run(module, fixture["inputs"]), fixture["outputs"]) <= TOL
        # A perturbed weight must break parity (the comparison is not vacuous).
        key = max(state, key=lambda k: state[k].numel() if state[k].is_floating_point() else 0)
        state[key] = state[key] + 0.05 * torch.randn_like(state[key])
        module.load_state_dict(state)
        assert _max_diff(run(module, fixture["inputs"]), fixture["outputs"]) > 1e-3


def test_import_whole_upstream_checkpoint(tmp_path):
    from imf.checkpoint import load_checkpoint

    fixture = _fixture("imf_model")
    src = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, **fixture["state_dict"]}, src)
    out = tmp_path / "imported.ckpt"
    assert importer.main([str(src), "-o", str(out), "--heads", "2"]) == 0
    saved = torch.load(out, weights_only=True)
    assert "model.generator.layout=johndpope" in saved["hydra_overrides"]
    assert "data.image_size=64" in saved["hydra_overrides"]
    unmapped = saved["imported_from"]["unmapped_keys"]
    assert any(k.startswith("mapping_network.") for k in unmapped)
    assert not any(k.startswith(("dense_feature_encoder", "frame_decoder")) for k in unmapped)

    module = load_checkpoint(out)
    inputs = fixture["inputs"]
    with torch.no_grad():
        recon = module.generator(inputs["current"] * 2 - 1, inputs["reference"] * 2 - 1)
        disc = module.discriminator(inputs["current"])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    upstream = fixture["outputs"]["reconstruction"] * std + mean  # back to [0, 1] pixels
    assert float(((recon + 1) / 2 - upstream).abs().max()) <= TOL
    # scale 1 only: our second scale resizes with antialiasing (see imf.importer)
    assert float((disc[0] - fixture["outputs"]["discriminator"][0]).abs().max()) <= TOL


def test_import_refuses_other_checkpoints(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"model_state_dict": {"unet.conv_in.weight": torch.zeros(1)}}, other)
    with pytest.raises(SystemExit, match="not a johndpope/IMF checkpoint.*unet.conv_in.weight"):
        importer.main([str(other), "-o", str(tmp_path / "x.ckpt")])
    ours = tmp_path / "ours.ckpt"
    torch.save({"state_dict": {"generator.token_encoder.stem.0.weight": torch.zeros(1)}}, ours)
    with pytest.raises(SystemExit, match="already an imf checkpoint"):
        importer.main([str(ours), "-o", str(tmp_path / "x.ckpt")])
    with pytest.raises(SystemExit, match="does not exist"):
        importer.main([str(tmp_path / "missing.pth"), "-o", str(tmp_path / "x.ckpt")])
    assert not (tmp_path / "x.ckpt").exists()
