"""AMASS-style ``.npz`` motions + TMR/HumanML3D-style text annotations, resampled to 20 fps.

On-disk layout (the procedural generator writes exactly this, real data plugs in the same way):

    <root>/annotations.json   {keyid: {"path": "<rel>.npz", "duration": s,
                               "annotations": [{"seg_id", "text", "start", "end"}, ...]}}
    <root>/splits/{train,val,test}.txt   one keyid per line
    <root>/<rel>.npz          poses [N, >=66] axis-angle (SMPL-H: 156), trans [N, 3],
                              mocap_framerate (AMASS) or fps

Joints come from ``smplx`` when a body-model folder is given, else from the package's own
SMPL-like skeleton (the procedural data is rendered with that skeleton).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from stmc_keyframe.representation.rotations import axis_angle_to_matrix
from stmc_keyframe.representation.skeleton import N_BODY_JOINTS, forward_kinematics

FPS = 20.0
SPLITS = ("train", "val", "test")


@dataclass
class Annotation:
    text: str
    start: float
    end: float


@dataclass
class MotionRecord:
    keyid: str
    path: Path
    annotations: list[Annotation]


def _framerate(data: np.lib.npyio.NpzFile, path: Path) -> float:
    for key in ("mocap_framerate", "mocap_frame_rate", "fps"):
        if key in data.files:
            return float(data[key])
    raise ValueError(f"{path}: no frame rate (expected 'mocap_framerate' or 'fps' in the .npz)")


def _slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Quaternion slerp (Shoemake 1985) of [..., 4] pairs with weights [...]; vectorised over
    every joint and frame at once (scipy's Slerp handles one rotation sequence per call)."""
    dot = (q0 * q1).sum(-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot).clip(max=1.0)
    theta = np.arccos(dot)
    sin = np.sin(theta)
    w = w[..., None]
    small = sin < 1e-6
    a = np.where(small, 1 - w, np.sin((1 - w) * theta) / np.where(small, 1, sin))
    b = np.where(small, w, np.sin(w * theta) / np.where(small, 1, sin))
    q = a * q0 + b * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def resample(poses: np.ndarray, trans: np.ndarray, src_fps: float, fps: float = FPS):
    """Slerp the 22 joint rotations and linearly interpolate ``trans`` to ``fps``."""
    n = len(poses)
    if n < 2:
        raise ValueError(f"a motion needs at least 2 frames, got {n}")
    pos = np.arange(0.0, (n - 1) / src_fps + 1e-9, 1.0 / fps) * src_fps  # source frame index
    pos = np.minimum(pos, n - 1)
    i0 = np.minimum(np.floor(pos).astype(int), n - 2)
    w = pos - i0
    quat = Rotation.from_rotvec(poses.reshape(-1, 3)).as_quat().reshape(n, N_BODY_JOINTS, 4)
    q = _slerp(quat[i0], quat[i0 + 1], np.repeat(w[:, None], N_BODY_JOINTS, 1))
    out = Rotation.from_quat(q.reshape(-1, 4)).as_rotvec().reshape(len(pos), -1)
    new_trans = trans[i0] * (1 - w[:, None]) + trans[i0 + 1] * w[:, None]
    return out.astype(np.float32), new_trans.astype(np.float32)


def load_npz(path: str | Path, fps: float = FPS) -> tuple[np.ndarray, np.ndarray]:
    """(poses [T, 66], trans [T, 3]) at ``fps`` from an AMASS-style file; clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"motion file {path} does not exist")
    try:
        data = np.load(path)
        poses, trans = np.asarray(data["poses"]), np.asarray(data["trans"])
    except KeyError as e:
        raise ValueError(f"{path}: missing key {e}; AMASS files need 'poses' and 'trans'") from e
    except Exception as e:  # zipfile/pickle errors of a corrupt file
        raise ValueError(f"{path} is not a readable .npz motion file ({e})") from e
    if poses.ndim != 2 or poses.shape[1] < 66 or trans.shape != (len(poses), 3):
        raise ValueError(
            f"{path}: expected poses [N, >=66] and trans [N, 3], got {poses.shape} and {trans.shape}"
        )
    src_fps = _framerate(data, path)
    return resample(poses[:, :66], trans, src_fps, fps)


class SmplxJoints:
    """Joints from the SMPL-H body model (``smplx``), for real AMASS data with model files."""

    HANDS = (25, 40)  # left_index1 / right_index1 stand in for the SMPL-H hand end points

    def __init__(self, model_path: str | Path):
        import smplx

        path = Path(model_path)
        if not path.exists():
            raise FileNotFoundError(
                f"body model folder {path} does not exist; pass data.body_model_path=<folder with "
                "smplh/SMPLH_NEUTRAL.npz> or null to use the built-in skeleton"
            )
        self.model = smplx.create(str(path), model_type="smplh", gender="neutral", use_pca=False)

    @torch.no_grad()
    def __call__(self, poses: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
        out = self.model(
            global_orient=poses[:, :3], body_pose=poses[:, 3:66], transl=trans,
            betas=torch.zeros(len(poses), 10),
        )  # fmt: skip
        j = out.joints
        return torch.cat([j[:, :N_BODY_JOINTS], j[:, list(self.HANDS)]], 1)


def joints_and_rotations(
    poses: np.ndarray, trans: np.ndarray, body_model: SmplxJoints | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(joints [T, 24, 3], local rotations [T, 22, 3, 3]) of a resampled motion."""
    p = torch.from_numpy(poses).float()
    tr = torch.from_numpy(trans).float()
    rot = axis_angle_to_matrix(p.reshape(-1, N_BODY_JOINTS, 3))
    joints = body_model(p, tr) if body_model is not None else forward_kinematics(rot, tr)[0]
    return joints, rot


def read_annotations(root: str | Path, split: str) -> list[MotionRecord]:
    """Records of one split; errors name the missing file and how to fix it."""
    root = Path(root)
    ann_path, split_path = root / "annotations.json", root / "splits" / f"{split}.txt"
    for p in (ann_path, split_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"{p} is missing: data.root must hold annotations.json and splits/<split>.txt "
                "(TMR/HumanML3D style); leave data.root=null for the built-in data"
            )
    try:
        table = json.loads(ann_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{ann_path} is not valid JSON ({e})") from e
    records = []
    for keyid in split_path.read_text().split():
        if keyid not in table:
            raise ValueError(f"{split_path} lists {keyid!r}, which {ann_path} does not have")
        entry = table[keyid]
        anns = [
            Annotation(a["text"], float(a["start"]), float(a["end"])) for a in entry["annotations"]
        ]
        records.append(MotionRecord(keyid, root / entry["path"], anns))
    return records
