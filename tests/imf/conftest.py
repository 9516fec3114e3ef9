"""Tiny IMF configurations, clips and checkpoints shared by the imf tests."""

from __future__ import annotations

import lightning
import numpy as np
import pytest
import torch

from imf.data import SyntheticSpec, render_clip

TINY_GENERATOR = dict(
    image_size=32,
    feature_channels=(8, 16),
    motion_channels=(8, 16),
    stem_channels=8,
    hidden_blocks=1,
    token_channels=(8, 16),
    token_dim=8,
    token_mlp_layers=1,
    const_channels=8,
    depth=1,
    heads=2,
    mlp_dim=16,
    decoder_refine_blocks=1,
    res_blocks=0,
)


def _override(value) -> str:
    return f"[{','.join(map(str, value))}]" if isinstance(value, tuple) else str(value)


# The Hydra overrides of the same tiny model (the image size comes from data.image_size).
TINY_OVERRIDES = [
    "data.image_size=32",
    "data.batch_size=4",
    "data.eval_batch_size=8",
    "data.pairs_per_clip=2",
    "data.eval_pairs_per_clip=3",
    "data.synthetic.frames=10",
    "data.synthetic.train_clips=3",
    "data.synthetic.val_clips=1",
    "data.synthetic.test_clips=1",
    *(
        f"model.generator.{k}={_override(v)}"
        for k, v in TINY_GENERATOR.items()
        if k != "image_size"
    ),
    "model.discriminator.ndf=8",
    "model.discriminator.n_layers=2",
    "model.gan_start_step=1",
    "model.sample_clips=1",
]


@pytest.fixture
def tiny_generator_kwargs() -> dict:
    return dict(TINY_GENERATOR)


@pytest.fixture
def tiny_module_kwargs() -> dict:
    return {
        "generator": dict(TINY_GENERATOR),
        "discriminator": {"num_scales": 2, "ndf": 8, "n_layers": 2},
        "ada": {"enabled": True, "p_init": 0.2, "interval": 1},
        "perceptual": {"layers": [1, 6], "scales": [1.0], "weights": None},
        "lambda_l1": 10.0,
        "lambda_perceptual": 1.0,
        "lambda_gan": 1.0,
        "gan_start_step": 0,
        "grad_clip_g": 1.0,
        "grad_clip_d": 1.0,
        "sample_clips": 1,
    }


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY_OVERRIDES)


@pytest.fixture
def clip_frames():
    """``clip_frames(n)``: a deterministic 32 px synthetic clip, uint8 ``[n, 32, 32, 3]``."""

    def render(n: int) -> np.ndarray:
        spec = SyntheticSpec(image_size=32, frames=n, sprites=1)
        return render_clip(spec, np.random.default_rng(0))

    return render


@pytest.fixture
def tiny_checkpoint(tiny_module_kwargs, tmp_path):
    """A seeded tiny untrained IMFModule and its Lightning-style checkpoint file."""
    from imf.module import IMFModule

    torch.manual_seed(0)
    module = IMFModule(**tiny_module_kwargs)
    ckpt = tmp_path / "last.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        ckpt,
    )
    return module, ckpt
