"""Global keyframes on a relative-root representation: anchoring, guidance, interpolation.

SMPL-RIFKE decodes every motion from the origin with zero heading, so global keyframe
positions are honoured in three steps:
1. the pose features a keyframe determines (height, pelvis-relative joints) are observed
   entries of the diffusion (clean injection for a keyframe-trained model);
2. reconstruction guidance (Ho et al. 2022, eq. 7, via ``motioncore.diffusion.sample``) pushes
   the x0 estimate so that the *decoded and anchored* joints meet the keyframes; the gradient
   flows through the differentiable decoder into the root velocities of every earlier frame;
3. the final motion is re-anchored (best rigid yaw + XY shift, 2D Procrustes) and, optionally,
   its root XY gets the smooth correction that closes the remaining keyframe gap; the optional
   smoothing keeps the observed features exact and eases their neighbours onto them (no pop).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from motioncore.masking import length_mask
from stmc_keyframe.representation import smplrifke
from stmc_keyframe.representation.rotations import rotate_xy

# frames: the window of the pop criterion (the jerk within 3 frames of a keyframe)
KEYFRAME_RADIUS = 3


def anchor_to_keyframes(
    joints: torch.Tensor, target: torch.Tensor, keyframes: torch.Tensor
) -> torch.Tensor:
    """Rigidly move ``joints`` [B, T, J, 3] about Z so its keyframe XY best fits ``target``.

    Weighted 2D Procrustes (Umeyama 1991, eq. 40-42 restricted to a rotation about Z) over all
    joints of the frames where ``keyframes`` [B, T] is True; differentiable. Samples without
    keyframes are returned unchanged.
    """
    j = target.shape[-2]
    w = keyframes.to(joints.dtype)[..., None].expand(-1, -1, j)  # [B, T, J]
    p, q = joints[..., :j, :2], target[..., :2]
    mass = w.sum((1, 2)).clamp(min=1e-8)[:, None]
    p_bar = (w[..., None] * p).sum((1, 2)) / mass
    q_bar = (w[..., None] * q).sum((1, 2)) / mass
    pc, qc = p - p_bar[:, None, None], q - q_bar[:, None, None]
    cross = (w * (pc[..., 0] * qc[..., 1] - pc[..., 1] * qc[..., 0])).sum((1, 2))
    dot = (w * (pc[..., 0] * qc[..., 0] + pc[..., 1] * qc[..., 1])).sum((1, 2))
    has = keyframes.any(1)
    theta = torch.where(has, torch.atan2(cross, dot), torch.zeros_like(cross))
    shift = torch.where(has[:, None], q_bar, p_bar)
    xy = (
        rotate_xy(joints[..., :2] - p_bar[:, None, None], theta[:, None, None])
        + shift[:, None, None]
    )
    return torch.cat([xy, joints[..., 2:]], -1)


def keyframe_guidance_loss(
    mean: torch.Tensor, std: torch.Tensor, target: torch.Tensor, keyframes: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per-example loss on a normalised x0: squared joint error at keyframes after decoding
    and anchoring (summed over keyframes, mean over joints), in m^2."""

    def loss(x0: torch.Tensor) -> torch.Tensor:
        joints = smplrifke.decode(x0 * std + mean).joints
        world = anchor_to_keyframes(joints, target, keyframes)[..., : target.shape[-2], :]
        err = (world - target).pow(2).sum(-1).mean(-1)
        return (err * keyframes.to(err.dtype)).sum(1)

    return loss


