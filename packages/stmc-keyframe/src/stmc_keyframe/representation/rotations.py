"""Rotation helpers: 6D <-> matrix (Zhou et al. 2019), heading about Z, 2D rotations.

Axis-angle conversions come from kornia; the continuous 6D representation and the Z-heading
split have no library implementation in our stack, so they are written here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.geometry.conversions import axis_angle_to_rotation_matrix, rotation_matrix_to_axis_angle

__all__ = [
    "axis_angle_to_matrix",
    "heading_of",
    "matrix_to_6d",
    "matrix_to_axis_angle",
    "rot_z",
    "rotate_xy",
    "sixd_to_matrix",
]


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """[..., 3] axis-angle -> [..., 3, 3] (kornia, Rodrigues' formula)."""
    return axis_angle_to_rotation_matrix(aa.reshape(-1, 3)).reshape(*aa.shape[:-1], 3, 3)


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] -> [..., 3] axis-angle (kornia)."""
    return rotation_matrix_to_axis_angle(m.reshape(-1, 3, 3)).reshape(*m.shape[:-2], 3)


def matrix_to_6d(m: torch.Tensor) -> torch.Tensor:
    """The first two columns of R, flattened row-major to [..., 6] (Zhou et al. 2019, eq. 14)."""
    return m[..., :, :2].reshape(*m.shape[:-2], 6)


def sixd_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt back to a rotation matrix (Zhou et al. 2019, eq. 15-16)."""
    cols = d6.reshape(*d6.shape[:-1], 3, 2)
    a1, a2 = cols[..., 0], cols[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def rot_z(angle: torch.Tensor) -> torch.Tensor:
    """[...] angles -> [..., 3, 3] rotations about the up (Z) axis."""
    c, s = angle.cos(), angle.sin()
    z, o = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*angle.shape, 3, 3)


def heading_of(m: torch.Tensor) -> torch.Tensor:
    """Z angle of the Euler ZYX decomposition R = Rz(a) Ry(b) Rx(c): a = atan2(R10, R00)."""
    return torch.atan2(m[..., 1, 0], m[..., 0, 0])


def rotate_xy(xy: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate [..., 2] vectors by ``angle`` [...] (counter-clockwise about +Z)."""
    c, s = angle.cos(), angle.sin()
    x, y = xy[..., 0], xy[..., 1]
    return torch.stack([c * x - s * y, s * x + c * y], -1)
