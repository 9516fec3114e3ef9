"""``champ-guidance-import``: CHAMP's released ``.pth`` files -> a champ-guidance checkpoint.

    champ-guidance-import <folder with CHAMP's .pth files> --sd15 <local SD-1.5 folder> -o champ.ckpt
        [Hydra overrides ...]

Upstream: fudan-generative-vision/champ at 02e5533 (HF ``fudan-generative-ai/champ``). The folder
holds ``denoising_unet.pth``, ``reference_unet.pth``, ``guidance_encoder_{depth,dwpose,normal,
semantic_map}.pth`` (any subset) and optionally ``motion_module.pth``. The model is built as
``model=sd15`` from the SD-1.5 folder (its VAE and UNet config; UNet weights CHAMP does not
override stay SD's, as upstream's ``strict=False`` load leaves them), with one guidance encoder
per file found and the temporal modules when motion-module weights are present.

Key mapping (upstream -> this package's ``ChampModel``):

- ``reference_unet.pth``: ``<k>`` -> ``reference_unet.<k>`` (diffusers' UNet2DConditionModel
  names; CHAMP's reference UNet is a copy of it without ``conv_norm_out``/``conv_out``, whose
  output never reaches a bank: those stay SD's and frozen here);
- ``denoising_unet.pth``: ``<k>`` -> ``denoising_unet.<k>`` (CHAMP's 3-D UNet inflates the same
  layers, so names match); ``{down_blocks.i,mid_block,up_blocks.i}.motion_modules.j.<rest>``
  (here or in ``motion_module.pth``) -> ``temporal.<same>``;
- ``guidance_encoder_<type>.pth``: ``conv_in``, ``blocks.i``, ``conv_out`` keep their names,
  ``attentions.<last>`` -> ``attention``; the other ``attentions.*`` and ``guidance_attention``
  are built and saved by upstream but never run, and are dropped (listed, not an error).

A CHAMP stage-1 (pre-AnimateDiff) release, without motion-module weights, imports as a model
without temporal modules (train them with ``stage=2``). Motion-module keys in another naming
than AnimateDiff's original one (diffusers' ``MotionAdapter``/``UNetMotionModel`` with
``attn1``/``norm1`` and no ``temporal_transformer``, or a prefixed state dict) are refused by
name: loaded as unmapped keys they would leave zero-initialised, silently inactive modules.

Every other upstream key is reported as unmapped in the checkpoint's ``imported_from`` and on
the console; a shape mismatch is an error naming the key (the Hydra overrides do not describe
the released architecture). The output is a Lightning-style dict that ``make sample``,
``make eval`` and ``init_from=`` accept; its ``hydra_overrides`` rebuild the architecture.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

UPSTREAM = "fudan-generative-vision/champ@02e5533"
CHAMP_GUIDANCE_TYPES = ("depth", "normal", "semantic_map", "dwpose")  # upstream's channel order
_MOTION = re.compile(r"^(down_blocks\.\d+|mid_block|up_blocks\.\d+)\.motion_modules\.")
_ANIMATEDIFF = re.compile(
    r"^(down_blocks\.\d+|mid_block|up_blocks\.\d+)\.motion_modules\.\d+\.temporal_transformer\."
)
_ATTENTION = re.compile(r"^attentions\.(\d+)\.(.*)$")


class ChampImportError(ValueError):
    """A folder or file that is not CHAMP's release (the message names it and the fix)."""


