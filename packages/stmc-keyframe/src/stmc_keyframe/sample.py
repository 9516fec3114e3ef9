"""``stmc-keyframe-sample``: motions from a text, a multi-track timeline, or global keyframes.

    make sample MODEL=stmc-keyframe CKPT=runs/.../last.ckpt ARGS='text="a person jumps forward" seconds=3'
    ... ARGS='timeline=my_timeline.txt'            (text # start_s # end_s # parts, per line)
    ... ARGS='keyframes=kf.json text="a person walks forward" seconds=4'

Keyframes: ``.npy`` [T, 22 or 24, 3] global joints (Z up, metres) with NaN rows for frames
that are not keyframes, or ``.json`` ``{"keyframes": [{"frame": 0, "joints": [[x, y, z] x 22]},
...]}`` (frames at 20 fps). Outputs per sample in the run directory: ``*_joints.npy``
[T, 24, 3], ``*_feats.npy`` [T, 205], ``*.bvh``, ``*.gif``; with keyframes also
``keyframe_report.json`` (mean joint error at the keyframes, metres).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from motioncore.train import hydra_entry, load_module
from stmc_keyframe.export import write_bvh
from stmc_keyframe.representation import smplrifke
from stmc_keyframe.representation.skeleton import N_BODY_JOINTS
from stmc_keyframe.timeline import read_timeline, sample_timeline
from stmc_keyframe.visualize import write_gif

log = logging.getLogger(__name__)
FPS = 20.0


def read_keyframes(
    path: str | Path, n_frames: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(joints [T, J, 3] with zeros off keyframes, frame mask [T]) from .npy or .json."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"keyframe file {path} does not exist")
    if path.suffix == ".npy":
        arr = np.load(path)
        if arr.ndim != 3 or arr.shape[1] not in (22, 24) or arr.shape[2] != 3:
            raise ValueError(
                f"{path}: expected [T, 22 or 24, 3] joints with NaN rows, got {arr.shape}"
            )
        given = ~np.isnan(arr).any(axis=(1, 2))
        joints = np.nan_to_num(arr)
    elif path.suffix == ".json":
        try:
            entries = json.loads(path.read_text())["keyframes"]
            frames = [int(e["frame"]) for e in entries]
            values = np.asarray([e["joints"] for e in entries], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"{path}: expected {{'keyframes': [{{'frame': int, 'joints': [[x, y, z] x 22]}}]}} ({e})"
            ) from e
        if values.ndim != 3 or values.shape[1:] not in ((22, 3), (24, 3)):
            raise ValueError(
                f"{path}: each keyframe needs 22 (or 24) joints of 3 values, got {values.shape[1:]}"
            )
        length = max(frames) + 1 if n_frames is None else n_frames
        if min(frames) < 0 or max(frames) >= length:
            raise ValueError(f"{path}: keyframe frames {frames} must lie in [0, {length})")
        joints = np.zeros((length, values.shape[1], 3), np.float32)
        joints[frames] = values
        given = np.zeros(length, bool)
        given[frames] = True
    else:
        raise ValueError(f"{path}: keyframes must be a .npy or .json file")
    if not given.any():
        raise ValueError(f"{path}: no keyframe given")
    return torch.as_tensor(joints, dtype=torch.float32), torch.as_tensor(given)


def _write(out_dir: Path, name: str, feats: torch.Tensor, joints: torch.Tensor, title: str,
           keyframes: torch.Tensor | None = None) -> None:  # fmt: skip
    dec = smplrifke.decode(feats)
    pelvis = joints[:, 0] if joints is not None else dec.root
    np.save(out_dir / f"{name}_feats.npy", feats.cpu().numpy())
    np.save(out_dir / f"{name}_joints.npy", joints.cpu().numpy())
    write_bvh(out_dir / f"{name}.bvh", dec.local_rotmats.cpu(), pelvis.cpu(), FPS)
    write_gif(out_dir / f"{name}.gif", joints.cpu(), title, keyframes=keyframes)


def run_sample(cfg: DictConfig) -> list[str]:
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = load_module(cfg, cfg.device)
    g = torch.Generator().manual_seed(int(cfg.seed))  # the run seed (top-level `seed`)
    written = []
    if cfg.timeline:
        intervals = read_timeline(cfg.timeline)
        for i in range(int(cfg.num_samples)):
            x = sample_timeline(
                module, intervals, FPS, float(cfg.overlap_s),
                guidance_scale=float(cfg.guidance_scale or module.d["guidance_scale"]),
                num_steps=cfg.num_steps, posterior_noise=cfg.posterior_noise or module.d["posterior_noise"],
                generator=g, sampler=cfg.get("timeline_sampler") or "ddpm", bf16=bool(cfg.get("bf16")),
            )  # fmt: skip
            feats = module.denormalize(x)
            joints = smplrifke.decode(feats).joints
            _write(out_dir, f"timeline_{i:02d}", feats, joints, Path(cfg.timeline).name)
            written.append(f"timeline_{i:02d}")
        return written
    kf_joints = kf_mask = None
    n = int(round(float(cfg.seconds) * FPS))
    if cfg.keyframes:
        joints, frames = read_keyframes(cfg.keyframes, None if cfg.seconds is None else n)
        n = len(frames)
        kf_joints = joints[None].expand(int(cfg.num_samples), -1, -1, -1)
        jm = frames[:, None].expand(n, N_BODY_JOINTS)
        kf_mask = jm[None].expand(int(cfg.num_samples), -1, -1)
    texts = [str(cfg.text)] * int(cfg.num_samples)
    out = module.generate(
        texts, torch.full((len(texts),), n), kf_joints, kf_mask, generator=g, num_steps=cfg.num_steps,
        guidance_scale=cfg.guidance_scale,
    )  # fmt: skip
    report = []
    for i in range(len(texts)):
        _write(
            out_dir,
            f"sample_{i:02d}",
            out["feats"][i],
            out["joints"][i],
            texts[i],
            out["keyframes"][i],
        )
        written.append(f"sample_{i:02d}")
        if kf_joints is not None:
            k = out["keyframes"][i]
            err = (
                out["joints"][i, k, :N_BODY_JOINTS]
                - kf_joints[i, k, :N_BODY_JOINTS].to(out["joints"])
            ).norm(dim=-1)
            report.append({"sample": i, "keyframe_error_m": float(err.mean()), "root_error_m":
                           float(err[:, 0].mean()), "n_keyframes": int(k.sum())})  # fmt: skip
    if report:
        (out_dir / "keyframe_report.json").write_text(json.dumps(report, indent=2) + "\n")
        log.info("keyframe error (m): %s", [r["keyframe_error_m"] for r in report])
    log.info("wrote %s to %s", written, out_dir)
    return written


main = hydra_entry("pkg://stmc_keyframe.configs", "sample", fn=run_sample)

if __name__ == "__main__":
    main()
