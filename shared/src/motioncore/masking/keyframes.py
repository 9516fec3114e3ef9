"""Length masks, keyframe selection schemes, keyframe dropout and loss masks.

Scheme semantics follow CondMDI's ``get_keyframes_mask`` (Cohan et al. 2024) with its documented
quirks fixed: frames are always drawn inside each sample's valid length, and ``pelvis_only`` (which
upstream lacks) is sparse keyframes of the root joint only. Masks are built per (frame, joint) and
expanded to features through a joint->feature table that the representation's package supplies.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

SCHEMES = (
    "random_frames",
    "benchmark_sparse",
    "benchmark_clip",
    "pelvis_only",
    "gmd_keyframes",
    "uncond",
    "random_joints",
)


def length_mask(lengths: torch.Tensor | Sequence[int], max_len: int | None = None) -> torch.Tensor:
    """Bool [B, T], True on the first ``lengths[b]`` frames."""
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    if (lengths < 0).any():
        raise ValueError(f"lengths must be >= 0, got {lengths.tolist()}")
    max_len = int(lengths.max()) if max_len is None else max_len
    if (lengths > max_len).any():
        raise ValueError(f"lengths {lengths.tolist()} exceed max_len={max_len}")
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _random_frames(n: int, length: int, g: torch.Generator) -> torch.Tensor:
    return torch.randperm(length, generator=g)[: min(n, length)]


def keyframe_joint_mask(
    scheme: str,
    lengths: torch.Tensor | Sequence[int],
    max_len: int,
    n_joints: int,
    *,
    n_keyframes: int = 5,
    trans_length: int = 10,
    n_random_frames: int = 20,
    root_joint: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Bool [B, T, J]: which (frame, joint) cells are observed under ``scheme``.

    - ``random_frames``: exactly ``n_random_frames`` distinct random frames (CondMDI: 20), all joints.
    - ``benchmark_sparse``: frames ``0, T, 2T, ...`` with T = ``trans_length``, all joints.
    - ``benchmark_clip``: all frames but a centred gap of ``trans_length`` frames starting at
      ``(length - T) // 2``.
    - ``gmd_keyframes``: ``n_keyframes`` distinct uniformly random frames, all joints.
    - ``pelvis_only``: ``n_keyframes`` random frames, root joint only.
    - ``uncond``: nothing observed.
    - ``random_joints``: K ~ U{1..length-1} frames, then ``randint(0, (J-1) K)`` random
      (non-root joint, keyframe) cells; the root is observed at every keyframe.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"keyframe scheme {scheme!r} is unknown; use one of {SCHEMES}")
    g = generator  # None draws from torch's global RNG
    lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
    mask = torch.zeros(len(lengths), max_len, n_joints, dtype=torch.bool)
    for b, length in enumerate(lengths.tolist()):
        if length == 0 or scheme == "uncond":
            continue
        if scheme == "random_frames":
            mask[b, _random_frames(n_random_frames, length, g)] = True
        elif scheme == "gmd_keyframes":
            mask[b, _random_frames(n_keyframes, length, g)] = True
        elif scheme == "pelvis_only":
            mask[b, _random_frames(n_keyframes, length, g), root_joint] = True
        elif scheme == "benchmark_sparse":
            mask[b, torch.arange(0, length, max(trans_length, 1))] = True
        elif scheme == "benchmark_clip":
            mask[b, :length] = True
            gap = min(trans_length, length)
            start = (length - gap) // 2
            mask[b, start : start + gap] = False
        elif scheme == "random_joints":
            k = int(torch.randint(1, max(length, 2), (1,), generator=g))
            frames = _random_frames(k, length, g)
            others = [j for j in range(n_joints) if j != root_joint]
            cells = torch.zeros(len(frames) * len(others), dtype=torch.bool)
            n_on = int(torch.randint(0, cells.numel() + 1, (1,), generator=g))
            cells[torch.randperm(cells.numel(), generator=g)[:n_on]] = True
            sub = mask[b, frames]
            sub[:, others] = cells.view(len(frames), len(others))
            sub[:, root_joint] = True
            mask[b, frames] = sub
    return mask.to(lengths.device)


def joint_to_feature_matrix(table: Sequence[Sequence[int]], n_features: int) -> torch.Tensor:
    """Bool [J, F] from a per-joint list of feature indices (the representation's table)."""
    m = torch.zeros(len(table), n_features, dtype=torch.bool)
    for j, feats in enumerate(table):
        idx = torch.as_tensor(list(feats), dtype=torch.long)
        if idx.numel() and (idx.min() < 0 or idx.max() >= n_features):
            raise ValueError(f"joint {j} maps to features outside [0, {n_features}): {list(feats)}")
        m[j, idx] = True
    return m


def expand_to_features(joint_mask: torch.Tensor, joint_to_features: torch.Tensor) -> torch.Tensor:
    """[B, T, J] (or frame-level [B, T]) observed mask -> [B, T, F] feature mask.

    A feature is observed when any joint that owns it is observed.
    """
    if joint_mask.ndim == 2:
        joint_mask = joint_mask[..., None].expand(-1, -1, joint_to_features.shape[0])
    if joint_mask.shape[-1] != joint_to_features.shape[0]:
        raise ValueError(
            f"mask has {joint_mask.shape[-1]} joints but the feature table has "
            f"{joint_to_features.shape[0]}"
        )
    table = joint_to_features.to(joint_mask.device, torch.float32)
    return (joint_mask.float() @ table) > 0


def keyframe_dropout(
    mask: torch.Tensor, p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero the whole keyframe mask of each sample with probability ``p`` (CondMDI, 0.1)."""
    keep = torch.rand(mask.shape[0], generator=generator) >= p
    return mask & keep.to(mask.device).view(-1, *([1] * (mask.ndim - 1)))


def loss_mask(
    valid: torch.Tensor, observed: torch.Tensor | None = None, zero_keyframe_loss: bool = False
) -> torch.Tensor:
    """Where the loss counts: valid frames, minus observed entries if ``zero_keyframe_loss``.

    ``valid`` is [B, T] (broadcast over features); ``observed`` is [B, T, F] or [B, T].
    Fixes CondMDI's broken shape handling: the result is always [B, T, F] (or [B, T]).
    """
    if observed is None or not zero_keyframe_loss:
        return valid if observed is None else valid[..., None].expand_as(observed).clone()
    v = valid[..., None] if observed.ndim == 3 else valid
    return v & ~observed
