"""Rotation helpers: 6D <-> matrix (Zhou et al. 2019), heading about Z, 2D rotations.

Everything is a few lines of torch (axis-angle by Rodrigues' formula and its inverse), so the
package needs no rotation library.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "axis_angle_to_matrix",
    "heading_of",
    "matrix_to_6d",
    "matrix_to_axis_angle",
    "rot_z",
    "rotate_xy",
    "sixd_to_matrix",
]


def _skew(v: torch.Tensor) -> torch.Tensor:
    """[..., 3] -> [..., 3, 3] cross-product matrix [v]_x."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v.shape, 3)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """[..., 3] axis-angle -> [..., 3, 3]: R = I + sin(t) K + (1 - cos(t)) K^2 (Rodrigues), with
    the Taylor series of sin(t)/t and (1 - cos(t))/t^2 near t = 0 (finite gradients at 0)."""
    t2 = (aa * aa).sum(-1, keepdim=True)[..., None]
    t = t2.clamp(min=1e-12).sqrt()
    small = t2 < 1e-6
    a = torch.where(small, 1 - t2 / 6, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24, (1 - torch.cos(t)) / t2.clamp(min=1e-12))
    k = _skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] -> [..., 3] axis-angle with angle in [0, pi].

    Angle from atan2(|r|, (tr - 1) / 2) with r = (R32 - R23, R13 - R31, R21 - R12) / 2 = sin(t) n;
    near pi (sin(t) -> 0) the axis comes from the largest column of (R + I) / 2 = n n^T
    (+ cos(t) terms), with the sign fixed by r.
    """
    r = (
        torch.stack(
            [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]],
            -1,
        )
        / 2
    )
    sin = r.norm(dim=-1)
    cos = ((m.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    angle = torch.atan2(sin, cos)
    # generic case: axis = r / sin(t); small angles: r ~ t n, so scale by t / sin(t) -> 1
    scale = torch.where(sin > 1e-6, angle / sin.clamp(min=1e-12), 1 + angle * angle / 6)
    generic = r * scale[..., None]
    # near pi: n n^T = (sym(R) - cos(t) I) / (1 - cos(t)), sym removes the sin(t) [n]x part
    sym = (m + m.transpose(-1, -2)) / 2
    outer = (sym - cos[..., None, None] * torch.eye(3, dtype=m.dtype, device=m.device)) / (
        1 - cos
    ).clamp(min=1e-12)[..., None, None]
    col = outer.diagonal(dim1=-2, dim2=-1).argmax(-1)
    axis = torch.take_along_dim(outer, col[..., None, None].expand(*col.shape, 3, 1), -1)[..., 0]
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    sign = torch.where((axis * r).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(m.dtype)
    near_pi = (sin < 1e-3) & (cos < 0)
    return torch.where(near_pi[..., None], axis * sign * angle[..., None], generic)


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
