"""``imf-import checkpoint.pth -o imported.ckpt``: bring a model trained with johndpope/IMF over.

Upstream: github.com/johndpope/IMF, branch main, commit fb8268dbf34bddc33e503a1c083b97b136baedf5
(``train.py`` saves ``{"model_state_dict", "discriminator_state_dict", optimiser/scheduler
states, ...}`` to ``checkpoints/checkpoint.pth``; no pretrained weights were ever published).

The imported generator uses ``layout=johndpope`` (see :class:`imf.model.IMFGenerator`): the
reimplementation's E_F/D_F blocks, E_T (global average pooling, LeakyReLU MLP), IMF_D (branch
convs chained into the trunk, transposed-conv + blur up-sampling) and ImageNet-normalised encoder
inputs; IMF_A is the same module in both layouts. Per component, the conversion reproduces the
upstream outputs to 1e-5 (``tests/imf/test_upstream_parity.py``). Not imported, and listed in
``imported_from.unmapped_keys``: the unused ``mapping_network.*`` and ``noise_injection``
modules and each StyledConv's ``noise.weight`` (upstream passes no noise, so they never act).
The blur kernels (``*.kernel``) are fixed [1, 3, 3, 1] buffers that our blur recomputes.

The discriminator has the same layers and is imported too, with one difference: its second scale
sees a bilinear x0.5 input resized with antialiasing here and without it upstream.

The architecture sizes are read from the tensor shapes; the attention head count is not stored in
a state dict (``--heads``, upstream default 8).
"""

from __future__ import annotations

import argparse
import importlib.resources
import math
import re
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor

from motioncore.train.checkpoint_io import package_checkpoint, save_checkpoint

UPSTREAM = "johndpope/IMF"
UPSTREAM_COMMIT = "fb8268dbf34bddc33e503a1c083b97b136baedf5"
IGNORED_PREFIXES = ("mapping_network.", "noise_injection.")


class UpstreamCheckpointError(ValueError):
    """A source checkpoint that cannot be imported (the message names the problem and the fix)."""


# ------------------------------------------------------------------ key mapping per component
def _block_key(key: str) -> str:
    """Inside one residual block: upstream ``ConvBlock``/``FeatResBlock`` names -> ours."""
    key = re.sub(r"feat_res_block(\d)\.", lambda m: f"refine.{int(m[1]) - 1}.", key)
    key = re.sub(r"shortcut\.(?:1\.)?conv\.", "skip.0.", key)
    key = re.sub(r"shortcut\.(?:1\.)?norm\.norm\.", "skip.1.", key)
    key = re.sub(r"(conv[12])\.conv\.", r"\1.0.", key)
    return re.sub(r"(conv[12])\.norm\.norm\.", r"\1.1.", key)


def feature_encoder_key(key: str) -> str | None:
    """``DenseFeatureEncoder`` key -> :class:`imf.model.DenseFeatureEncoder` key."""
    if key.startswith("initial_conv."):
        return "stem." + key.removeprefix("initial_conv.")
    m = re.match(r"down_blocks\.(\d+)\.(.*)", key)
    if not m:
        return None
    index = int(m[1])
    prefix = "hidden.0." if index == 0 else f"levels.{index - 1}."
    return prefix + _block_key(m[2])


def frame_decoder_key(key: str, levels: int) -> str | None:
    """``FrameDecoder`` key -> :class:`imf.model.FrameDecoder` key (``levels`` feature maps)."""
    m = re.match(r"upconv_blocks\.(\d+)\.(.*)", key)
    if m:
        index = int(m[1])
        if index == 0:
            prefix = "first."
        elif index < levels:
            prefix = f"up.{index - 1}."
        else:
            prefix = f"tail.{index - levels}."
        return prefix + _block_key(m[2])
    m = re.match(r"feat_blocks\.(\d+)\.(\d+)\.(.*)", key)
    if m:
        return f"refine.{m[1]}.{m[2]}." + _block_key(m[3])
    if key.startswith("final_conv.0."):
        return "to_rgb." + key.removeprefix("final_conv.0.")
    return None


