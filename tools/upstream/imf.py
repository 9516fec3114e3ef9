"""Parity fixtures of IMF's five generator components from the public reimplementation.

Upstream: github.com/johndpope/IMF, branch main, commit fb8268dbf34bddc33e503a1c083b97b136baedf5.
Each upstream component is built at a tiny size with ``torch.manual_seed(0)`` (BatchNorm statistics
and affine parameters randomised so they matter), run on fixed inputs in eval mode, and saved to
``tests/fixtures/upstream/imf/<component>.pt`` as ``{"upstream_commit", "config", "state_dict",
"inputs", "outputs"}``. ``tests/imf/test_upstream_parity.py`` converts the state dict with
``imf.importer`` and runs our module on the same inputs. CI never runs this script.

Regenerate (from the repository root):

    mkdir -p /tmp/imf-upstream && git --git-dir=<bare IMF repo> archive \\
        fb8268dbf34bddc33e503a1c083b97b136baedf5 model.py vit.py resblocks.py lia_resblocks.py \\
        helper.py | tar -x -C /tmp/imf-upstream
    uv run --frozen --all-packages python tools/upstream/imf.py --upstream /tmp/imf-upstream

The upstream modules import packages they never use on these code paths (``colored_traceback``,
scikit-learn's TSNE); the script registers empty stand-ins for them when they are not installed.
``LatentTokenDecoder`` and ``FrameDecoder`` hard-code 512-channel layers, so their layer lists are
rebuilt from the upstream block classes at tiny widths; the upstream ``forward`` code runs as is.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path

import torch
from torch import nn

UPSTREAM_COMMIT = "fb8268dbf34bddc33e503a1c083b97b136baedf5"
OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "upstream" / "imf"


def _stub_unused_imports() -> None:
    if importlib.util.find_spec("colored_traceback") is None:
        package = types.ModuleType("colored_traceback")
        package.auto = types.ModuleType("colored_traceback.auto")
        sys.modules["colored_traceback"] = package
        sys.modules["colored_traceback.auto"] = package.auto
    if importlib.util.find_spec("sklearn") is None:
        sklearn = types.ModuleType("sklearn")
        sklearn.manifold = types.ModuleType("sklearn.manifold")
        sklearn.manifold.TSNE = None  # only used by a plotting helper
        sys.modules["sklearn"] = sklearn
        sys.modules["sklearn.manifold"] = sklearn.manifold


def _randomise_norms(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0.0, 0.2)


def _save(name: str, module: nn.Module, config: dict, inputs: dict, outputs) -> None:
    module.eval()
    record = {
        "upstream_commit": UPSTREAM_COMMIT,
        "config": config,
        "state_dict": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "inputs": inputs,
        "outputs": outputs,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.pt"
    torch.save(record, path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


@torch.no_grad()
def build_fixtures() -> None:
    import lia_resblocks
    import model as upstream
    import resblocks
    import vit

    # E_F: stem 8, returned levels 8/16/16/16 on 64 px -> 16, 8, 4, 2 px.
    torch.manual_seed(0)
    encoder = upstream.DenseFeatureEncoder(output_channels=[8, 16, 16, 16], initial_channels=8)
    _randomise_norms(encoder)
    encoder.eval()
    x = torch.randn(2, 3, 64, 64)
    _save(
        "dense_feature_encoder",
        encoder,
        {"stem_channels": 8, "feature_channels": [8, 16, 16, 16], "image_size": 64},
        {"x": x},
        [f.clone() for f in encoder(x)],
    )

    # E_T: 4 LIA ResBlocks 64 -> 4 px, GAP, 4 x EqualLinear + LeakyReLU, d_m = 8.
    torch.manual_seed(0)
    token_encoder = upstream.LatentTokenEncoder(
        initial_channels=8, output_channels=[16, 16, 32, 32], dm=8
    ).eval()
    for m in token_encoder.modules():  # zero-initialised biases would hide a lost mapping
        if isinstance(m, lia_resblocks.FusedLeakyReLU):
            m.bias.normal_(0.0, 0.2)
        if isinstance(m, lia_resblocks.EqualLinear | lia_resblocks.EqualConv2d):
            if m.bias is not None:
                m.bias.normal_(0.0, 0.2)
    x = torch.randn(2, 3, 64, 64)
    _save(
        "latent_token_encoder",
        token_encoder,
        {"token_channels": [8, 16, 16, 32, 32], "token_dim": 8, "image_size": 64},
        {"x": x},
        token_encoder(x).clone(),
    )

    # IMF_D: const 8@4^2, 13 StyledConvs (upstream order and taps), motion 8/16/16/16.
    torch.manual_seed(0)
    decoder = upstream.LatentTokenDecoder(latent_dim=8, const_dim=8)
    widths = [16, 16, 16, 8]  # coarse to fine
    layers, previous = [lia_resblocks.StyledConv(8, widths[0], 3, 8)], widths[0]
    for width in widths:
        layers += [
            lia_resblocks.StyledConv(previous, width, 3, 8, upsample=True),
            lia_resblocks.StyledConv(width, width, 3, 8),
            lia_resblocks.StyledConv(width, width, 3, 8),
        ]
        previous = width
    decoder.style_conv_layers = nn.ModuleList(layers)
    for m in decoder.modules():
        if isinstance(m, lia_resblocks.FusedLeakyReLU):
            m.bias.normal_(0.0, 0.2)
    decoder.eval()
    t = torch.randn(2, 8)
    _save(
        "latent_token_decoder",
        decoder,
        {"motion_channels": [8, 16, 16, 16], "token_dim": 8, "const_channels": 8},
        {"t": t},
        [m.clone() for m in decoder(t)],
    )

    # IMF_A at one scale: 8x8 tokens, motion 8, features 16, 2 blocks of 4 heads.
    torch.manual_seed(0)
    align = vit.ImplicitMotionAlignment(
        feature_dim=16, motion_dim=8, spatial_dim=(8, 8), depth=2, heads=4, dim_head=4, mlp_dim=32
    ).eval()
    inputs = {
        "m_c": torch.randn(2, 8, 8, 8),
        "m_r": torch.randn(2, 8, 8, 8),
        "f_r": torch.randn(2, 16, 8, 8),
    }
    _save(
        "implicit_motion_alignment",
        align,
        {"motion_dim": 8, "feature_dim": 16, "grid_size": 8, "depth": 2, "heads": 4, "mlp_dim": 32},
        inputs,
        align(inputs["m_c"], inputs["m_r"], inputs["f_r"]).clone(),
    )

    # D_F: features 8@16^2, 16@8^2, 16@4^2, 16@2^2 -> 64 px RGB (sigmoid).
    torch.manual_seed(0)
    frame_decoder = upstream.FrameDecoder()
    frame_decoder.upconv_blocks = nn.ModuleList(
        [
            resblocks.UpConvResBlock(16, 16),
            resblocks.UpConvResBlock(32, 16),
            resblocks.UpConvResBlock(32, 16),
            resblocks.UpConvResBlock(24, 8),
            resblocks.UpConvResBlock(8, 16),
        ]
    )
    frame_decoder.feat_blocks = nn.ModuleList(
        [nn.Sequential(*[resblocks.FeatResBlock(c) for _ in range(3)]) for c in (16, 16, 8)]
    )
    frame_decoder.final_conv = nn.Sequential(nn.Conv2d(16, 3, 3, 1, 1), nn.Sigmoid())
    _randomise_norms(frame_decoder)
    frame_decoder.eval()
    features = [
        torch.randn(2, 8, 16, 16),
        torch.randn(2, 16, 8, 8),
        torch.randn(2, 16, 4, 4),
        torch.randn(2, 16, 2, 2),
    ]
    _save(
        "frame_decoder",
        frame_decoder,
        {"feature_channels": [8, 16, 16, 16], "extra_up": 1, "refine_blocks": 3},
        {"features": features},
        frame_decoder(features).clone(),
    )


@torch.no_grad()
def build_full_model() -> None:
    """The whole ``IMFModel`` with every component swapped for a tiny one built from the upstream
    classes (64 px, E_F levels 16..2 px), plus a tiny ``IMFPatchDiscriminator``, saved in the
    layout of upstream ``train.py``'s checkpoint: exercises ``imf-import`` end to end."""
    import lia_resblocks
    import model as upstream
    import resblocks
    import vit

    torch.manual_seed(0)
    net = upstream.IMFModel()
    feature_dims, motion_dims, sizes = [8, 8, 16, 16], [8, 8, 16, 16], [16, 8, 4, 2]
    net.dense_feature_encoder = upstream.DenseFeatureEncoder(
        output_channels=feature_dims, initial_channels=8
    )
    net.latent_token_encoder = upstream.LatentTokenEncoder(
        initial_channels=8, output_channels=[8, 16, 16, 16], dm=8
    )
    decoder = upstream.LatentTokenDecoder(latent_dim=8, const_dim=8)
    decoder.const = nn.Parameter(torch.randn(1, 8, 1, 1))
    layers, previous = [lia_resblocks.StyledConv(8, 16, 3, 8)], 16
    for width in motion_dims[::-1]:
        layers += [
            lia_resblocks.StyledConv(previous, width, 3, 8, upsample=True),
            lia_resblocks.StyledConv(width, width, 3, 8),
            lia_resblocks.StyledConv(width, width, 3, 8),
        ]
        previous = width
    decoder.style_conv_layers = nn.ModuleList(layers)
    net.latent_token_decoder = decoder
    net.implicit_motion_alignment = nn.ModuleList(
        vit.ImplicitMotionAlignment(f, m, (s, s), depth=1, heads=2, dim_head=4, mlp_dim=16)
        for f, m, s in zip(feature_dims, motion_dims, sizes)
    )
    frame_decoder = upstream.FrameDecoder()
    frame_decoder.upconv_blocks = nn.ModuleList(
        resblocks.UpConvResBlock(a, b) for a, b in ((16, 16), (32, 16), (24, 8), (16, 8), (8, 16))
    )
    frame_decoder.feat_blocks = nn.ModuleList(
        nn.Sequential(resblocks.FeatResBlock(c)) for c in (16, 8, 8)
    )
    frame_decoder.final_conv = nn.Sequential(nn.Conv2d(16, 3, 3, 1, 1), nn.Sigmoid())
    net.frame_decoder = frame_decoder
    _randomise_norms(net)
    net.eval()
    discriminator = upstream.IMFPatchDiscriminator(ndf=4).eval()
    pixels = torch.rand(2, 2, 3, 64, 64)  # (current, reference) in [0, 1]
    current, reference = (upstream.normalize(p) for p in pixels)
    out = net(current, reference)
    record = {
        "upstream_commit": UPSTREAM_COMMIT,
        "config": {"image_size": 64, "heads": 2, "input": "pixels in [0, 1], ImageNet-normalised"},
        "state_dict": {
            "model_state_dict": {k: v.clone() for k, v in net.state_dict().items()},
            "discriminator_state_dict": {
                k: v.clone() for k, v in discriminator.state_dict().items()
            },
        },
        "inputs": {"current": pixels[0], "reference": pixels[1]},
        "outputs": {"reconstruction": out.clone(), "discriminator": discriminator(pixels[0])},
    }
    path = OUT / "imf_model.pt"
    torch.save(record, path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="extracted johndpope/IMF checkout")
    args = parser.parse_args()
    root = Path(args.upstream).resolve()
    if not (root / "model.py").is_file():
        sys.exit(f"error: {root} has no model.py; extract johndpope/IMF {UPSTREAM_COMMIT} there")
    _stub_unused_imports()
    sys.path.insert(0, str(root))
    build_fixtures()
    build_full_model()


if __name__ == "__main__":
    main()
