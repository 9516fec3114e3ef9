"""``champ-guidance-sample`` / ``python -m champ_guidance.sample``: animate a reference image.

Inputs (``configs/sample.yaml``): ``reference_image``, ``music`` (an audio file or a video with
sound; features are computed with librosa at ``fps``), ``pose_dir`` (``frame_XXX.json``
keypoints) and ``guidance_dirs.<type>`` (a folder of per-frame maps: CHAMP's rendered
``depth``/``normal``/``semantic_map``/``dwpose`` PNGs, or ``.npy`` features), for any subset of
the guidance types the checkpoint was trained with (a missing type drops its term, logged). Without ``reference_image`` the first test clip
of the configured data is animated. Writes ``animation.mp4``, ``animation.gif`` and
``animation.png`` into the run directory; long sequences go through sliding context windows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from champ_guidance.data.dataset import load_guidance_frame, to_square
from champ_guidance.data.layout import DataLayoutError, read_image
from champ_guidance.data.music_features import check_fps
from champ_guidance.media import save_clip_media
from champ_guidance.train import check_guidance_channels
from motioncore.train import hydra_entry, load_module

log = logging.getLogger(__name__)


def _frames_of(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        raise DataLayoutError(f"{folder} is not a folder of per-frame guidance files")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
    if not files:
        raise DataLayoutError(f"{folder} holds no {'/'.join(suffixes)} frames")
    return files


def _guidance_sequence(
    files: list[Path], gtype: str, channels: int, cfg: DictConfig, raw_hw
) -> torch.Tensor:
    return torch.stack(
        [
            load_guidance_frame(
                path, gtype, channels, cfg.guidance_resolution, raw_hw, cfg.data.heatmap_sigma
            )
            for path in files
        ]
    )


def given_guidance(cfg: DictConfig) -> dict[str, Path]:
    """The guidance the sample config gives: {type: folder of frames, or the music file}.

    CHAMP fuses guidance types by a plain sum, so a trained type that is not given drops its
    term (logged); a type the model was not trained with, or none at all, is an error."""
    types = list(cfg.guidance_types)
    given = {k: Path(v) for k, v in (cfg.get("guidance_dirs") or {}).items() if v is not None}
    if cfg.pose_dir is not None:
        given["pose"] = Path(cfg.pose_dir)
    if cfg.music is not None:
        given["music"] = Path(cfg.music)
    unknown = sorted(set(given) - set(types))
    if unknown:
        raise ValueError(
            f"guidance {unknown} was given but this model was trained with {sorted(types)} only"
        )
    if not given:
        raise ValueError(
            f"no guidance given; this model was trained with {sorted(types)}: pass "
            "music=<audio file>, pose_dir=<folder of frame_XXX.json> and/or "
            "guidance_dirs.<type>=<folder of per-frame maps>"
        )
    dropped = sorted(set(types) - set(given))
    if dropped:
        log.warning(
            "guidance %s not given: their terms are dropped from the guidance sum (CHAMP fuses "
            "guidance types by a plain sum); animating with %s only",
            dropped,
            sorted(given),
        )
    return given


def check_sample_config(cfg: DictConfig) -> None:
    """What ``make sample CHECK=1`` validates: the model's guidance widths and, for a given
    reference image, that file, the frame rate and which guidance types are given."""
    check_guidance_channels(cfg)
    if cfg.reference_image is None:
        return
    if not Path(cfg.reference_image).is_file():
        raise FileNotFoundError(f"reference_image={cfg.reference_image} does not exist")
    check_fps(cfg.fps)
    for gtype, path in given_guidance(cfg).items():
        if not path.exists():
            key = {"music": "music", "pose": "pose_dir"}.get(gtype, f"guidance_dirs.{gtype}")
            raise FileNotFoundError(f"{key}={path} does not exist")


def animation_inputs(cfg: DictConfig) -> tuple[torch.Tensor, dict, float]:
    """(reference [1, 3, R, R], guidance {type: [1, F, ...]}, fps) from the sample config
    (the guidance types given: :func:`given_guidance`)."""
    types = dict(zip(cfg.guidance_types, cfg.guidance_input_channels, strict=True))
    if cfg.reference_image is None:
        dm = hydra.utils.instantiate(cfg.data)
        dm.setup("test")
        item = dm.test_set[0]
        return (
            item["reference"][None],
            {k: v[None] for k, v in item["guidance"].items()},
            item["fps"],
        )
    ref_path = Path(cfg.reference_image)
    if not ref_path.is_file():
        raise FileNotFoundError(f"reference_image={ref_path} does not exist")
    raw = read_image(ref_path)
    reference = to_square(raw, cfg.resolution)[None]
    fps = check_fps(cfg.fps)
    sources = given_guidance(cfg)
    music = sources.pop("music", None)
    guidance = {}
    for gtype, folder in sources.items():
        suffixes = (".json",) if gtype == "pose" else (".png", ".jpg", ".npy")
        files = _frames_of(folder, suffixes)
        guidance[gtype] = _guidance_sequence(files, gtype, types[gtype], cfg, raw.shape[:2])[None]
    n = cfg.num_frames or (min(v.shape[1] for v in guidance.values()) if guidance else None)
    if music is not None:
        from champ_guidance.data.music_features import music_features

        feature_set = "onset" if types["music"] == 1 else "edge35"
        feats = music_features(music, fps, n, feature_set)
        guidance["music"] = torch.from_numpy(feats)[None]
    n = n or min(v.shape[1] for v in guidance.values())
    return reference, {k: v[:, :n] for k, v in guidance.items()}, fps


def animate(cfg: DictConfig) -> list[Path]:
    module = load_module(cfg)
    reference, guidance, fps = animation_inputs(cfg)
    frames = module.generate(
        reference,
        guidance,
        num_steps=cfg.num_inference_steps,
        guidance_scale=cfg.guidance_scale,
        seed=cfg.sample_seed,
        window=cfg.context_window,
        overlap=cfg.context_overlap,
    )
    out = Path(cfg.paths.output_dir)
    paths = save_clip_media(out / "animation", reference[0], frames[0], None, fps)
    log.info("wrote %s", ", ".join(str(p) for p in paths))
    return paths


main = hydra_entry(
    "pkg://champ_guidance.configs", "sample", fn=animate, validate=check_sample_config
)

if __name__ == "__main__":
    main()
