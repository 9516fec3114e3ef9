"""Masked regression losses that return one value per example.

Padding must not leak into a loss: every value here is a weighted mean whose denominator is
the mask mass, so padded entries are excluded from the numerator *and* the denominator. This
fixes the STMC loss, whose ``MSELoss(mean)`` zeroes padding but still counts it in the
denominator (reference stmc-keyframe.md, A.6 and "STMC loss denominator"). Reduction over
the batch is left to the caller.
"""

from __future__ import annotations

import torch
from torch import Tensor


def align_mask(mask: Tensor, shape: torch.Size | tuple[int, ...]) -> Tensor:
    """Append trailing singleton dims to ``mask`` and check that it broadcasts to ``shape``.

    Masks are aligned from the *left* (batch first), so a ``[B, T]`` frame mask applies to a
    ``[B, T, F]`` or ``[B, T, J, D]`` tensor.
    """
    shape = torch.Size(shape)
    if mask.ndim > len(shape):
        raise ValueError(f"mask shape {tuple(mask.shape)} has more dims than {tuple(shape)}")
    aligned = mask.reshape(*mask.shape, *([1] * (len(shape) - mask.ndim)))
    if any(m not in (1, s) for m, s in zip(aligned.shape, shape)):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not broadcast to {tuple(shape)}")
    return aligned


def masked_mean(values: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per-example weighted mean ``sum(w * v) / sum(w)`` over all but the batch dim.

    Args:
        values: ``[B, ...]``.
        mask: bool (validity) or float (weights, e.g. keypoint confidence), broadcastable to
            ``values`` after left alignment (see :func:`align_mask`). ``None`` = plain mean.

    Returns:
        ``[B]``. An example whose weights are all zero gets 0, not NaN.
    """
    if values.ndim == 0:
        raise ValueError("values needs a batch dimension")
    if mask is None:
        return values.reshape(values.shape[0], -1).mean(dim=1)
    weights = align_mask(mask, values.shape).to(values.dtype)
    numerator = (weights * values).reshape(values.shape[0], -1).sum(dim=1)
    denominator = weights.expand(values.shape).reshape(values.shape[0], -1).sum(dim=1)
    has_mass = denominator > 0
    # Double `where` so that empty examples give 0 and a finite (zero) gradient.
    return torch.where(has_mass, numerator / torch.where(has_mass, denominator, 1.0), 0.0)


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Masked mean squared error per example, ``[B]`` (see :func:`masked_mean`)."""
    _check_pair(pred, target)
    return masked_mean((pred - target).square(), mask)


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Masked mean absolute error per example, ``[B]`` (see :func:`masked_mean`)."""
    _check_pair(pred, target)
    return masked_mean((pred - target).abs(), mask)
