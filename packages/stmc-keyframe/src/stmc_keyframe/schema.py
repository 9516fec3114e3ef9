"""The typed schema of the ``diffusion`` config node, used twice:

- by Hydra: ``configs/diffusion/default.yaml`` starts from ``diffusion/schema`` (registered by
  :mod:`stmc_keyframe.configs`), so a misspelt key, in a yaml file or on the command line
  (``diffusion.smoth_sigma=2``), fails at composition with Hydra's message naming the key;
- by :func:`diffusion_config`, which checks a dict given directly (the importer, tests, the
  bench) the same way.

The defaults live in ``default.yaml`` (every field here is required); ``denoiser`` and
``schedule`` stay free-form: the classes they instantiate refuse an unknown argument by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from omegaconf import MISSING

from motioncore.train.config import checked


@dataclass
class DiffusionConfig:
    keyframe_conditioned: bool = MISSING
    keyframe_selection_scheme: str = MISSING
    keyframe_mask_prob: float = MISSING
    zero_keyframe_loss: bool = MISSING
    n_keyframes: int = MISSING
    trans_length: int = MISSING
    n_random_frames: int = MISSING
    keyframe_features: str = MISSING
    guidance_scale: float = MISSING
    num_steps: int = MISSING
    sampler: str = MISSING
    posterior_noise: str = MISSING
    reconstruction_weight: float = MISSING
    trajectory_correction: bool = MISSING
    smooth_sigma: float = MISSING
    smooth_sigma_keyframes: float = MISSING
    foot_lock: bool = MISSING
    schedule: dict[str, Any] = MISSING
    denoiser: dict[str, Any] = MISSING


def diffusion_config(values: dict) -> dict:
    """``values`` checked against :class:`DiffusionConfig` as a plain dict (values converted to
    the field types); an unknown key, a missing one or a value of the wrong type raises
    ``ValueError`` naming ``diffusion.<key>`` and the valid keys."""
    return asdict(checked(DiffusionConfig, values, "diffusion"))
