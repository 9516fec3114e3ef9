"""Write the procedural motions to disk in the real (AMASS + annotations) format, once."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

from motioncore.data import BuiltinData
from stmc_keyframe.data.procedural import describe, random_motion

VERSION = 2  # bump when the generator's output changes


def builtin(
    root: str | Path,
    n_motions: int = 300,
    seed: int = 0,
    source_fps: float = 30.0,
    n_segments: tuple[int, int] = (1, 2),
    seconds: tuple[float, float] = (2.0, 3.5),
    split_fractions: tuple[float, float] = (0.8, 0.1),
) -> BuiltinData:
    """The procedural data set at ``root``, rebuilt when any of these settings changes."""
    spec = dict(
        n_motions=n_motions,
        seed=seed,
        source_fps=source_fps,
        n_segments=list(n_segments),
        seconds=list(seconds),
        split_fractions=list(split_fractions),
    )
    return BuiltinData(
        Path(root), spec, partial(write_motions, **spec), VERSION, replaces=(".complete",)
    )


def build_builtin(root: str | Path, **settings) -> Path:
    """Build (once) and return the procedural data set at ``root`` (settings of :func:`builtin`)."""
    return builtin(root, **settings).build()


def write_motions(
    root: Path,
    n_motions: int,
    seed: int,
    source_fps: float,
    n_segments: list[int],
    seconds: list[float],
    split_fractions: list[float],
) -> None:
    """Write ``n_motions`` procedural motions, their annotations and splits into ``root``.

    Each motion gets one annotation per segment plus one for the whole composed motion.
    """
    (root / "motions").mkdir(parents=True, exist_ok=True)
    (root / "splits").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    table = {}
    for i in range(n_motions):
        keyid = f"{i:06d}"
        poses, trans, segs = random_motion(rng, source_fps, tuple(n_segments), tuple(seconds))
        hands = np.zeros((len(poses), 156 - 66), np.float32)  # SMPL-H layout like AMASS
        np.savez(
            root / "motions" / f"{keyid}.npz",
            poses=np.concatenate([poses, hands], 1), trans=trans,
            mocap_framerate=np.float64(source_fps), gender="neutral", betas=np.zeros(16),
        )  # fmt: skip
        duration = len(poses) / source_fps
        anns = [
            {
                "seg_id": f"{keyid}_{k}",
                "text": s.text,
                "start": s.start,
                "end": min(s.end, duration),
            }
            for k, s in enumerate(segs)
        ]
        if len(segs) > 1:
            anns.append(
                {"seg_id": f"{keyid}_all", "text": describe(segs), "start": 0.0, "end": duration}
            )
        table[keyid] = {"path": f"motions/{keyid}.npz", "duration": duration, "annotations": anns}
    keys = list(table)
    n_train = int(split_fractions[0] * len(keys))
    n_val = int(split_fractions[1] * len(keys))
    splits = {"train": keys[:n_train], "val": keys[n_train : n_train + n_val],
              "test": keys[n_train + n_val :]}  # fmt: skip
    for name, ids in splits.items():
        (root / "splits" / f"{name}.txt").write_text("\n".join(ids) + "\n")
    (root / "annotations.json").write_text(json.dumps(table, indent=1))
