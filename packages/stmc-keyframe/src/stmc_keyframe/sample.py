"""``stmc-keyframe-sample``: motions from a text, a multi-track timeline, or global keyframes.

    make sample MODEL=stmc-keyframe CKPT=runs/.../last.ckpt ARGS='text="a person jumps forward" seconds=3'
    ... ARGS='timeline=my_timeline.txt'            (text # start_s # end_s # parts, per line)
    ... ARGS='keyframes=kf.json text="a person walks forward" seconds=4'
    ... ARGS='timeline=t.txt keyframes=k.json'     (keyframes in timeline frames)

A timeline file may hold many timelines separated by blank lines (STMC's benchmark format): one
motion per timeline, all in one batch, written as ``timeline_<k>`` in file order.

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
from stmc_keyframe.timeline import process_timeline, read_timelines
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


def _keyframe_report(out: dict, kf_joints: torch.Tensor, i: int, k: int) -> dict:
    """Mean joint and root error (m) at the keyframes of sample ``k`` of ``out``."""
    m = out["keyframes"][k]
    err = out["joints"][k, m, :N_BODY_JOINTS] - kf_joints[k, m, :N_BODY_JOINTS].to(out["joints"])
    err = err.norm(dim=-1)
    return {"sample": i, "keyframe_error_m": float(err.mean()), "root_error_m":
            float(err[:, 0].mean()), "n_keyframes": int(m.sum())}  # fmt: skip


def _sample_timelines(cfg: DictConfig, module, g: torch.Generator, out_dir: Path) -> list[str]:
    """Every timeline of the file (blank lines separate them) in one batch per sample round;
    outputs ``timeline_<k>`` (``timeline_<k>_<i>`` with num_samples > 1), k in file order.
    Keyframes, in timeline frames, apply to every timeline (frames past its end are dropped)."""
    timelines = read_timelines(cfg.timeline)
    n = max(process_timeline(tl, FPS, float(cfg.overlap_s)).n_frames for tl in timelines)
    kf_joints = kf_mask = None
    if cfg.keyframes:
        joints, frames = read_keyframes(
            cfg.keyframes, n if str(cfg.keyframes).endswith(".json") else None
        )
        if len(frames) > n:
            raise ValueError(
                f"{cfg.keyframes} covers {len(frames)} frames but the timelines only {n} (20 fps)"
            )
        pad = n - len(frames)
        joints = torch.nn.functional.pad(joints, (0, 0, 0, 0, 0, pad))
        frames = torch.nn.functional.pad(frames, (0, pad))
        kf_joints = joints[None].expand(len(timelines), -1, -1, -1)
        kf_mask = frames[:, None].expand(n, N_BODY_JOINTS)[None].expand(len(timelines), -1, -1)
    written, report = [], []
    name = Path(cfg.timeline).name
    for i in range(int(cfg.num_samples)):
        out = module.generate_timelines(
            timelines, kf_joints, kf_mask, generator=g, num_steps=cfg.num_steps,
            guidance_scale=cfg.guidance_scale, posterior_noise=cfg.posterior_noise,
            sampler=cfg.get("timeline_sampler") or "ddpm", overlap_s=float(cfg.overlap_s),
            bf16=bool(cfg.get("bf16")),
        )  # fmt: skip
        for k in range(len(timelines)):
            tag = f"timeline_{k:02d}" + (f"_{i:02d}" if int(cfg.num_samples) > 1 else "")
            m = int(out["lengths"][k])
            _write(out_dir, tag, out["feats"][k, :m], out["joints"][k, :m], f"{name} #{k}",
                   out["keyframes"][k, :m])  # fmt: skip
            written.append(tag)
            if kf_joints is not None:
                report.append({"name": tag, **_keyframe_report(out, kf_joints, i, k)})
    if report:
        (out_dir / "keyframe_report.json").write_text(json.dumps(report, indent=2) + "\n")
        log.info("keyframe error (m): %s", [r["keyframe_error_m"] for r in report])
    log.info("wrote %s to %s", written, out_dir)
    return written


def text_frames(cfg: DictConfig) -> int:
    """Frames of a text/keyframe sample: ``seconds`` at 20 fps (a .npy keyframe file sets its own)."""
    n = int(round(float(cfg.seconds) * FPS)) if cfg.seconds is not None else 0
    if n < 1 and not str(cfg.keyframes or "").endswith(".npy"):
        raise ValueError(
            f"seconds={cfg.seconds} gives {n} frames at {FPS:g} fps: pass seconds > "
            f"{0.5 / FPS:g} (e.g. seconds=3), or keyframes=<file>.npy to take the length from it"
        )
    return n


def run_sample(cfg: DictConfig) -> list[str]:
    n = None if cfg.timeline else text_frames(cfg)  # bad seconds fail before loading
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = load_module(cfg, cfg.device)
    g = torch.Generator().manual_seed(int(cfg.seed))  # the run seed (top-level `seed`)
    written = []
    if cfg.timeline:
        return _sample_timelines(cfg, module, g, out_dir)
    kf_joints = kf_mask = None
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
            report.append(_keyframe_report(out, kf_joints, i, i))
    if report:
        (out_dir / "keyframe_report.json").write_text(json.dumps(report, indent=2) + "\n")
        log.info("keyframe error (m): %s", [r["keyframe_error_m"] for r in report])
    log.info("wrote %s to %s", written, out_dir)
    return written


main = hydra_entry("pkg://stmc_keyframe.configs", "sample", fn=run_sample)

if __name__ == "__main__":
    main()
