"""Shared fixtures of the stmc-keyframe tests (test modules cannot import each other)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TINY_DIFFUSION = {
    "keyframe_conditioned": True, "keyframe_selection_scheme": "random_frames",
    "keyframe_mask_prob": 0.1, "zero_keyframe_loss": False, "n_keyframes": 3, "trans_length": 5,
    "n_random_frames": 4, "keyframe_features": "positions", "guidance_scale": 2.5, "num_steps": 5,
    "sampler": "ddpm", "posterior_noise": "std", "reconstruction_weight": 1.0,
    "trajectory_correction": True, "smooth_sigma": 0.0, "smooth_sigma_keyframes": 0.0, "foot_lock": False,
    "schedule": {"_target_": "motioncore.diffusion.NoiseSchedule", "num_train_timesteps": 20,
                 "beta_schedule": "cosine", "prediction_type": "sample", "num_inference_steps": 5},
    "denoiser": {"_target_": "stmc_keyframe.model.denoiser.TransformerDenoiser", "nfeats": 205,
                 "tx_dim": 384, "latent_dim": 32, "ff_size": 64, "num_layers": 1, "num_heads": 2,
                 "dropout": 0.0, "nb_registers": 2, "keyframe_conditioned": True},
}  # fmt: skip


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A 10-motion built-in dataset in the real on-disk format."""
    from stmc_keyframe.data.builtin import build_builtin

    root = tmp_path_factory.mktemp("stmc_data") / "builtin"
    return build_builtin(root, n_motions=10, seed=3, seconds=(2.0, 2.5), split_fractions=(0.6, 0.2))


@pytest.fixture(scope="session")
def text_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("text_cache")


@pytest.fixture
def make_module(text_cache):
    """Build a tiny StmcKeyframeModule with diffusion overrides and given stats."""
    from stmc_keyframe.module import StmcKeyframeModule

    def _make(stats=None, **overrides):
        d = {**TINY_DIFFUSION, **{k: v for k, v in overrides.items() if k != "denoiser"}}
        d["denoiser"] = {**TINY_DIFFUSION["denoiser"], **overrides.get("denoiser", {})}
        if "keyframe_conditioned" in overrides and "denoiser" not in overrides:
            d["denoiser"]["keyframe_conditioned"] = overrides["keyframe_conditioned"]
        m = StmcKeyframeModule(d, {"name": "minilm", "cache_dir": str(text_cache)}, lr=1e-3)
        if stats is not None:
            m.mean.copy_(stats[0])
            m.std.copy_(stats[1].clamp(min=1e-4))
            m.stats_set.fill_(True)
        return m

    return _make


@pytest.fixture(scope="session")
def tiny_data(tiny_root):
    from stmc_keyframe.data.dataset import MotionDataModule

    dm = MotionDataModule(root=str(tiny_root), max_len=50, batch_size=4, min_seconds=1.0)
    dm.setup()
    return dm


@pytest.fixture
def run_entry(repo_root):
    """Run ``python -m stmc_keyframe.<entry> overrides...`` in a subprocess; returns the result."""

    def _run(entry: str, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, "WANDB_MODE": "offline", "MOTIONCORE_EXPERIMENTS": str(repo_root / "experiments"),
               "MOTIONCORE_ROOT": str(repo_root)}  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", f"stmc_keyframe.{entry}", *overrides], cwd=repo_root, env=env,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        return proc

    return _run


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)
