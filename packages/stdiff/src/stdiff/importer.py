"""``stdiff-import`` / ``stdiff-export``: models of the official STDiff code in and out.

Upstream is XiYe20/STDiffProject at be16cc7 with its diffusers fork XiYe20/CustomDiffusers at
76a902b. It released no weights; its training script writes the folder
``STDiffPipeline(stdiff, scheduler).save_pretrained(output_dir)`` (``stdiff/``, ``scheduler/``,
``model_index.json``; layout and key mapping in :mod:`stdiff.pretrained`).

    stdiff-import /path/to/upstream_output_dir -o imported.ckpt
    stdiff-export runs/stdiff/<run>/checkpoints/last.ckpt -o /path/to/upstream_layout

The import writes a Lightning-style checkpoint that ``make sample``/``make eval`` and
``init_from=`` accept; its ``hydra_overrides`` rebuild the architecture. The export writes the
folder upstream's ``test_stdiff.py`` loads (``STDiffDiffusers.from_pretrained(dir,
subfolder="stdiff")``) and refuses models upstream's code would run differently (our standard
ConvGRU update, non-square motion frames).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from motioncore.train.checkpoint_io import package_checkpoint, save_checkpoint
from stdiff import pretrained

UPSTREAM = "XiYe20/STDiffProject@be16cc7 (diffusers fork XiYe20/CustomDiffusers@76a902b)"


def _hydra_value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value.replace("_", "").isalnum() else repr(value)
    return repr(value)


def _leaves(prefix: str, value) -> list[str]:
    if isinstance(value, dict):
        return [o for k, v in value.items() for o in _leaves(f"{prefix}.{k}", v)]
    return [f"++{prefix}={_hydra_value(value)}"]


def import_overrides(stdiff: dict, noise: dict) -> list[str]:
    """Overrides of the train config that rebuild this architecture and its data shape."""
    unet = stdiff["Diffusion"]["unet_config"]
    size = unet.get("sample_size") or stdiff["DiffNet"]["MotionEncoder"]["image_size"]
    size = [size, size] if isinstance(size, int) else list(size)
    return [
        *_leaves("model.STDiff", stdiff),
        *_leaves("model.noise", noise),
        f"data.channels={stdiff['DiffNet']['MotionEncoder']['in_channels']}",
        f"data.image_size={_hydra_value(size)}",
    ]


def compose_train_config(overrides: list[str]):
    from hydra import compose, initialize_config_module

    import stdiff.train  # noqa: F401  (registers the experiments:// config source)

    with initialize_config_module("stdiff.configs", version_base="1.3"):
        return compose("train", overrides=overrides)


def import_upstream(src: Path, out: Path) -> dict:
    """Convert an upstream save_pretrained folder into our checkpoint at ``out``."""
    import hydra

    if Path(src).is_file():
        raise pretrained.NotSTDiffError(
            f"{src} is a file; stdiff-import takes the folder upstream's "
            "STDiffPipeline.save_pretrained wrote (with stdiff/ and scheduler/)"
        )
    stdiff, state, unmapped, noise = pretrained.load_pretrained(src)
    overrides = import_overrides(stdiff, noise)
    cfg = compose_train_config(overrides)
    module = hydra.utils.instantiate(cfg.model)
    own = module.model.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"{src}: the weights lack {len(missing)} parameters, e.g. {missing[:3]}")
    unmapped += sorted(set(state) - set(own))
    module.model.load_state_dict({k: v for k, v in state.items() if k in own})
    ckpt = package_checkpoint(
        state_dict=module.state_dict(),
        hyper_parameters=module.hparams,
        hydra_overrides=overrides,
        imported_from={
            "source": str(Path(src).resolve()),
            "upstream": UPSTREAM,
            "unmapped_keys": unmapped,
        },
    )
    save_checkpoint(ckpt, out)
    return ckpt


def read_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint of an STDiff module; other packages' checkpoints are refused."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"{path} does not exist (give runs/stdiff/<run>/checkpoints/*.ckpt)"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"cannot read checkpoint {path}: {e}") from e
    hp = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if "STDiff" not in hp or "state_dict" not in ckpt:
        raise pretrained.NotSTDiffError(
            f"{path} is not an STDiff checkpoint (its hyper_parameters have no 'STDiff' model "
            f"config; keys: {sorted(hp)[:6]}); export checkpoints of stdiff runs"
        )
    return ckpt


def export_upstream(ckpt_path: Path, out: Path) -> Path:
    """Write the upstream layout for a checkpoint of ours (EMA weights if it holds them)."""
    from stdiff.model.stdiff import STDiffModel

    ckpt = read_checkpoint(ckpt_path)
    hp = ckpt["hyper_parameters"]
    model = STDiffModel(hp["STDiff"], hp.get("channels"))
    problems = pretrained.upstream_incompatibilities(model.config)
    if problems:
        raise ValueError(
            f"{ckpt_path}: upstream's code would compute a different model: " + "; ".join(problems)
        )
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model.save_pretrained(out, hp.get("noise"))


def _convert_cli(argv, prog: str, description: str, src: tuple[str, str], out_help: str, convert):
    """Parse ``SRC -o OUT``; return OUT and ``convert(SRC, OUT)``. Bad input exits 2 with its
    message, never a traceback."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("src", metavar=src[0], type=Path, help=src[1])
    parser.add_argument("-o", "--output", type=Path, required=True, help=out_help)
    args = parser.parse_args(argv)
    try:
        return args.output, convert(args.src, args.output)
    except (pretrained.NotSTDiffError, FileNotFoundError, ValueError) as e:
        parser.exit(2, f"{prog}: error: {e}\n")


def main(argv: list[str] | None = None) -> int:
    output, ckpt = _convert_cli(
        argv,
        "stdiff-import",
        "Convert an upstream STDiff save_pretrained folder into a checkpoint.",
        ("src", "folder with stdiff/ and scheduler/"),
        "checkpoint to write",
        import_upstream,
    )
    print(f"wrote {output}")
    print(f"  overrides: {len(ckpt['hydra_overrides'])} (architecture, noise, data shape)")
    unmapped = ckpt["imported_from"]["unmapped_keys"]
    print(f"  unmapped upstream keys: {len(unmapped)}")
    for key in unmapped:
        print(f"    {key}")
    return 0


def export_main(argv: list[str] | None = None) -> int:
    _, out = _convert_cli(
        argv,
        "stdiff-export",
        "Write a checkpoint in upstream STDiff's save_pretrained layout.",
        ("ckpt", "checkpoint of an stdiff run (or an import)"),
        "folder to write",
        export_upstream,
    )
    print(f"wrote {out}/{{model_index.json,stdiff/,scheduler/}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
