"""``champ-guidance-sample`` / ``python -m champ_guidance.sample``: animate a reference image.

Inputs (``configs/sample.yaml``): ``reference_image``, ``music`` (an audio file; features are
computed with librosa at ``fps``) and/or ``pose_dir`` (``frame_XXX.json`` keypoints), one per
guidance type the checkpoint was trained with. Without ``reference_image`` the first test clip
of the configured data is animated. Writes ``animation.mp4``, ``animation.gif`` and
``animation.png`` into the run directory; long sequences go through sliding context windows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from champ_guidance.data.dataset import to_square
from champ_guidance.data.heatmaps import pose_heatmaps
from champ_guidance.data.layout import DataLayoutError, frame_file, read_image, read_pose
from champ_guidance.media import save_clip_media
from motioncore.train import hydra_entry, load_module

log = logging.getLogger(__name__)


def _pose_sequence(
    folder: Path, num_keypoints: int, frame_hw, size: int, sigma: float
) -> torch.Tensor:
    if not frame_file(folder, 0, ".json").is_file():
        raise DataLayoutError(f"pose_dir={folder} has no frame_000.json")
    frames, i = [], 0
    while frame_file(folder, i, ".json").is_file():
        kp = torch.from_numpy(read_pose(frame_file(folder, i, ".json"), num_keypoints))
        frames.append(pose_heatmaps(kp, frame_hw, size, sigma))
        i += 1
    return torch.stack(frames)


def animation_inputs(cfg: DictConfig) -> tuple[torch.Tensor, dict, float]:
    """(reference [1, 3, R, R], guidance {type: [1, F, ...]}, fps) from the sample config."""
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
    fps, guidance = float(cfg.fps), {}
    if "pose" in types:
        if cfg.pose_dir is None:
            raise ValueError(
                "this model uses pose guidance: pass pose_dir=<folder of frame_XXX.json>"
            )
        guidance["pose"] = _pose_sequence(
            Path(cfg.pose_dir),
            types["pose"] - 1,
            raw.shape[:2],
            cfg.guidance_resolution,
            cfg.data.heatmap_sigma,
        )[None]
    n = cfg.num_frames or (guidance["pose"].shape[1] if guidance else None)
    if "music" in types:
        if cfg.music is None:
            raise ValueError("this model uses music guidance: pass music=<audio file>")
        from champ_guidance.data.music_features import music_features

        if n is None:
            import soundfile as sf

            n = int(sf.info(str(cfg.music)).duration * fps)
        feature_set = "onset" if types["music"] == 1 else "edge35"
        guidance["music"] = torch.from_numpy(music_features(Path(cfg.music), fps, n, feature_set))[
            None
        ]
    unknown = set(types) - set(guidance)
    if unknown:
        raise ValueError(
            f"the sample CLI reads pose and music guidance; {sorted(unknown)} cannot be given"
        )
    n = n or 1
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


main = hydra_entry("pkg://champ_guidance.configs", "sample", fn=animate)

if __name__ == "__main__":
    main()