def read_champ_folder(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """``{file stem: state dict}`` of the CHAMP ``.pth`` files in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ChampImportError(
            f"{folder} is not a folder; pass the folder holding CHAMP's denoising_unet.pth, "
            "reference_unet.pth, guidance_encoder_<type>.pth (and motion_module.pth)"
        )
    expected = ["denoising_unet", "reference_unet", "motion_module"]
    expected += [f"guidance_encoder_{t}" for t in CHAMP_GUIDANCE_TYPES]
    files = {}
    for stem in expected:
        path = folder / f"{stem}.pth"
        if not path.is_file():
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle/zip errors of a damaged or foreign file
            raise ChampImportError(f"{path} is not a readable PyTorch state dict ({e})") from e
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            kind = (
                "a Lightning checkpoint"
                if isinstance(state, dict) and "state_dict" in state
                else "not a flat state dict"
            )
            raise ChampImportError(
                f"{path} is {kind}, not one of CHAMP's per-module .pth files (a flat "
                "{name: tensor} dict); a champ-guidance checkpoint is used directly with ckpt_path="
            )
        files[stem] = state
    if "denoising_unet" not in files:
        raise ChampImportError(
            f"{folder} has no denoising_unet.pth; expected CHAMP's release files "
            f"{[f'{s}.pth' for s in expected]} (HF fudan-generative-ai/champ)"
        )
    _check_is_champ(folder, files)
    _check_motion_naming(folder, files)
    return files


def _check_motion_naming(folder: Path, files: dict) -> None:
    for stem in ("denoising_unet", "motion_module"):
        odd = [
            k for k in files.get(stem, {}) if "motion_modules" in k and not _ANIMATEDIFF.match(k)
        ]
        if odd:
            raise ChampImportError(
                f"{folder / stem}.pth: motion-module key {odd[0]!r} is not in AnimateDiff's "
                "original naming '<block>.motion_modules.<j>.temporal_transformer.<...>' that "
                "CHAMP saves (this looks like diffusers' MotionAdapter naming or a prefixed state "
                "dict); pass CHAMP's own motion_module.pth, or leave the file out to import "
                "without temporal modules"
            )


def _check_is_champ(folder: Path, files: dict) -> None:
    probes = {
        "denoising_unet": "conv_in.weight",
        "reference_unet": "conv_in.weight",
        "motion_module": "motion_modules",
    }
    for stem, state in files.items():
        probe = probes.get(stem, "conv_in.weight")
        if not any(probe in k for k in state):
            raise ChampImportError(
                f"{folder / stem}.pth does not hold CHAMP's {stem} weights (no '{probe}' key; "
                f"first keys: {list(state)[:3]}): it is a checkpoint of another model"
            )


def guidance_types_of(files: dict) -> list[str]:
    return [t for t in CHAMP_GUIDANCE_TYPES if f"guidance_encoder_{t}" in files]


def has_motion_modules(files: dict) -> bool:
    return "motion_module" in files or any(_MOTION.match(k) for k in files["denoising_unet"])


def convert(files: dict[str, dict[str, torch.Tensor]]) -> tuple[dict, list[str], list[str]]:
    """(``ChampModel`` state dict, unmapped upstream keys, dropped unused upstream keys)."""
    state, unmapped, dropped = {}, [], []
    for stem in ("reference_unet", "denoising_unet", "motion_module"):
        for key, value in files.get(stem, {}).items():
            if _MOTION.match(key):
                state[f"temporal.{key}"] = value
            elif stem == "motion_module":
                unmapped.append(f"{stem}.pth:{key}")
            else:
                state[f"{stem}.{key}"] = value
    for gtype in CHAMP_GUIDANCE_TYPES:
        enc = files.get(f"guidance_encoder_{gtype}")
        if enc is None:
            continue
        attentions = [int(m.group(1)) for k in enc if (m := _ATTENTION.match(k))]
        last = max(attentions, default=None)
        for key, value in enc.items():
            m = _ATTENTION.match(key)
            if m and int(m.group(1)) == last:
                state[f"guidance_encoders.{gtype}.attention.{m.group(2)}"] = value
            elif m or key.startswith("guidance_attention."):
                dropped.append(f"guidance_encoder_{gtype}.pth:{key}")
            elif key.split(".")[0] in ("conv_in", "blocks", "conv_out"):
                state[f"guidance_encoders.{gtype}.{key}"] = value
            else:
                unmapped.append(f"guidance_encoder_{gtype}.pth:{key}")
    return state, unmapped, dropped


def load_converted(net: torch.nn.Module, state: dict) -> tuple[list[str], list[str]]:
    """Load into ``net``; returns (keys not in ``net``, ``net`` keys left at their base weights).

    A key present on both sides with another shape is an error: the model was built with
    another architecture than the upstream files."""
    own = net.state_dict()
    unknown = [k for k in state if k not in own]
    for k, v in state.items():
        if k in own and own[k].shape != v.shape:
            raise ChampImportError(
                f"{k}: upstream shape {tuple(v.shape)} but the model built from the SD-1.5 "
                f"folder and overrides has {tuple(own[k].shape)}; pass the overrides that match "
                "the released architecture"
            )
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items() if k in own}, strict=False)
    kept = [k for k in own if k not in state]
    return unknown, kept


def import_overrides(files: dict, sd15: Path, extra: list[str]) -> list[str]:
    types = guidance_types_of(files)
    if not types:
        raise ChampImportError(
            "no guidance_encoder_<type>.pth found; CHAMP releases "
            f"{[f'guidance_encoder_{t}.pth' for t in CHAMP_GUIDANCE_TYPES]}"
        )
    overrides = [
        "model=sd15",
        f"pretrained_model_name_or_path={Path(sd15).expanduser().resolve()}",
        f"guidance_types=[{','.join(types)}]",
        f"guidance_input_channels=[{','.join('3' for _ in types)}]",
    ]
    if has_motion_modules(files):
        overrides.append("model.net.temporal.enabled=true")
    return overrides + list(extra)


def compose_train_config(overrides: list[str]):
    from hydra import compose, initialize_config_module

    import champ_guidance.train  # noqa: F401  (registers the experiments:// config source)

    with initialize_config_module("champ_guidance.configs", version_base="1.3"):
        return compose("train", overrides=overrides)


def import_champ(src: Path, sd15: Path, out: Path, extra_overrides: list[str] = ()) -> dict:
    import hydra

    from motioncore.train.checkpoint_io import package_checkpoint, save_checkpoint

    files = read_champ_folder(src)
    overrides = import_overrides(files, sd15, list(extra_overrides))
    cfg = compose_train_config(overrides)
    module = hydra.utils.instantiate(cfg.model)
    state, unmapped, dropped = convert(files)
    unknown, kept = load_converted(module.net, state)
    unmapped += unknown
    ckpt = package_checkpoint(
        state_dict=module.state_dict(),
        hyper_parameters=module.hparams,
        hydra_overrides=overrides,
        imported_from={
            "source": str(Path(src).resolve()),
            "upstream": UPSTREAM,
            "unmapped_keys": unmapped,
            "dropped_unused_keys": dropped,
            "base_weight_keys": kept,
        },
        run_info={"package": cfg.package, "model": cfg.model._target_},
    )
    save_checkpoint(ckpt, out)
    return ckpt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="champ-guidance-import",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", type=Path, help="folder with CHAMP's .pth files")
    parser.add_argument("--sd15", type=Path, required=True, help="local SD-1.5 diffusers folder")
    parser.add_argument("-o", "--output", type=Path, required=True, help="checkpoint to write")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides (key=value)")
    args = parser.parse_intermixed_args(argv)
    try:
        ckpt = import_champ(args.src, args.sd15, args.output, args.overrides)
    except (ChampImportError, FileNotFoundError) as e:
        parser.exit(2, f"champ-guidance-import: error: {e}\n")
    info = ckpt["imported_from"]
    print(f"wrote {args.output}")
    print(f"  overrides: {' '.join(ckpt['hydra_overrides'])}")
    if "model.net.temporal.enabled=true" not in ckpt["hydra_overrides"]:
        print(
            "  no motion-module weights (a stage-1 release): imported without temporal "
            "modules; add them with stage=2 training"
        )
    print(f"  dropped {len(info['dropped_unused_keys'])} unused upstream keys (never run upstream)")
    print(f"  kept base weights for {len(info['base_weight_keys'])} keys (SD-1.5, CLIP)")
    print(f"  unmapped upstream keys: {len(info['unmapped_keys'])}")
    for key in info["unmapped_keys"]:
        print(f"    {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
