"""Beat alignment between music beats and kinematic beats of a generated dance video.

Kinematic beats are local minima of motion speed (Li et al. 2021, AIST++/FACT, Sec. 5.1). The
speed is measured on the frames themselves: the mean absolute difference between consecutive
frames (a pixel-motion estimate of the figure's pose velocity, which needs no pose detector).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import find_peaks


def motion_speed(frames: torch.Tensor) -> np.ndarray:
    """``[F, C, H, W]`` -> ``[F]`` speed; frame i is the mean of its backward and forward
    differences (one-sided at the ends)."""
    diff = (frames[1:] - frames[:-1]).abs().flatten(1).mean(1).double().cpu().numpy()
    speed = np.empty(len(frames))
    speed[0], speed[-1] = diff[0], diff[-1]
    speed[1:-1] = (diff[:-1] + diff[1:]) / 2
    return speed


def kinematic_beats(speed: np.ndarray, min_depth: float = 0.1) -> np.ndarray:
    """Interior local minima of ``speed`` whose prominence (depth below the lower of the highest
    speeds on either side before a deeper minimum) is at least ``min_depth`` x (max speed); a
    still video has none."""
    speed = np.asarray(speed, dtype=np.float64)
    peak = float(speed.max()) if len(speed) else 0.0
    if peak <= 1e-6:
        return np.zeros(0, dtype=np.int64)
    minima, _ = find_peaks(-speed, prominence=min_depth * peak)
    return minima.astype(np.int64)


def beat_alignment_score(kinematic: np.ndarray, music: np.ndarray, sigma: float) -> float:
    """BAS (Li et al. 2021, eq. 3): mean over kinematic beats of
    ``exp(-min_music |t_k - t_m|^2 / (2 sigma^2))``, times in frames; 0 without kinematic beats."""
    if len(kinematic) == 0 or len(music) == 0:
        return 0.0
    dist = np.abs(kinematic[:, None].astype(float) - music[None, :].astype(float)).min(1)
    return float(np.exp(-(dist**2) / (2 * sigma**2)).mean())
