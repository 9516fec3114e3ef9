"""The diffusers folder layout of the official STDiff code, both ways.

Upstream (XiYe20/STDiffProject at be16cc7, diffusers fork XiYe20/CustomDiffusers at 76a902b)
saves ``STDiffPipeline(stdiff, scheduler).save_pretrained(dir)``::

    dir/model_index.json
    dir/stdiff/config.json                    {"_class_name": "STDiffDiffusers", "unet_cfg", "tde_cfg"}
    dir/stdiff/diffusion_pytorch_model.bin    (or .safetensors) STDiffDiffusers.state_dict()
    dir/scheduler/scheduler_config.json       DDPMScheduler config

:func:`save_pretrained` writes that layout from our model (upstream's ``STDiffDiffusers.
from_pretrained(dir, subfolder="stdiff")`` loads it) and :func:`load_pretrained` reads it back.
Config keys map one to one except ``tde_cfg.Int``: upstream nests the torchsde options under
``sde_options``/``ode_options``. Our own extras (``gru_update``, ``Int.use_adjoint``) ride along in
``tde_cfg``; upstream ignores unknown keys there. Weight names differ only in module paths
(:data:`PREFIXES`), SPADE placement (upstream ``resnet.motion_cond_layer.mlp_*``, ours
``resnet.conv1.spade.*`` around ``resnet.conv1.conv``) and diffusers 0.15 attention names
(``query/key/value/proj_attn``, now ``to_q/to_k/to_v/to_out.0``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import Tensor

UPSTREAM_CLASS = "STDiffDiffusers"
PIPELINE_CLASS = "STDiffPipeline"
WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")

# (upstream prefix, our prefix) of STDiffModel.state_dict() keys
PREFIXES = (
    ("tde_model.motion_encoder.model.", "tde.encoder.net."),
    ("tde_model.conv_gru_cell.GateConv.", "tde.gru.gates."),
    ("tde_model.conv_gru_cell.NewStateConv.", "tde.gru.candidate."),
    ("tde_model.diff_unet.diff_unet_f.net.", "tde.sde.drift.net."),
    ("tde_model.diff_unet.diff_unet_g.net.", "tde.sde.diffusion.net."),
    ("diffusion_unet.", "unet.unet."),
)
# (upstream, ours) inside the UNet, on whole dotted segments
UNET_RULES = (
    (r"\.motion_cond_layer\.mlp_shared\.", ".conv1.spade.shared."),
    (r"\.motion_cond_layer\.mlp_gamma\.", ".conv1.spade.gamma."),
    (r"\.motion_cond_layer\.mlp_beta\.", ".conv1.spade.beta."),
    (r"\.conv1\.(weight|bias)$", r".conv1.conv.\1"),
    (r"\.query\.", ".to_q."),
    (r"\.key\.", ".to_k."),
    (r"\.value\.", ".to_v."),
    (r"\.proj_attn\.", ".to_out.0."),
)
# diffusers 0.15 UNet2DMotionCond defaults of the keys our model config always spells out
UNET_DEFAULTS = {
    "sample_size": None,
    "layers_per_block": 2,
    "block_out_channels": [224, 448, 672, 896],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
SDE_OPTIONS = ("noise_type", "sde_type", "dt", "rtol", "atol", "adaptive")
SCHEDULER_KEYS = ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end")


class NotSTDiffError(ValueError):
    """The folder or file holds something other than an STDiff model."""


def key_from_upstream(key: str) -> str | None:
    for theirs, ours in PREFIXES:
        if key.startswith(theirs):
            rest = key[len(theirs) :]
            if ours == "unet.unet.":
                rest = "." + rest
                for pattern, repl in UNET_RULES:
                    rest = re.sub(pattern, repl, rest)
                rest = rest[1:]
            return ours + rest
    return None


def key_to_upstream(key: str) -> str:
    for theirs, ours in PREFIXES:
        if key.startswith(ours):
            rest = key[len(ours) :]
            if ours == "unet.unet.":
                rest = "." + rest
                rest = rest.replace(".conv1.spade.shared.", ".motion_cond_layer.mlp_shared.")
                rest = rest.replace(".conv1.spade.gamma.", ".motion_cond_layer.mlp_gamma.")
                rest = rest.replace(".conv1.spade.beta.", ".motion_cond_layer.mlp_beta.")
                rest = rest.replace(".conv1.conv.", ".conv1.")
                for ours_name, theirs_name in (
                    (".to_q.", ".query."),
                    (".to_k.", ".key."),
                    (".to_v.", ".value."),
                    (".to_out.0.", ".proj_attn."),
                ):
                    rest = rest.replace(ours_name, theirs_name)
                rest = rest[1:]
            return theirs + rest
    raise KeyError(f"no upstream name for parameter {key!r}")


def state_from_upstream(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Upstream ``STDiffDiffusers`` state dict -> ``STDiffModel`` keys, plus the unmapped keys."""
    mapped, unmapped = {}, []
    for key, value in state.items():
        ours = key_from_upstream(key)
        if ours is None:
            unmapped.append(key)
        else:
            mapped[ours] = value
    return mapped, unmapped


