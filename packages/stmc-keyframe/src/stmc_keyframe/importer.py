"""``stmc-keyframe-import``: STMC's released run (nv-tlabs/stmc at a8b2a1f) -> a package checkpoint.

    stmc-keyframe-import pretrained_models/mdm-smpl_clip_smplrifke_humanml3d -o imported.ckpt
    stmc-keyframe-import run_dir/logs/checkpoints/last.ckpt -o imported.ckpt

STMC's layout: ``run_dir/config.json`` (the resolved Hydra config), ``run_dir/logs/checkpoints/
last.ckpt`` (Lightning; the ``GaussianDiffusion`` state dict with ``denoiser.*`` and the
``motion_normalizer``/``text_normalizer`` mean/std buffers) and ``run_dir/{motion_stats,
text_stats}/{mean,std}.pt``. The checkpoint's normaliser buffers win over the files (STMC's
``generate.py`` loads the files, then the state dict over them); the files are used when the
checkpoint has none. Upstream divides by ``std + 1e-12``; that ``std + 1e-12`` is stored.

Parameter names (upstream -> ours; shapes are identical):
``tx_embedding`` -> ``text``, ``skel_embedding`` -> ``input``, ``timestep_encoder.time_embed``
-> ``time``, ``seqTransEncoder`` -> ``encoder``, ``to_skel_layer`` -> ``output``, ``registers``.
By default the model is keyframe-conditioned (CondMDI): the extra input columns for the mask
channels and the keyframe embedding start at zero, so without keyframes it computes exactly
STMC's function, and ``init_from=imported.ckpt`` fine-tunes it with keyframes. ``--no-keyframes``
imports the plain text-to-motion denoiser.

The output is a Lightning-style dict (``state_dict``, ``hyper_parameters``,
``pytorch-lightning_version``, ``hydra_overrides`` that rebuild this architecture, and
``imported_from`` with the unmapped upstream keys) loadable with ``weights_only=True``, for
``make sample``, ``make eval`` and ``init_from=``. The sampler is set to STMC's: DDPM over all
steps with the variance-scaled posterior noise (``diffusion.posterior_noise=upstream``), CFG 2.5.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import sys
from pathlib import Path

import torch

from motioncore.train.checkpoint_io import package_checkpoint, save_checkpoint

log = logging.getLogger(__name__)
UPSTREAM = "nv-tlabs/stmc"
UPSTREAM_COMMIT = "a8b2a1f"
EPS = 1e-12
RENAMES = (
    ("denoiser.tx_embedding.", "denoiser.text."),
    ("denoiser.skel_embedding.", "denoiser.input."),
    ("denoiser.timestep_encoder.time_embed.", "denoiser.time."),
    ("denoiser.seqTransEncoder.", "denoiser.encoder."),
    ("denoiser.to_skel_layer.", "denoiser.output."),
    ("denoiser.registers", "denoiser.registers"),
)
STATS = {"motion_normalizer": ("mean", "std"), "text_normalizer": ("text_mean", "text_std")}
# Key prefixes of checkpoints people confuse with STMC's, to refuse them by name.
OTHER_MODELS = {
    "input_process.poseEmbedding.": "MDM (GuyTevet/motion-diffusion-model)",
    "model.input_process.": "MDM (GuyTevet/motion-diffusion-model)",
    "unet.": "CondMDI / GMD UNet (setarehc/diffusion-motion-inbetweening)",
    "motion_encoder.": "TMR (Mathux/TMR)",
    "denoiser.input.": "a stmc-keyframe package checkpoint (use it directly: CKPT= or init_from=)",
}
TEXT_ENCODERS = {"ViT-B/32": "clip", "clip": "clip"}


class ImportErrorMessage(ValueError):
    """A problem with the source, stated with its fix."""


def _load(path: Path, trust_pickle: bool) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as e:
        raise ImportErrorMessage(
            f"{path} holds pickled Python objects besides tensors ({str(e).splitlines()[0]}). "
            "If you trust the file, rerun with --trust-pickle"
        ) from e


def locate(src: str | Path) -> tuple[Path, Path | None]:
    """``(checkpoint, run dir or None)`` of a run directory or a ``last.ckpt`` path."""
    src = Path(src)
    if src.is_dir():
        ckpt = src / "logs" / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            raise ImportErrorMessage(
                f"{src} is a directory without logs/checkpoints/last.ckpt: pass STMC's run "
                "directory (e.g. pretrained_models/mdm-smpl_clip_smplrifke_humanml3d) or the "
                ".ckpt file itself"
            )
        return ckpt, src
    if not src.is_file():
        raise ImportErrorMessage(f"{src} does not exist: pass STMC's run directory or its .ckpt")
    run = src.parents[2] if len(src.parents) > 2 else None
    has_run = run is not None and (
        (run / "config.json").is_file() or (run / "motion_stats").is_dir()
    )
    return src, run if has_run else None


def check_is_stmc(state: dict, src: Path) -> None:
    if "denoiser.skel_embedding.weight" in state:
        return
    for prefix, name in OTHER_MODELS.items():
        if any(k.startswith(prefix) for k in state):
            raise ImportErrorMessage(
                f"{src} is not STMC's GaussianDiffusion checkpoint: its keys look like {name}"
            )
    raise ImportErrorMessage(
        f"{src} is not STMC's GaussianDiffusion checkpoint (no 'denoiser.skel_embedding.weight'; "
        f"keys start with {sorted(state)[:4]})"
    )


def read_architecture(state: dict, run: Path | None, num_heads: int) -> dict:
    """Denoiser sizes, timesteps, text encoder: from config.json, else from the weight shapes."""
    cfg = {}
    if run is not None and (run / "config.json").is_file():
        cfg = json.loads((run / "config.json").read_text())
    diff = cfg.get("diffusion", {})
    feats = cfg.get("motion_features", "smplrifke")
    if feats != "smplrifke" or diff.get("denoiser", {}).get("nfeats", 205) != 205:
        raise ImportErrorMessage(
            f"the run uses motion features {feats!r}; this package models STMC's 205-d "
            "smplrifke representation only (guoh3dfeats runs cannot be imported)"
        )
    if diff.get("prediction", "x") != "x":
        raise ImportErrorMessage(
            f"the run predicts {diff['prediction']!r}; only x0 ('x') is supported"
        )
    target = diff.get("schedule", {}).get("_target_", "cosine")
    if "cosine" not in target.lower():
        raise ImportErrorMessage(f"the run's schedule {target} is not STMC's cosine schedule")
    w = state["denoiser.skel_embedding.weight"]
    layers = {k.split(".")[3] for k in state if k.startswith("denoiser.seqTransEncoder.layers.")}
    den = diff.get("denoiser", {})
    arch = {
        "tx_dim": state["denoiser.tx_embedding.0.weight"].shape[1],
        "latent_dim": w.shape[0],
        "ff_size": state["denoiser.seqTransEncoder.layers.0.linear1.weight"].shape[0],
        "num_layers": len(layers),
        "num_heads": int(den.get("num_heads", num_heads)),
        "dropout": float(den.get("dropout", 0.1)),
        "nb_registers": state["denoiser.registers"].shape[0]
        if "denoiser.registers" in state
        else 0,
        "activation": den.get("activation", "gelu"),
    }
    if arch["latent_dim"] % arch["num_heads"]:
        raise ImportErrorMessage(
            f"latent_dim {arch['latent_dim']} is not divisible by num_heads {arch['num_heads']}: "
            "pass the run's --num-heads"
        )
    model = cfg.get("data", {}).get("text_encoder", {}).get("modelname")
    return {"denoiser": arch, "timesteps": int(diff.get("timesteps", 100)), "text_model": model}


def read_stats(state: dict, run: Path | None) -> tuple[dict[str, torch.Tensor], list[str]]:
    out, notes = {}, []
    for prefix, (mean_key, std_key) in STATS.items():
        folder = prefix.replace("_normalizer", "_stats")
        if f"{prefix}.mean" in state:
            mean, std = state[f"{prefix}.mean"], state[f"{prefix}.std"]
            if run is not None and (run / folder / "mean.pt").is_file():
                file_mean = torch.load(run / folder / "mean.pt", weights_only=True)
                if not torch.allclose(file_mean.float(), mean.float()):
                    notes.append(
                        f"{folder}/ differs from the checkpoint's {prefix}; kept the checkpoint's"
                    )
        elif run is not None and (run / folder / "mean.pt").is_file():
            mean = torch.load(run / folder / "mean.pt", weights_only=True)
            std = torch.load(run / folder / "std.pt", weights_only=True)
        else:
            raise ImportErrorMessage(
                f"no {prefix} statistics: the checkpoint has no {prefix}.mean and no "
                f"{folder}/mean.pt was found next to it; pass STMC's run directory"
            )
        out[mean_key], out[std_key] = mean.float(), std.float() + EPS
    return out, notes


def convert(
    src: str | Path,
    keyframe_conditioned: bool = True,
    text_encoder: str | None = None,
    num_heads: int = 8,
    trust_pickle: bool = False,
) -> dict:
    """The package checkpoint dict for STMC's run directory or checkpoint ``src``."""
    from stmc_keyframe.module import StmcKeyframeModule

    ckpt_path, run = locate(src)
    blob = _load(ckpt_path, trust_pickle)
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else {}
    check_is_stmc(state, ckpt_path)
    arch = read_architecture(state, run, num_heads)
    name = (
        text_encoder
        or TEXT_ENCODERS.get(arch["text_model"])
        or {512: "clip", 384: "minilm"}.get(arch["denoiser"]["tx_dim"])
    )
    if name is None:
        raise ImportErrorMessage(
            f"cannot tell the text encoder of {arch['denoiser']['tx_dim']}-d embeddings "
            f"({arch['text_model']!r}): pass --text-encoder clip|minilm"
        )
    diffusion, text_cfg = package_config(arch, name, keyframe_conditioned)
    module = StmcKeyframeModule(diffusion, text_cfg)
    if module.text_encoder.dim != arch["denoiser"]["tx_dim"]:
        raise ImportErrorMessage(
            f"the denoiser takes {arch['denoiser']['tx_dim']}-d text but the {name} encoder gives "
            f"{module.text_encoder.dim}-d: pass the run's --text-encoder"
        )
    ours, unmapped = {}, []
    for key, value in state.items():
        new = next((n + key[len(o) :] for o, n in RENAMES if key.startswith(o)), None)
        if new is None:
            if key.split(".")[0] not in STATS:
                unmapped.append(key)
            continue
        ours[new] = value.float()
    if (
        keyframe_conditioned
    ):  # zero mask columns and keyframe embedding: STMC's function without keyframes
        w = ours["denoiser.input.weight"]
        ours["denoiser.input.weight"] = torch.cat([w, torch.zeros_like(w)], 1)
        ours["denoiser.keyframe_embedding"] = torch.zeros(w.shape[0])
    stats, notes = read_stats(state, run)
    ours.update(stats)
    ours["stats_set"] = torch.tensor(True)
    missing, unexpected = module.load_state_dict(ours, strict=False)
    if missing or unexpected:
        raise ImportErrorMessage(
            f"{ckpt_path}: converted weights do not fit the package model (missing {missing}, "
            f"unexpected {unexpected})"
        )
    for note in notes:
        log.warning(note)
    if unmapped:
        log.warning("unmapped upstream keys (not imported): %s", unmapped)
    return package_checkpoint(
        state_dict={k: v.detach().clone() for k, v in module.state_dict().items()},
        hyper_parameters=module.hparams,
        hydra_overrides=hydra_overrides(arch, name, keyframe_conditioned),
        imported_from={"source": str(src), "upstream": UPSTREAM,
                       "upstream_commit": UPSTREAM_COMMIT, "unmapped_keys": unmapped},
    )  # fmt: skip