def token_encoder_key(key: str, mlp_layers: int) -> str | None:
    """``LatentTokenEncoder`` key -> :class:`imf.model.LatentTokenEncoder` key (layout johndpope)."""
    if key.startswith("conv1."):
        return "stem.0." + key.removeprefix("conv1.")
    m = re.match(r"res_blocks\.(\d+)\.(.*)", key)
    if m:
        inner = {
            "conv1.0.weight": "conv1.weight",
            "conv1.1.bias": "act1.bias",
            "conv2.1.weight": "conv2.weight",
            "conv2.2.bias": "act2.bias",
            "skip.1.weight": "skip.weight",
        }.get(m[2])
        return None if inner is None else f"blocks.{m[1]}.{inner}"
    if key.startswith("equalconv."):
        return "to_vector.0." + key.removeprefix("equalconv.")
    m = re.match(r"linear_layers\.(\d+)\.(.*)", key)
    if m:
        return f"mlp.{2 * int(m[1])}.{m[2]}"
    if key.startswith("final_linear."):
        return f"mlp.{2 * mlp_layers}." + key.removeprefix("final_linear.")
    return None


def token_decoder_key(key: str) -> str | None:
    """``LatentTokenDecoder`` key -> :class:`imf.model.LatentTokenDecoder` key (layout johndpope)."""
    if key == "const":
        return "const"
    m = re.match(r"style_conv_layers\.(\d+)\.(.*)", key)
    if not m:
        return None
    index, inner = int(m[1]), m[2]
    inner = {
        "conv.weight": "conv.weight",
        "conv.modulation.weight": "conv.modulation.weight",
        "conv.modulation.bias": "conv.modulation.bias",
        "activate.bias": "activation.bias",
    }.get(inner)
    if inner is None:  # noise.weight (never used: no noise is passed), conv.blur.kernel
        return None
    if index == 0:
        return "first." + inner
    level, slot = divmod(index - 1, 3)
    return f"{('up', 'trunk', 'taps')[slot]}.{level}.{inner}"


def alignment_key(key: str) -> str | None:
    """``ImplicitMotionAlignment`` key -> :class:`imf.model.ImplicitMotionAlignment` key."""
    if key == "cross_attention.q_pos_embedding":
        return "q_pos"
    if key == "cross_attention.k_pos_embedding":
        return "k_pos"
    m = re.match(r"transformer_blocks\.(\d+)\.(.*)", key)
    if not m:
        return None
    inner = re.sub(r"^attention\.", "self_attn.", m[2])
    inner = re.sub(r"^mlp\.0\.", "linear1.", inner)
    inner = re.sub(r"^mlp\.2\.", "linear2.", inner)
    return f"blocks.{m[1]}.{inner}"


def discriminator_key(key: str) -> str | None:
    """``IMFPatchDiscriminator`` key -> :class:`imf.model.MultiScalePatchDiscriminator` key."""
    m = re.match(r"scale([12])\.(\d+)\.(weight_orig|weight_u|weight_v|bias)$", key)
    if not m:
        return None
    leaf = {
        "weight_orig": "parametrizations.weight.original",
        "weight_u": "parametrizations.weight.0._u",
        "weight_v": "parametrizations.weight.0._v",
        "bias": "bias",
    }[m[3]]
    return f"scales.{int(m[1]) - 1}.net.{m[2]}.{leaf}"


def _convert_value(our_key: str, value: Tensor, target: Tensor) -> Tensor:
    """Reshape the few tensors whose layout differs (FusedLeakyReLU biases, positional tables)."""
    if our_key.endswith(("q_pos", "k_pos")) and value.ndim == 3:
        _, cells, channels = value.shape
        side = math.isqrt(cells)
        return value.transpose(1, 2).reshape(1, channels, side, side)
    return value.reshape(target.shape) if value.numel() == target.numel() else value


def convert(
    upstream: dict[str, Tensor], target: dict[str, Tensor], key_fn
) -> tuple[dict[str, Tensor], list[str]]:
    """Map ``upstream`` onto ``target`` (our state dict) with ``key_fn``.

    Returns the converted state dict and the upstream keys that were not imported; raises if a
    tensor of ours is left without a value or a shape disagrees.
    """
    converted, unmapped = {}, []
    for key, value in upstream.items():
        our_key = key_fn(key)
        if our_key is None or our_key not in target:
            if not key.endswith(".kernel"):  # fixed blur taps: recomputed, not weights
                unmapped.append(key)
            continue
        value = _convert_value(our_key, value, target[our_key])
        if value.shape != target[our_key].shape:
            raise UpstreamCheckpointError(
                f"{key} has shape {tuple(value.shape)}, ours {our_key} expects "
                f"{tuple(target[our_key].shape)}; the sizes read from the checkpoint disagree"
            )
        converted[our_key] = value.to(target[our_key].dtype)
    missing = sorted(set(target) - set(converted))
    if missing:
        raise UpstreamCheckpointError(
            f"the upstream checkpoint gives no value for {missing[:5]} (of {len(missing)}); "
            f"it does not have the {UPSTREAM} layout this importer reads"
        )
    return converted, unmapped