def state_to_upstream(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {key_to_upstream(k): v.detach().cpu().contiguous() for k, v in state.items()}


def config_from_upstream(config: dict) -> dict:
    """``stdiff/config.json`` -> our ``STDiff`` model config (``Diffusion``, ``DiffNet``)."""
    if config.get("_class_name") != UPSTREAM_CLASS:
        raise NotSTDiffError(
            f"config names class {config.get('_class_name')!r}, not {UPSTREAM_CLASS!r}"
        )
    unet = {**UNET_DEFAULTS, **config["unet_cfg"]}
    tde = config["tde_cfg"]
    int_cfg = dict(tde["Int"])
    if not int_cfg.get("sde", True):
        raise ValueError(
            "the checkpoint uses upstream's ODE variant (tde_cfg.Int.sde: false, torchdiffeq "
            "odeint_adjoint); only the SDE models of the shipped configs can be imported"
        )
    options = dict(int_cfg.get("sde_options", {}))
    me = tde["MotionEncoder"]
    return {
        "Diffusion": {"unet_config": unet},
        "DiffNet": {
            "autoregressive": bool(tde.get("autoregressive", True)),
            "super_res_training": bool(tde.get("super_res_training", False)),
            "gru_update": tde.get("gru_update", "upstream"),
            "MotionEncoder": {
                k: me[k]
                for k in (
                    "learn_diff_image",
                    "image_size",
                    "in_channels",
                    "model_channels",
                    "n_downs",
                )
            },
            "DiffUnet": {k: tde["DiffUnet"][k] for k in ("n_layers", "nonlinear")},
            "Int": {
                "sde": True,
                "method": int_cfg.get("method", "euler_heun"),
                **{k: options[k] for k in SDE_OPTIONS if k in options},
                "use_adjoint": bool(int_cfg.get("use_adjoint", True)),
            },
        },
    }


def config_to_upstream(stdiff: dict) -> dict:
    """Our ``STDiff`` model config -> ``{"unet_cfg", "tde_cfg"}`` of upstream's config.json."""
    net = stdiff["DiffNet"]
    int_cfg = dict(net["Int"])
    return {
        "unet_cfg": dict(stdiff["Diffusion"]["unet_config"]),
        "tde_cfg": {
            "autoregressive": net["autoregressive"],
            "super_res_training": net["super_res_training"],
            "gru_update": net["gru_update"],
            "MotionEncoder": dict(net["MotionEncoder"]),
            "DiffUnet": dict(net["DiffUnet"]),
            "Int": {
                "sde": int_cfg.get("sde", True),
                "method": int_cfg.get("method", "euler_heun"),
                "sde_options": {k: int_cfg[k] for k in SDE_OPTIONS if k in int_cfg},
                "ode_options": {"step_size": int_cfg.get("dt", 0.1), "norm": None},
                "use_adjoint": int_cfg.get("use_adjoint", False),
            },
        },
    }


def upstream_incompatibilities(stdiff: dict) -> list[str]:
    """Why upstream's code would compute something else with this model (empty: it would not)."""
    net = stdiff["DiffNet"]
    problems = []
    if net.get("gru_update", "standard") != "upstream":
        problems.append(
            "DiffNet.gru_update=standard: upstream's ConvGRUCell computes (1-u)*h + h~; train "
            "with model.STDiff.DiffNet.gru_update=upstream to export"
        )
    if not net["Int"].get("sde", True):
        problems.append("DiffNet.Int.sde=false: upstream's ODE variant uses torchdiffeq instead")
    size = net["MotionEncoder"]["image_size"]
    if not isinstance(size, int) and len(set(size)) != 1:
        problems.append(
            f"MotionEncoder.image_size={list(size)}: upstream's DiffModel supports square frames "
            "only (H = W = image_size / 2**n_downs)"
        )
    return problems


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {what} {path}: {e}") from e


def model_folder(path: str | Path) -> Path:
    """The folder holding ``config.json`` + weights: ``path/stdiff`` or ``path`` itself."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} is not a folder; give the folder upstream's save_pretrained wrote "
            "(with stdiff/ and scheduler/)"
        )
    for folder in (path / "stdiff", path):
        if (folder / "config.json").is_file():
            return folder
    raise FileNotFoundError(
        f"no stdiff/config.json in {path}: give the folder upstream's "
        "STDiffPipeline.save_pretrained wrote (with stdiff/ and scheduler/)"
    )


def read_weights(folder: Path) -> dict[str, Tensor]:
    for name in WEIGHTS:
        path = folder / name
        if not path.is_file():
            continue
        try:
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(path)
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"cannot read weights {path}: {e}") from e
    raise FileNotFoundError(f"{folder} has none of {list(WEIGHTS)}")


def read_noise(root: Path) -> dict:
    """``scheduler/scheduler_config.json`` -> NoiseSchedule arguments (upstream defaults if absent)."""
    noise = {"num_train_timesteps": 1000, "beta_schedule": "linear", "prediction_type": "epsilon"}
    path = root / "scheduler" / "scheduler_config.json"
    if path.is_file():
        sched = _read_json(path, "scheduler config")
        noise.update({k: sched[k] for k in (*SCHEDULER_KEYS, "prediction_type") if k in sched})
    return noise


def load_pretrained(path: str | Path) -> tuple[dict, dict[str, Tensor], list[str], dict]:
    """Read an upstream-layout folder: (STDiff config, our state dict, unmapped keys, noise)."""
    folder = model_folder(path)
    config = _read_json(folder / "config.json", "model config")
    try:
        stdiff = config_from_upstream(config)
    except NotSTDiffError as e:
        raise NotSTDiffError(f"{folder / 'config.json'}: {e}; this is not an STDiff model") from e
    except KeyError as e:
        raise ValueError(f"{folder / 'config.json'} lacks {e} of STDiffDiffusers' config") from e
    state, unmapped = state_from_upstream(read_weights(folder))
    root = folder.parent if folder.name == "stdiff" else folder
    return stdiff, state, unmapped, read_noise(root)


def save_pretrained(
    path: str | Path, stdiff: dict, state: dict[str, Tensor], noise: dict | None = None
) -> Path:
    """Write ``path/{model_index.json, stdiff/, scheduler/}`` as upstream's pipeline does."""
    import diffusers

    root = Path(path)
    folder = root / "stdiff"
    folder.mkdir(parents=True, exist_ok=True)
    (root / "scheduler").mkdir(exist_ok=True)
    version = diffusers.__version__
    config = {"_class_name": UPSTREAM_CLASS, "_diffusers_version": version}
    config |= config_to_upstream(stdiff)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tmp = folder / "diffusion_pytorch_model.bin.tmp"
    torch.save(state_to_upstream(state), tmp)
    tmp.replace(folder / "diffusion_pytorch_model.bin")
    noise = noise or {}
    sched = {
        "_class_name": "DDPMScheduler",
        "_diffusers_version": version,
        "num_train_timesteps": noise.get("num_train_timesteps", 1000),
        "beta_start": noise.get("beta_start", 1e-4),
        "beta_end": noise.get("beta_end", 0.02),
        "beta_schedule": noise.get("beta_schedule", "linear"),
        "prediction_type": noise.get("prediction_type", "epsilon"),
        "trained_betas": None,
        "variance_type": "fixed_small",
        "clip_sample": True,
    }
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(sched, indent=2) + "\n")
    index = {
        "_class_name": PIPELINE_CLASS,
        "_diffusers_version": version,
        "scheduler": ["diffusers", "DDPMScheduler"],
        "stdiff": [None, UPSTREAM_CLASS],
    }
    (root / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return root
