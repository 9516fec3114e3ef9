"""Read and write ``.pose`` files (pose-format) as the model's ``[T, 75, 3]`` keypoints.

Reading applies the upstream preprocessing (reference text-to-pose.md, "Data"): keep the body
and both hands of MediaPipe Holistic (75 points), normalise by the shoulders (mean mid-shoulder
at the origin, mean shoulder width 1), hide the legs (confidence 0, not removed), resample to
the configured frame rate and drop leading frames in which nothing was detected.

Reduced layouts load too: a body or hand component with only some of its standard points (e.g.
pose-format's ``reduce_holistic``), or one hand missing, gives confidence 0 at the absent
points and a warning listing them (once per layout). The body's shoulders are required (normalisation).
NaN/inf coordinates at points with confidence > 0 are an error naming the file.
"""

from __future__ import annotations

import logging
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
    LEFT_HAND_OFFSET,
    LEG_POINTS,
    N_KEYPOINTS,
    RIGHT_HAND_OFFSET,
    holistic_header,
)

log = logging.getLogger(__name__)
_REPORTED_LAYOUTS: set[tuple[str, ...]] = set()


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


def _to_full_layout(pose: Pose, path: Path) -> tuple[Pose, list[str]]:
    """The body and hands of ``pose`` in the full 75-point layout.

    A component may hold any subset of its standard MediaPipe points, in any order (what
    pose-format's ``reduce_holistic`` / ``get_components(..., points)`` write); absent points get
    confidence 0. Returns the pose and the names of the absent points.
    """
    have = {c.name: c for c in pose.header.components}
    hands = [name for name in COMPONENTS[1:] if name in have]
    if BODY not in have or not hands:
        raise ValueError(
            f"{path}: pose file lacks the MediaPipe Holistic components "
            f"{[n for n in COMPONENTS if n not in have]} (it has {sorted(have)}); text-to-pose "
            f"needs {BODY} and at least one hand of {list(COMPONENTS[1:])} (e.g. from "
            "`video_to_pose --format mediapipe`; OpenPose files are not supported)"
        )
    for name in (BODY, *hands):
        if have[name].format != "XYZC":
            raise ValueError(f"{path}: component {name} is {have[name].format}, need XYZC (3-D)")
        expected = BODY_POINTS if name == BODY else HAND_POINTS
        unknown = [p for p in have[name].points if p not in expected]
        if unknown:
            raise ValueError(
                f"{path}: component {name} has points {unknown[:3]} that are not MediaPipe "
                f"Holistic {name} points (expected a subset of {expected[:3]}...)"
            )
    shoulders = [p for p in ("LEFT_SHOULDER", "RIGHT_SHOULDER") if p not in have[BODY].points]
    if shoulders:
        raise ValueError(f"{path}: {BODY} lacks {shoulders}, needed to normalise the pose")

    reduced = pose.get_components([BODY, *hands])
    frames, people = reduced.body.data.shape[:2]
    data = np.zeros((frames, people, N_KEYPOINTS, 3), dtype=np.float32)
    confidence = np.zeros((frames, people, N_KEYPOINTS), dtype=np.float32)
    offsets = {BODY: 0, COMPONENTS[1]: LEFT_HAND_OFFSET, COMPONENTS[2]: RIGHT_HAND_OFFSET}
    expected = {BODY: BODY_POINTS, COMPONENTS[1]: HAND_POINTS, COMPONENTS[2]: HAND_POINTS}
    present = np.zeros(N_KEYPOINTS, dtype=bool)
    source = 0
    raw = np.asarray(reduced.body.data.data, dtype=np.float32)
    raw_conf = np.asarray(reduced.body.confidence, dtype=np.float32)
    for name in (BODY, *hands):
        for point in have[name].points:
            target = offsets[name] + expected[name].index(point)
            data[:, :, target] = raw[:, :, source, :3]
            confidence[:, :, target] = raw_conf[:, :, source]
            present[target] = True
            source += 1
    names = [f"{n}:{p}" for n in COMPONENTS for p in expected[n]]
    absent = [names[i] for i in np.flatnonzero(~present)]
    mask = np.repeat((confidence == 0)[..., None], 3, axis=-1)
    body = NumPyPoseBody(reduced.body.fps, ma.masked_array(data, mask=mask), confidence)
    return Pose(holistic_header(), body), absent


def _check_finite(pose: Pose, path: Path) -> None:
    data = np.asarray(pose.body.data.data)
    bad = ~np.isfinite(data).all(-1) & (np.asarray(pose.body.confidence) > 0)
    if bad.any():
        frame, _, point = (int(i[0]) for i in np.nonzero(bad))
        raise ValueError(
            f"{path}: {int(bad.sum())} keypoints have NaN/inf coordinates but confidence > 0 "
            f"(first: frame {frame}, point {point}); fix the file or set their confidence to 0"
        )


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
    pose, absent = _to_full_layout(pose, path)
    if absent and tuple(absent) not in _REPORTED_LAYOUTS:  # once per layout, not per file
        _REPORTED_LAYOUTS.add(tuple(absent))
        log.warning(
            "%s (and any later file of the same layout): %d of %d keypoints are not in the "
            "file and get confidence 0: %s", path, len(absent), N_KEYPOINTS, ", ".join(absent),
        )  # fmt: skip
    if pose.body.data.shape[0] == 0:
        raise ValueError(f"{path}: pose file has no frames")
    _check_finite(pose, path)
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