def _sub(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def _count(state: dict[str, Tensor], pattern: str) -> int:
    return len({m[1] for k in state if (m := re.match(pattern, k))})


# ------------------------------------------------------------------ whole checkpoint
def infer_generator_config(state: dict[str, Tensor], heads: int = 8) -> dict:
    """Our ``model.generator`` keyword arguments for an upstream ``IMFModel`` state dict."""
    levels = _count(state, r"dense_feature_encoder\.down_blocks\.(\d+)\.") - 1
    e_t_blocks = _count(state, r"latent_token_encoder\.res_blocks\.(\d+)\.")
    mlp_layers = _count(state, r"latent_token_encoder\.linear_layers\.(\d+)\.")
    style_layers = _count(state, r"latent_token_decoder\.style_conv_layers\.(\d+)\.")
    if levels < 1 or e_t_blocks < 1 or style_layers != 1 + 3 * levels:
        raise UpstreamCheckpointError(
            f"cannot read the architecture: {levels} E_F levels, {e_t_blocks} E_T blocks and "
            f"{style_layers} IMF_D layers (upstream has 4, 6 and 13)"
        )
    taps = [
        state[f"latent_token_decoder.style_conv_layers.{3 + 3 * k}.conv.weight"].shape[1]
        for k in range(levels)
    ]
    feature_channels = [
        state[f"dense_feature_encoder.down_blocks.{k}.conv1.conv.weight"].shape[0]
        for k in range(1, levels + 1)
    ]
    token_channels = [state["latent_token_encoder.conv1.weight"].shape[0]] + [
        state[f"latent_token_encoder.res_blocks.{k}.conv2.1.weight"].shape[0]
        for k in range(e_t_blocks)
    ]
    first_block = "dense_feature_encoder.down_blocks.1."
    res_blocks = _count(state, re.escape(first_block) + r"feat_res_block(\d)\.")
    return {
        "image_size": 4 * 2**e_t_blocks,
        "feature_channels": feature_channels,
        "motion_channels": taps[::-1],
        "stem_channels": state["dense_feature_encoder.initial_conv.0.weight"].shape[0],
        "hidden_blocks": 1,
        "token_channels": token_channels,
        "token_dim": state["latent_token_encoder.final_linear.weight"].shape[0],
        "token_mlp_layers": mlp_layers,
        "const_channels": state["latent_token_decoder.const"].shape[1],
        "depth": _count(state, r"implicit_motion_alignment\.0\.transformer_blocks\.(\d+)\."),
        "heads": heads,
        "mlp_dim": state["implicit_motion_alignment.0.transformer_blocks.0.mlp.0.weight"].shape[0],
        "decoder_refine_blocks": _count(state, r"frame_decoder\.feat_blocks\.0\.(\d+)\."),
        "norm": "batch",
        "res_blocks": res_blocks,
        "fused_attention": True,
        "layout": "johndpope",
    }


def _module_hparams(generator: dict, disc: dict[str, Tensor] | None) -> dict:
    """IMFModule keyword arguments: our model defaults with the imported generator (and the
    discriminator width of the source)."""
    text = importlib.resources.files("imf.configs").joinpath("model/default.yaml").read_text()
    config = OmegaConf.create(text)
    config.generator = generator
    if disc is not None and "scale1.0.weight_orig" in disc:
        config.discriminator.ndf = int(disc["scale1.0.weight_orig"].shape[0])
    hparams = OmegaConf.to_container(config, resolve=True)
    hparams.pop("_target_")
    return hparams


def _load_source(path: Path, unsafe: bool) -> dict:
    if not path.is_file():
        raise UpstreamCheckpointError(
            f"{path} does not exist; pass the upstream checkpoints/checkpoint.pth"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=not unsafe)
    except Exception as e:  # torch raises many types for a bad file
        if not unsafe and "weights_only" in str(e):
            raise UpstreamCheckpointError(
                f"{path} holds Python objects besides tensors (e.g. a scheduler state); if you "
                "trust the file, rerun with --unsafe-load"
            ) from e
        raise UpstreamCheckpointError(
            f"{path} is not a readable torch checkpoint ({type(e).__name__})"
        ) from e


def upstream_state_dicts(source: dict, path: Path) -> tuple[dict, dict | None]:
    """The generator and (if present) discriminator state dicts of an upstream checkpoint."""
    if not isinstance(source, dict):
        raise UpstreamCheckpointError(
            f"{path} holds a {type(source).__name__}, not a checkpoint dict"
        )
    model = source.get("model_state_dict", source)
    model = {re.sub(r"^(module\.|_orig_mod\.)", "", k): v for k, v in model.items()}
    if not any(k.startswith("dense_feature_encoder.") for k in model):
        if "state_dict" in source and any(k.startswith("generator.") for k in source["state_dict"]):
            raise UpstreamCheckpointError(
                f"{path} is already an imf checkpoint; use it directly (CKPT=..., --ckpt ...)"
            )
        example = next(iter(model), "nothing")
        raise UpstreamCheckpointError(
            f"{path} is not a {UPSTREAM} checkpoint: no dense_feature_encoder.* weights (its "
            f"first key is {example!r}); imf-import reads checkpoints written by that repo's "
            "train.py"
        )
    return model, source.get("discriminator_state_dict")


def import_checkpoint(
    src: str | Path, out: str | Path, heads: int = 8, unsafe: bool = False
) -> dict:
    """Convert ``src`` (an upstream ``checkpoint.pth``) into our Lightning-style ``out``."""
    from imf.module import IMFModule

    src, out = Path(src), Path(out)
    if out.resolve() == src.resolve():
        raise UpstreamCheckpointError(
            f"-o {out} would overwrite the source checkpoint; pick another path"
        )
    model, disc = upstream_state_dicts(_load_source(src, unsafe), src)
    generator = infer_generator_config(model, heads)
    hparams = _module_hparams(generator, disc)
    module = IMFModule(**hparams)
    state = module.state_dict()
    levels = len(generator["feature_channels"])
    parts = [
        ("feature_encoder", "dense_feature_encoder.", feature_encoder_key),
        (
            "token_encoder",
            "latent_token_encoder.",
            lambda k: token_encoder_key(k, generator["token_mlp_layers"]),
        ),
        ("token_decoder", "latent_token_decoder.", token_decoder_key),
        ("frame_decoder", "frame_decoder.", lambda k: frame_decoder_key(k, levels)),
    ]
    parts += [
        (f"alignment.{i}", f"implicit_motion_alignment.{i}.", alignment_key) for i in range(levels)
    ]
    unmapped = [k for k in model if k.startswith(IGNORED_PREFIXES)]
    for ours, theirs, key_fn in parts:
        target = _sub(state, f"generator.{ours}.")
        converted, rest = convert(_sub(model, theirs), target, key_fn)
        state.update({f"generator.{ours}.{k}": v for k, v in converted.items()})
        unmapped += [theirs + k for k in rest]
    known = tuple(theirs for _, theirs, _ in parts) + IGNORED_PREFIXES
    unmapped += [k for k in model if not k.startswith(known)]
    if disc is not None and module.discriminator is not None:
        converted, rest = convert(disc, _sub(state, "discriminator."), discriminator_key)
        state.update({f"discriminator.{k}": v for k, v in converted.items()})
        unmapped += [f"discriminator.{k}" for k in rest]
    module.load_state_dict(state)
    overrides = [f"data.image_size={generator['image_size']}"] + [
        f"model.generator.{k}={v}".replace(" ", "")
        for k, v in generator.items()
        if k != "image_size"
    ]
    overrides.append(f"model.discriminator.ndf={hparams['discriminator']['ndf']}")
    checkpoint = package_checkpoint(
        state_dict=module.state_dict(),
        hyper_parameters=hparams,
        hydra_overrides=overrides,
        imported_from={
            "source": str(src),
            "upstream": f"{UPSTREAM}@{UPSTREAM_COMMIT}",
            "unmapped_keys": sorted(unmapped),
            "discriminator": disc is not None,
        },
    )
    save_checkpoint(checkpoint, out)
    return checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imf-import", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help=f"{UPSTREAM} checkpoint (checkpoints/checkpoint.pth)")
    parser.add_argument("-o", "--output", required=True, help="our checkpoint to write (.ckpt)")
    parser.add_argument("--heads", type=int, default=8, help="IMF_A attention heads (default 8)")
    parser.add_argument(
        "--unsafe-load",
        action="store_true",
        help="unpickle Python objects in the source (only for files you trust)",
    )
    args = parser.parse_args(argv)
    try:
        checkpoint = import_checkpoint(args.source, args.output, args.heads, args.unsafe_load)
    except UpstreamCheckpointError as e:
        sys.exit(f"error: {e}")
    info = checkpoint["imported_from"]
    print(f"wrote {args.output} ({info['upstream']})")
    print("  hydra overrides: " + " ".join(checkpoint["hydra_overrides"]))
    if not info["discriminator"]:
        print("  no discriminator in the source: ours starts from a fresh initialisation")
    print(f"  not imported ({len(info['unmapped_keys'])}): " + ", ".join(info["unmapped_keys"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
