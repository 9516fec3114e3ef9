from __future__ import annotations

import numpy as np
import pytest
from pose_format import Pose
from pose_format.numpy import NumPyPoseBody
from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

from text_to_pose.data.holistic import (
    LEFT_HAND_OFFSET,
    LEFT_SHOULDER,
    LEG_POINTS,
    N_KEYPOINTS,
    RIGHT_SHOULDER,
)
from text_to_pose.data.pose_io import read_pose, write_pose, write_sequence


def _pixels(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    data = g.uniform(100, 400, (frames, N_KEYPOINTS, 3)).astype(np.float32)
    # Shoulders 120 px apart around (250, 200).
    data[:, LEFT_SHOULDER] = [310, 200, 0]
    data[:, RIGHT_SHOULDER] = [190, 200, 0]
    conf = g.uniform(0.5, 1, (frames, N_KEYPOINTS)).astype(np.float32)
    return data, conf


def test_write_read_normalises_by_shoulders_and_hides_legs(tmp_path):
    data, conf = _pixels(10)
    conf[3, LEFT_HAND_OFFSET : LEFT_HAND_OFFSET + 21] = 0  # a hand lost in one frame
    seq = read_pose(write_pose(tmp_path / "a.pose", data, conf, 25.0), fps=25.0)
    assert seq.data.shape == (10, 75, 3) and seq.fps == 25.0
    mid = (seq.data[:, LEFT_SHOULDER] + seq.data[:, RIGHT_SHOULDER]) / 2
    width = np.linalg.norm(seq.data[:, LEFT_SHOULDER] - seq.data[:, RIGHT_SHOULDER], axis=-1)
    np.testing.assert_allclose(mid.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(width.mean(), 1, atol=1e-5)
    expected = (data[5, 40] - np.array([250, 200, 0])) / 120
    np.testing.assert_allclose(seq.data[5, 40], expected, atol=1e-4)
    assert (seq.confidence[:, LEG_POINTS] == 0).all() and (seq.data[:, LEG_POINTS] == 0).all()
    assert (seq.confidence[3, LEFT_HAND_OFFSET : LEFT_HAND_OFFSET + 21] == 0).all()
    np.testing.assert_allclose(seq.confidence[0, :11], conf[0, :11], atol=1e-6)


def test_normalised_sequence_round_trips(tmp_path):
    data, conf = _pixels(6, seed=1)
    first = read_pose(write_pose(tmp_path / "a.pose", data, conf, 25.0))
    again = read_pose(write_sequence(tmp_path / "b.pose", first.data, first.confidence, 25.0))
    np.testing.assert_allclose(again.data, first.data, atol=1e-4)
    np.testing.assert_array_equal(again.confidence > 0, first.confidence > 0)


def test_resampling_and_leading_empty_frames(tmp_path):
    data, conf = _pixels(20)
    conf[:2] = 0
    seq = read_pose(write_pose(tmp_path / "a.pose", data, conf, 50.0), fps=25.0)
    assert seq.fps == 25.0
    assert len(seq.data) < 12  # 20 frames at 50 fps -> 10 at 25 fps, empty lead dropped
    assert seq.confidence[0].sum() > 0


def test_missing_components_and_corrupt_files_are_clear_errors(tmp_path):
    header = PoseHeader(0.2, PoseHeaderDimensions(512, 512, 1),
                        [PoseHeaderComponent("BODY", ["A", "B"], [(0, 1)], [(0, 0, 0)], "XYZC")])  # fmt: skip
    body = NumPyPoseBody(25, np.ma.zeros((3, 1, 2, 3)), np.ones((3, 1, 2)))
    with open(tmp_path / "other.pose", "wb") as f:
        Pose(header, body).write(f)
    with pytest.raises(ValueError, match="POSE_LANDMARKS"):
        read_pose(tmp_path / "other.pose")
    (tmp_path / "bad.pose").write_bytes(b"\x00\x01not a pose")
    with pytest.raises(ValueError, match="not a readable .pose file"):
        read_pose(tmp_path / "bad.pose")
    with pytest.raises(FileNotFoundError):
        read_pose(tmp_path / "missing.pose")
    with pytest.raises(ValueError, match=r"\[T, 75, 3\]"):
        write_pose(tmp_path / "x.pose", np.zeros((4, 70, 3)), np.zeros((4, 70)), 25.0)


def _reduced_file(path, body_points, left_hand: bool = True, seed: int = 0):
    """A Holistic file reduced as pose-format's ``get_components(names, points)`` writes it."""
    from text_to_pose.data.holistic import BODY, LEFT_HAND, RIGHT_HAND

    data, conf = _pixels(8, seed)
    full = write_pose(path, data, conf, 25.0)
    pose = Pose.read(full.read_bytes())
    components = [BODY, LEFT_HAND, RIGHT_HAND] if left_hand else [BODY, RIGHT_HAND]
    reduced = pose.get_components(components, {BODY: body_points})
    with open(path, "wb") as f:
        reduced.write(f)
    return data, conf


def test_reduced_holistic_layout_loads_with_absent_points_at_zero_confidence(tmp_path, caplog):
    from text_to_pose.data.holistic import BODY_POINTS

    # The body of pose-format's reduce_holistic: no face, hand or foot points in the body.
    kept = ["LEFT_SHOULDER", "RIGHT_SHOULDER", "LEFT_ELBOW", "RIGHT_ELBOW", "LEFT_WRIST",
            "RIGHT_WRIST", "LEFT_HIP", "RIGHT_HIP"]  # fmt: skip
    _, conf = _reduced_file(tmp_path / "reduced.pose", list(reversed(kept)), left_hand=False)
    full, _ = _reduced_file(tmp_path / "full.pose", BODY_POINTS)
    with caplog.at_level("WARNING"):
        seq = read_pose(tmp_path / "reduced.pose")
    reference = read_pose(tmp_path / "full.pose")
    assert "POSE_LANDMARKS:NOSE" in caplog.text and "LEFT_HAND_LANDMARKS:WRIST" in caplog.text
    kept_index = [BODY_POINTS.index(p) for p in kept if "HIP" not in p]
    np.testing.assert_allclose(seq.data[:, kept_index], reference.data[:, kept_index], atol=1e-5)
    absent = [i for i in range(33) if BODY_POINTS[i] not in kept]
    absent += list(range(LEFT_HAND_OFFSET, LEFT_HAND_OFFSET + 21))
    assert (seq.confidence[:, absent] == 0).all() and (seq.data[:, absent] == 0).all()
    np.testing.assert_allclose(seq.confidence[:, 60:], reference.confidence[:, 60:])


def test_unusable_reduced_layouts_are_refused(tmp_path):
    _reduced_file(tmp_path / "no_shoulder.pose", ["LEFT_SHOULDER", "LEFT_ELBOW"])
    with pytest.raises(ValueError, match="RIGHT_SHOULDER"):
        read_pose(tmp_path / "no_shoulder.pose")
    header = PoseHeader(0.2, PoseHeaderDimensions(512, 512, 1), [
        PoseHeaderComponent("POSE_LANDMARKS", ["LEFT_SHOULDER", "RIGHT_SHOULDER"], [(0, 1)],
                            [(0, 0, 0)], "XYZC")])  # fmt: skip
    body = NumPyPoseBody(25, np.ma.ones((3, 1, 2, 3)), np.ones((3, 1, 2)))
    with open(tmp_path / "no_hands.pose", "wb") as f:
        Pose(header, body).write(f)
    with pytest.raises(ValueError, match="at least one hand"):
        read_pose(tmp_path / "no_hands.pose")


def test_nan_coordinates_with_confidence_are_an_error_naming_the_file(tmp_path):
    data, conf = _pixels(5)
    data[2, 40, 1] = np.nan
    path = write_pose(tmp_path / "nan.pose", data, conf, 25.0)
    with pytest.raises(
        ValueError, match=r"nan\.pose: 1 keypoints have NaN/inf .*frame 2, point 40"
    ):
        read_pose(path)
    conf[2, 40] = 0  # the same NaN at a missing point is fine
    assert np.isfinite(read_pose(write_pose(tmp_path / "ok.pose", data, conf, 25.0)).data).all()