def _interp_rows(values: np.ndarray, frames: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of [K, D] values at ``frames`` onto 0..length-1 (constant ends)."""
    t = np.arange(length)
    return np.stack([np.interp(t, frames, values[:, d]) for d in range(values.shape[1])], -1)


def smooth_fill(residual: torch.Tensor, mask: torch.Tensor, length: float) -> torch.Tensor:
    """The smoothest [n, D] curve through ``residual`` at ``mask`` [n, D] (True = given).

    Each column c equals the residual where given and elsewhere minimises
    ``sum (c[t+1] - 2 c[t] + c[t-1])^2 + length^-4 sum c[t]^2``: a C2 spline-like fill (no
    kink, so no jerk spike, at a given frame) that decays to zero away from the given ones
    (e-folding over about 1.4 ``length`` frames). Columns with the same given frames share one solve.
    """
    n = len(residual)
    d2 = torch.diff(torch.eye(n, dtype=torch.float64), n=2, dim=0)
    a = d2.T @ d2 + torch.eye(n, dtype=torch.float64) * float(length) ** -4
    out = torch.zeros(residual.shape, dtype=torch.float64, device=residual.device)
    patterns, which = torch.unique(mask.T.cpu(), dim=0, return_inverse=True)
    for p, given in enumerate(patterns):
        if not given.any():
            continue
        cols = (which == p).nonzero()[:, 0]
        k, free = given.nonzero()[:, 0], (~given).nonzero()[:, 0]
        rk = residual[k][:, cols].double().cpu()
        fill = torch.zeros(n, len(cols), dtype=torch.float64)
        fill[k] = rk
        if len(free):
            fill[free] = -torch.linalg.solve(a[free][:, free], a[free][:, k] @ rk)
        out[:, cols.to(out.device)] = fill.to(out.device)
    return out.to(residual.dtype)


def correct_trajectory(
    joints: torch.Tensor,
    target: torch.Tensor,
    keyframes: torch.Tensor,
    lengths: torch.Tensor,
    length: float = 40.0,
) -> torch.Tensor:
    """Add to every joint the XY offset that puts the root on the keyframe roots: the
    :func:`smooth_fill` of the root gaps (decaying over ``length`` frames beyond the first and
    last keyframe). A piecewise-linear offset would kink the path at every keyframe."""
    out = joints.clone()
    for b in range(len(joints)):
        n = int(lengths[b])
        kf = keyframes[b, :n]
        if not kf.any():
            continue
        gap = torch.zeros(n, 2, dtype=joints.dtype, device=joints.device)
        gap[kf] = (target[b, :n][kf][:, 0, :2] - joints[b, :n][kf][:, 0, :2]).detach()
        out[b, :n, :, :2] += smooth_fill(gap, kf[:, None].expand(-1, 2), length)[:, None]
    return out


def interpolate_keyframes(
    target: torch.Tensor, keyframes: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """The baseline: linear interpolation of keyframe joints over each valid range."""
    out = torch.zeros_like(target)
    for b in range(len(target)):
        frames = keyframes[b].nonzero()[:, 0].cpu().numpy()
        n = int(lengths[b])
        if len(frames) == 0:
            raise ValueError("the interpolation baseline needs at least one keyframe per sample")
        vals = target[b, frames].reshape(len(frames), -1).cpu().numpy()
        out[b, :n] = torch.as_tensor(_interp_rows(vals, frames, n), dtype=target.dtype).reshape(
            n, *target.shape[2:]
        )
    return out


def observed_features(
    world_joints: torch.Tensor,
    feature_mask: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    reference: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised observed values and the mask of what global keyframe joints determine.

    Position features come from the joints (:func:`smplrifke.features_from_positions`); other
    masked features (rotations, velocities with ``pos_rot_vel``) need ``reference`` features
    (normalised) and are dropped from the mask without them.
    """
    n_given = world_joints.shape[-2]
    pos = smplrifke.features_from_positions(world_joints)
    known = torch.zeros(smplrifke.N_FEATS, dtype=torch.bool, device=world_joints.device)
    known[0] = True
    known[smplrifke.JOINTS_LOCAL.start : smplrifke.JOINTS_LOCAL.start + 3 * (n_given - 1)] = True
    values = (pos - mean) / std
    mask = feature_mask.clone()
    if reference is not None:
        values = torch.where(known, values, reference)
    else:
        mask &= known
    return values * mask, mask


def near_keyframes(keyframes: torch.Tensor, radius: int = KEYFRAME_RADIUS) -> torch.Tensor:
    """[B, T-3] bool: third differences (spanning frames t..t+3) with a frame within
    ``radius`` frames of a keyframe (``keyframes`` [B, T] bool)."""
    kf = keyframes.float()[:, None]
    near_frame = torch.nn.functional.max_pool1d(kf, 2 * radius + 1, 1, radius)
    return torch.nn.functional.max_pool1d(near_frame, 4, 1)[:, 0] > 0


def smooth_features(
    feats: torch.Tensor,
    lengths: torch.Tensor,
    sigma: float,
    values: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    sigma_keyframes: float | None = None,
) -> torch.Tensor:
    """Minimum-jerk smoothing of [B, T, F] features over each valid range, through the observed
    entries ``values`` at ``mask`` (both [B, T, F]; None: nothing observed).

    Every feature column y minimises ``|y - x|^2 + sigma^6 |D3 y|^2`` (Whittaker-Henderson with
    third differences D3: jerk is what is penalised; the passband is about that of a Gaussian of
    ``sigma`` frames) subject to y = value where observed. A post-process against the
    frame-to-frame jitter of a briefly trained denoiser, which otherwise reads as foot skating;
    because the keyframes are constraints of the same solve, the generated frames are eased
    onto them with the least jerk, with no pop (smoothing first and overwriting the keyframes
    after leaves a step next to every keyframe). ``sigma`` in frames, 0 leaves ``feats``
    unchanged. ``sigma_keyframes`` (None: ``sigma``) is the strength for the third differences
    within ``KEYFRAME_RADIUS`` frames of a frame with an observed entry: the model's own motion
    must bend onto the keyframe there, and a stronger penalty spreads that bend so the jerk
    next to a keyframe is no larger than elsewhere. Columns with the same observed frames
    share one solve.
    """
    if sigma <= 0:
        return feats
    strength_near = float(sigma if sigma_keyframes is None else sigma_keyframes) ** 6
    out = feats.clone()
    for b in range(len(feats)):
        n = int(lengths[b])
        if n < 4:
            continue
        d3 = torch.diff(torch.eye(n, dtype=torch.float64), n=3, dim=0)
        x = feats[b, :n].double().cpu()
        given_all = (
            torch.zeros_like(x, dtype=torch.bool) if mask is None else mask[b, :n].bool().cpu()
        )
        near = near_keyframes(given_all.any(-1)[None])[0]
        strength = torch.where(near, strength_near, float(sigma) ** 6).double()
        penalty = d3.T @ (strength[:, None] * d3)
        system = torch.eye(n, dtype=torch.float64) + penalty
        v = x if values is None else values[b, :n].double().cpu()
        y = x.clone()
        patterns, which = torch.unique(given_all.T, dim=0, return_inverse=True)
        for p, given in enumerate(patterns):
            cols = (which == p).nonzero()[:, 0]
            k, free = given.nonzero()[:, 0], (~given).nonzero()[:, 0]
            rhs = x[free][:, cols] - penalty[free][:, k] @ v[k][:, cols]
            y[free[:, None], cols] = torch.linalg.solve(system[free][:, free], rhs)
            y[k[:, None], cols] = v[k][:, cols]
        out[b, :n] = y.to(feats.dtype).to(feats.device)
    return out


def lock_feet(
    joints: torch.Tensor,
    lengths: torch.Tensor,
    feet: tuple[int, int] = (10, 11),
    height: float = 0.05,
) -> torch.Tensor:
    """Foot locking by root correction: for every frame pair in which a foot stays below
    ``height`` (the lower one if both do), shift the rest of the motion horizontally so that
    this foot does not slide. Run before :func:`correct_trajectory`, which then spreads the
    accumulated shift between keyframes. No library offers this post-process."""
    out = joints.clone()
    for b in range(len(joints)):
        n = int(lengths[b])
        f = joints[b, :n][:, list(feet)]  # [n, 2, 3]
        contact = (f[1:, :, 2] < height) & (f[:-1, :, 2] < height)  # [n-1, 2]
        z = torch.where(
            contact, f[1:, :, 2] + f[:-1, :, 2], torch.full_like(f[1:, :, 2], float("inf"))
        )
        pick = z.argmin(-1)  # [n-1]
        disp = f[1:, :, :2] - f[:-1, :, :2]  # [n-1, 2, 2]
        slide = disp.gather(1, pick[:, None, None].expand(-1, 1, 2))[:, 0]
        slide = slide * contact.any(-1, keepdim=True)
        shift = torch.cat([slide.new_zeros(1, 2), -slide.cumsum(0)])
        out[b, :n, :, :2] += shift[:, None]
    return out


def keyframe_jerk_ratio(
    joints: torch.Tensor,
    keyframes: torch.Tensor,
    lengths: torch.Tensor,
    radius: int = KEYFRAME_RADIUS,
) -> torch.Tensor:
    """Per sample [B]: mean jerk of the third differences with a frame within ``radius`` frames
    of a keyframe, over the mean jerk of all other differences in the valid range (NaN when
    either set is empty). Jerk: ``|x[t+3] - 3x[t+2] + 3x[t+1] - x[t]|`` averaged over joints of
    ``joints`` [B, T, J, 3]; ``keyframes`` [B, T] bool. A pop at a keyframe gives a ratio >> 1."""
    jerk = joints[:, 3:] - 3 * joints[:, 2:-1] + 3 * joints[:, 1:-2] - joints[:, :-3]
    jerk = jerk.norm(dim=-1).mean(-1)  # [B, T-3]
    near = near_keyframes(keyframes, radius)
    valid = length_mask((lengths - 3).clamp(min=0), jerk.shape[1])
    inside, outside = near & valid, ~near & valid
    mean_in = (jerk * inside).sum(1) / inside.sum(1)
    mean_out = (jerk * outside).sum(1) / outside.sum(1)
    return mean_in / mean_out