def package_config(arch: dict, text_encoder: str, keyframe_conditioned: bool) -> tuple[dict, dict]:
    """The package's default diffusion config with this run's architecture and STMC's sampler."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    node = OmegaConf.load(files("stmc_keyframe.configs") / "diffusion" / "default.yaml")
    node.denoiser.keyframe_conditioned = keyframe_conditioned
    d = OmegaConf.to_container(node, resolve=False)
    d.pop("defaults")  # the schema the yaml starts from; StmcKeyframeModule checks against it
    d["denoiser"].update(arch["denoiser"], nfeats=205)
    t = arch["timesteps"]
    d.update(keyframe_conditioned=keyframe_conditioned, num_steps=t, posterior_noise="upstream",
             guidance_scale=2.5, sampler="ddpm")  # fmt: skip
    d["schedule"].update(num_train_timesteps=t, num_inference_steps=t)
    return d, {"name": text_encoder}


def hydra_overrides(arch: dict, text_encoder: str, keyframe_conditioned: bool) -> list[str]:
    den = [f"diffusion.denoiser.{k}={v}" for k, v in arch["denoiser"].items()]
    t = arch["timesteps"]
    return [
        *den,
        f"diffusion.keyframe_conditioned={str(keyframe_conditioned).lower()}",
        f"diffusion.schedule.num_train_timesteps={t}",
        f"diffusion.schedule.num_inference_steps={t}",
        f"diffusion.num_steps={t}",
        "diffusion.sampler=ddpm",
        "diffusion.posterior_noise=upstream",
        "diffusion.guidance_scale=2.5",
        f"model.text_encoder.name={text_encoder}",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="stmc-keyframe-import", description=__doc__.split("\n")[0])
    ap.add_argument("src", help="STMC run directory or its logs/checkpoints/last.ckpt")
    ap.add_argument("-o", "--output", default="imported.ckpt", help="package checkpoint to write")
    ap.add_argument("--no-keyframes", action="store_true", help="import without keyframe inputs")
    ap.add_argument("--text-encoder", choices=("clip", "minilm"), default=None,
                    help="text encoder the run was trained with (default: from config.json / tx_dim)")  # fmt: skip
    ap.add_argument("--num-heads", type=int, default=8,
                    help="attention heads when the run has no config.json (STMC: 8)")  # fmt: skip
    ap.add_argument("--trust-pickle", action="store_true",
                    help="allow a checkpoint that holds pickled objects besides tensors")  # fmt: skip
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        out = convert(args.src, not args.no_keyframes, args.text_encoder, args.num_heads,
                      args.trust_pickle)  # fmt: skip
    except ImportErrorMessage as e:
        print(f"stmc-keyframe-import: {e}", file=sys.stderr)
        return 2
    path = Path(args.output)
    save_checkpoint(out, path)
    n = sum(v.numel() for k, v in out["state_dict"].items() if k.startswith("denoiser."))
    print(f"wrote {path} ({n / 1e6:.2f}M denoiser parameters; {len(out['imported_from']['unmapped_keys'])} "
          f"unmapped keys); sample with: make sample MODEL=stmc-keyframe CKPT={path}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
