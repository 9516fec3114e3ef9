"""BVH export of decoded SMPL-RIFKE motions (Y up, metres, ZXY Euler channels).

No BVH writer exists in the environment (pose-format and imageio do not write BVH), so the
hierarchy text is produced here from the skeleton's rest offsets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from stmc_keyframe.representation.skeleton import JOINT_NAMES, N_BODY_JOINTS, OFFSETS, PARENTS

# Z-up world -> Y-up world: (x, y, z) -> (x, z, -y)
Z_TO_Y = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
END_SITES = {10: (0.0, 0.0, 0.08), 11: (0.0, 0.0, 0.08), 15: (0.0, 0.12, 0.0),
             20: OFFSETS[22], 21: OFFSETS[23]}  # fmt: skip


def _hierarchy(j: int, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    off = " ".join(f"{v:.6f}" for v in OFFSETS[j])
    lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {JOINT_NAMES[j]}")
    lines.append(pad + "{")
    lines.append(f"{pad}  OFFSET {off if j else '0.000000 0.000000 0.000000'}")
    if j == 0:
        lines.append(
            f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
        )
    else:
        lines.append(f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
    children = [c for c in range(1, N_BODY_JOINTS) if PARENTS[c] == j]
    for c in children:
        _hierarchy(c, depth + 1, lines)
    if not children:
        end = " ".join(f"{v:.6f}" for v in END_SITES.get(j, (0.0, 0.05, 0.0)))
        lines += [f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET {end}", pad + "  }"]
    lines.append(pad + "}")


def write_bvh(
    path: str | Path, local_rotmats: torch.Tensor, pelvis: torch.Tensor, fps: float = 20.0
) -> Path:
    """Write [T, 22, 3, 3] local rotations (joint 0 = global orient, Z-up world) and pelvis
    positions [T, 3] as a BVH file whose world is Y up."""
    rot = np.asarray(local_rotmats, dtype=np.float64)
    pos = np.asarray(pelvis, dtype=np.float64)
    if rot.shape[1:] != (N_BODY_JOINTS, 3, 3) or pos.shape != (len(rot), 3):
        raise ValueError(
            f"expected [T, 22, 3, 3] rotations and [T, 3] pelvis, got {rot.shape}, {pos.shape}"
        )
    rot = rot.copy()
    rot[:, 0] = Z_TO_Y @ rot[:, 0]
    euler = Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_euler("ZXY", degrees=True)
    euler = euler.reshape(len(rot), N_BODY_JOINTS, 3)
    root = pos @ Z_TO_Y.T
    lines = ["HIERARCHY"]
    _hierarchy(0, 0, lines)
    lines += ["MOTION", f"Frames: {len(rot)}", f"Frame Time: {1.0 / fps:.6f}"]
    order = _dfs_order()
    for t in range(len(rot)):
        vals = list(root[t]) + [v for j in order for v in euler[t, j]]
        lines.append(" ".join(f"{v:.5f}" for v in vals))
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def _dfs_order() -> list[int]:
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for c in range(1, N_BODY_JOINTS):
            if PARENTS[c] == j:
                visit(c)

    visit(0)
    return order
