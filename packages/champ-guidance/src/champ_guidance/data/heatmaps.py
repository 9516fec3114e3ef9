"""Pose guidance maps: one Gaussian heatmap per keypoint plus a background channel.

Hand-written (a few tensor lines): the pose libraries at hand render skeleton images, not
per-keypoint heatmaps. Heatmap k at pixel p is ``conf_k * exp(-|p - x_k|^2 / (2 sigma^2))``
(the OpenPose / CPM confidence-map target, Wei et al. 2016); background is ``1 - max_k``.
"""

from __future__ import annotations

import torch


def keypoint_heatmaps(keypoints: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """``keypoints`` ``[..., K, 3]`` (x, y, conf) in pixels of a ``size``-square frame ->
    ``[..., K + 1, size, size]`` in [0, 1], background channel last."""
    coords = torch.arange(size, dtype=keypoints.dtype, device=keypoints.device) + 0.5
    dx = coords - keypoints[..., 0:1]  # [..., K, size]
    dy = coords - keypoints[..., 1:2]
    gx = torch.exp(-(dx**2) / (2 * sigma**2))
    gy = torch.exp(-(dy**2) / (2 * sigma**2))
    maps = gy[..., :, None] * gx[..., None, :] * keypoints[..., 2, None, None].clamp(0, 1)
    background = 1 - maps.amax(dim=-3, keepdim=True)
    return torch.cat([maps, background], dim=-3)


def pose_heatmaps(
    keypoints: torch.Tensor, frame_hw: tuple[int, int], size: int, sigma: float
) -> torch.Tensor:
    """Heatmaps of keypoints given in pixels of a ``frame_hw`` frame, after the same centre
    square crop the images get, on a ``size`` grid; ``sigma`` is in pixels of a 32-px grid."""
    height, width = frame_hw
    side = min(height, width)
    offset = torch.tensor([(width - side) // 2, (height - side) // 2], dtype=keypoints.dtype)
    xy = (keypoints[..., :2] - offset) * (size / side)
    return keypoint_heatmaps(torch.cat([xy, keypoints[..., 2:]], -1), size, sigma * size / 32)
