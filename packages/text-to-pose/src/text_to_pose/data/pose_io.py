"""Read and write ``.pose`` files (pose-format) as the model's ``[T, 75, 3]`` keypoints.

Reading applies the upstream preprocessing (reference text-to-pose.md, "Data"): keep the body
and both hands of MediaPipe Holistic (75 points), normalise by the shoulders (mean mid-shoulder
at the origin, mean shoulder width 1), hide the legs (confidence 0, not removed), resample to
the configured frame rate and drop leading frames in which nothing was detected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.ma as ma
from pose_format import Pose
from pose_format.numpy import NumPyPoseBody
from pose_format.utils.generic import normalize_pose_size, pose_hide_legs, pose_normalization_info

from text_to_pose.data.holistic import (
    BODY,
    BODY_POINTS,
    COMPONENTS,
    HAND_POINTS,
    LEG_POINTS,
    N_KEYPOINTS,
    holistic_header,
)


@dataclass
class PoseSequence:
    """Normalised keypoints ``data [T, 75, 3]`` and ``confidence [T, 75]`` (0 = missing)."""

    data: np.ndarray
    confidence: np.ndarray
    fps: float

    def __post_init__(self) -> None:
        t = self.data.shape[0]
        if self.data.shape != (t, N_KEYPOINTS, 3) or self.confidence.shape != (t, N_KEYPOINTS):
            raise ValueError(
                f"expected data [T, {N_KEYPOINTS}, 3] and confidence [T, {N_KEYPOINTS}], got "
                f"{self.data.shape} and {self.confidence.shape}"
            )


def write_pose(path: str | Path, data: np.ndarray, confidence: np.ndarray, fps: float) -> Path:
    """Write ``data [T, 75, 3]`` and ``confidence [T, 75]`` as a one-person ``.pose`` file."""
    PoseSequence(data, confidence, fps)  # shape check
    mask = np.repeat((confidence == 0)[:, None, :, None], 3, axis=-1)
    body = NumPyPoseBody(
        fps=fps,
        data=ma.masked_array(data[:, None].astype(np.float32), mask=mask),
        confidence=confidence[:, None].astype(np.float32),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        Pose(holistic_header(), body).write(f)
    return path


def _check_header(pose: Pose, path: Path) -> None:
    have = {c.name: c for c in pose.header.components}
    missing = [name for name in COMPONENTS if name not in have]
    if missing:
        raise ValueError(
            f"{path}: pose file lacks the MediaPipe Holistic components {missing} (it has "
            f"{sorted(have)}); text-to-pose needs {list(COMPONENTS)} (e.g. from "
            "`video_to_pose --format mediapipe`)"
        )
    for name in COMPONENTS:
        expected = BODY_POINTS if name == BODY else HAND_POINTS
        if have[name].points != expected:
            raise ValueError(
                f"{path}: component {name} has {len(have[name].points)} points "
                f"{have[name].points[:3]}..., expected the {len(expected)} MediaPipe points"
            )
        if have[name].format != "XYZC":
            raise ValueError(f"{path}: component {name} is {have[name].format}, need XYZC (3-D)")


def read_pose(path: str | Path, fps: float | None = None) -> PoseSequence:
    """Load ``path`` with the preprocessing of the module docstring; ``fps=None`` keeps the
    file's rate."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pose file {path} does not exist")
    try:
        pose = Pose.read(path.read_bytes())
    except Exception as e:  # pose-format raises assorted errors on truncated files
        raise ValueError(f"{path}: not a readable .pose file ({type(e).__name__}: {e})") from e
    _check_header(pose, path)
    pose = pose.get_components(list(COMPONENTS))
    if pose.body.data.shape[0] == 0:
        raise ValueError(f"{path}: pose file has no frames")
    pose = pose.normalize(pose_normalization_info(pose.header))
    if not np.isfinite(np.asarray(pose.body.data.filled(0))).all():
        raise ValueError(f"{path}: shoulders never detected, cannot normalise the pose")
    pose = pose_hide_legs(pose)
    if fps is not None and float(pose.body.fps) != float(fps) and pose.body.data.shape[0] > 1:
        pose.body = pose.body.interpolate(new_fps=fps, kind="linear")
    data = np.asarray(pose.body.data[:, 0].filled(0), dtype=np.float32)
    confidence = np.asarray(pose.body.confidence[:, 0], dtype=np.float32)
    confidence[:, LEG_POINTS] = 0
    data[confidence == 0] = 0
    detected = np.flatnonzero(confidence.sum(axis=1) > 0)
    if detected.size == 0:
        raise ValueError(f"{path}: no frame has any detected keypoint")
    start = detected[0]
    return PoseSequence(data[start:], confidence[start:], float(pose.body.fps))


def sequence_to_pose(data: np.ndarray, confidence: np.ndarray, fps: float) -> Pose:
    """A renderable ``Pose`` (pixel coordinates on a 512 px canvas, pose-format's
    ``normalize_pose_size``) from normalised keypoints; the legs stay hidden."""
    confidence = confidence.copy()
    confidence[:, LEG_POINTS] = 0
    mask = np.repeat((confidence == 0)[:, None, :, None], 3, axis=-1)
    body = NumPyPoseBody(
        fps=fps,
        data=ma.masked_array(data[:, None].astype(np.float32), mask=mask),
        confidence=confidence[:, None].astype(np.float32),
    )
    pose = Pose(holistic_header(), body)
    normalize_pose_size(pose, 512)
    return pose


def write_sequence(path: str | Path, data: np.ndarray, confidence: np.ndarray, fps: float) -> Path:
    """Write normalised keypoints as a renderable ``.pose`` file (see :func:`sequence_to_pose`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        sequence_to_pose(data, confidence, fps).write(f)
    return path
