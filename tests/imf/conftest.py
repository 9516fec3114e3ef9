"""Tiny IMF configurations shared by the imf tests."""

from __future__ import annotations

import pytest

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
    "model.generator.feature_channels=[8,16]",
    "model.generator.motion_channels=[8,16]",
    "model.generator.stem_channels=8",
    "model.generator.token_channels=[8,16]",
    "model.generator.token_dim=8",
    "model.generator.mlp_dim=16",
    "model.generator.heads=2",
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
    return dict(
        generator=dict(TINY_GENERATOR),
        discriminator=dict(num_scales=2, ndf=8, n_layers=2),
        ada=dict(enabled=True, p_init=0.2, interval=1),
        perceptual=dict(layers=[1, 6], scales=[1.0], weights=None),
        lambda_l1=10.0,
        lambda_perceptual=1.0,
        lambda_gan=1.0,
        gan_start_step=0,
        grad_clip_g=1.0,
        grad_clip_d=1.0,
        sample_clips=1,
    )


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY_OVERRIDES)
