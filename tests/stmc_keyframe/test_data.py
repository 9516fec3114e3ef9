"""Procedural generator determinism and quality, AMASS-format loading, resampling, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from motioncore.metrics import foot_skating_ratio
from stmc_keyframe.data.amass import load_npz, read_annotations, resample
from stmc_keyframe.data.builtin import build_builtin
from stmc_keyframe.data.dataset import MotionTextDataset, crops_of_split, encoded_motions
from stmc_keyframe.data.procedural import random_motion, synthesize
from stmc_keyframe.representation.skeleton import fk_axis_angle


def test_generator_is_deterministic(tmp_path):
    a = random_motion(np.random.default_rng(5), 30.0, (1, 2), (2.0, 3.0))
    b = random_motion(np.random.default_rng(5), 30.0, (1, 2), (2.0, 3.0))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert [s.text for s in a[2]] == [s.text for s in b[2]]
    r1 = build_builtin(tmp_path / "one", n_motions=3, seed=1)
    r2 = build_builtin(tmp_path / "two", n_motions=3, seed=1)
    assert (r1 / "annotations.json").read_text() == (r2 / "annotations.json").read_text()
    for f in sorted((r1 / "motions").iterdir()):
        np.testing.assert_array_equal(
            np.load(f)["poses"], np.load(r2 / "motions" / f.name)["poses"]
        )


def test_builtin_data_is_rebuilt_when_any_generator_setting_changes(tmp_path):
    """Not only seed and count: another motion length range gives other motions."""
    root = build_builtin(tmp_path / "d", n_motions=3, seed=1)
    first = (root / "annotations.json").read_text()
    assert (build_builtin(root, n_motions=3, seed=1) / "annotations.json").read_text() == first
    build_builtin(root, n_motions=3, seed=1, seconds=(2.0, 2.5))
    assert (root / "annotations.json").read_text() != first


def test_feature_cache_follows_edited_and_added_motions(tmp_path):
    root = build_builtin(tmp_path / "d", n_motions=3, seed=2, split_fractions=(1.0, 0.0))
    feats = encoded_motions(root, "train", None)
    assert sorted(feats) == ["000000", "000001", "000002"]
    motion = dict(np.load(root / "motions/000001.npz"))
    motion["poses"][:, 3:66] *= 0.5  # an edited motion: other joint rotations
    np.savez(root / "motions/000001.npz", **motion)
    edited = encoded_motions(root, "train", None)
    assert not torch.allclose(edited["000001"], feats["000001"])
    assert torch.equal(edited["000000"], feats["000000"])
    table = json.loads((root / "annotations.json").read_text())
    table["000009"] = {**table["000000"], "path": "motions/000009.npz"}
    (root / "annotations.json").write_text(json.dumps(table))
    (root / "motions/000009.npz").write_bytes((root / "motions/000000.npz").read_bytes())
    (root / "splits/train.txt").write_text("000000\n000001\n000002\n000009\n")
    crops = crops_of_split(root, "train", min_len=10)  # KeyError before the cache was keyed
    assert "000009" in {c.keyid for c in crops}


@pytest.mark.parametrize(
    "kind,params", [("walk", {"speed": 1.1}), ("side", {"dir": -1.0}), ("circle", {"dir": 1.0}),
                    ("walk_back", {"speed": 0.8}), ("kick", {"side": "left"})],
)  # fmt: skip
def test_generated_feet_do_not_skate_and_touch_the_floor(kind, params):
    poses, trans = synthesize([(kind, params, 3.0)], 20.0, np.random.default_rng(0))
    joints = fk_axis_angle(torch.tensor(poses), torch.tensor(trans))
    joints[..., 2] -= joints[..., 2].min()
    assert float(foot_skating_ratio(joints[None, :, :22], [len(joints)])[0]) < 0.05
    feet = joints[:, 10:12, 2]
    assert float(feet.min()) < 0.01 and float(feet.max()) > 0.05  # planted, and lifted at times


def test_actions_move_as_described():
    rng = np.random.default_rng(0)
    walk = fk_axis_angle(*map(torch.tensor, synthesize([("walk", {"speed": 1.1}, 3.0)], 20.0, rng)))
    stand = fk_axis_angle(*map(torch.tensor, synthesize([("stand", {}, 3.0)], 20.0, rng)))
    sit = fk_axis_angle(*map(torch.tensor, synthesize([("sit", {}, 3.0)], 20.0, rng)))
    assert (walk[-1, 0, :2] - walk[0, 0, :2]).norm() > 2.0
    assert (stand[-1, 0, :2] - stand[0, 0, :2]).norm() < 0.05
    assert sit[-1, 0, 2] < sit[0, 0, 2] - 0.3


def test_resample_matches_scipy_slerp():
    rng = np.random.default_rng(0)
    poses = (rng.normal(size=(31, 66)) * 0.6).astype(np.float32)
    trans = rng.normal(size=(31, 3)).astype(np.float32)
    out, new_trans = resample(poses, trans, 30.0, 20.0)
    assert out.shape == (21, 66)
    t_src, t_new = np.arange(31) / 30, np.arange(21) / 20
    for j in (0, 5, 21):
        ref = Slerp(t_src, Rotation.from_rotvec(poses[:, 3 * j : 3 * j + 3]))(t_new).as_matrix()
        got = Rotation.from_rotvec(out[:, 3 * j : 3 * j + 3]).as_matrix()
        np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(new_trans[2], trans[3], atol=1e-6)  # t = 0.1 s = source frame 3


def _write_dataset(root, fps=60.0, n=120):
    rng = np.random.default_rng(0)
    (root / "m").mkdir(parents=True)
    (root / "splits").mkdir()
    poses = np.zeros((n, 156), np.float32)
    poses[:, 0] = np.pi / 2
    poses[:, 3:66] = rng.normal(size=(n, 63)) * 0.05
    trans = np.stack([np.linspace(0, 2, n), np.zeros(n), np.full(n, 0.9)], -1).astype(np.float32)
    np.savez(root / "m" / "a.npz", poses=poses, trans=trans, mocap_framerate=fps)
    ann = {"k0": {"path": "m/a.npz", "duration": n / fps, "annotations": [
        {"seg_id": "k0_0", "text": "a person walks", "start": 0.0, "end": 1.5},
        {"seg_id": "k0_1", "text": "a person keeps walking", "start": 0.5, "end": 2.0}]}}  # fmt: skip
    (root / "annotations.json").write_text(json.dumps(ann))
    for split in ("train", "val", "test"):
        (root / "splits" / f"{split}.txt").write_text("k0\n")


def test_real_format_loader_on_written_files(tmp_path):
    _write_dataset(tmp_path)
    poses, trans = load_npz(tmp_path / "m" / "a.npz")
    assert poses.shape == (40, 66) and trans.shape == (40, 3)  # 120 frames at 60 fps -> 20 fps
    items = crops_of_split(tmp_path, "train", min_len=10)
    assert [it.text for it in items] == ["a person walks", "a person keeps walking"]
    assert items[0].feats.shape == (30, 205)
    assert items[0].boundaries == [10]  # the second annotation starts inside the first
    # X velocity of a 2 m / 2 s walk, rotated into the heading frame: speed 1 m/s = 0.05 m/frame
    assert torch.allclose(
        items[0].feats[:-1, 1:3].norm(dim=-1), torch.tensor(2.0 / 119 * 3), atol=1e-3
    )


def test_dataset_crops_and_collate(tiny_data):
    ds = tiny_data.train_set
    batch = MotionTextDataset.collate([ds[0], ds[1], ds[2]])
    assert batch["feats"].shape[0] == 3 and batch["feats"].shape[-1] == 205
    assert batch["feats"].shape[1] == int(batch["lengths"].max()) <= 50
    assert all(isinstance(t, str) and t.startswith("a person") for t in batch["text"])
    mean, std = tiny_data.stats
    assert mean.shape == std.shape == (205,) and torch.isfinite(std).all()


def test_loader_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        load_npz(bad)
    np.savez(tmp_path / "nokey.npz", poses=np.zeros((5, 66)))
    with pytest.raises(ValueError, match="trans"):
        load_npz(tmp_path / "nokey.npz")
    np.savez(tmp_path / "nofps.npz", poses=np.zeros((5, 66)), trans=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="frame rate"):
        load_npz(tmp_path / "nofps.npz")
    with pytest.raises(FileNotFoundError, match="annotations.json"):
        read_annotations(tmp_path, "train")
