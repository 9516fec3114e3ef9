"""Shared fixtures of the stdiff tests: a tiny model config, a clip batch, and our model run on
an upstream parity fixture's forward inputs."""

from __future__ import annotations

import copy

import pytest
import torch

TINY = {
    "Diffusion": {
        "unet_config": {
            "sample_size": [16, 16],
            "in_channels": 2,
            "out_channels": 1,
            "m_channels": 8,
            "layers_per_block": 1,
            "block_out_channels": [8, 16],
            "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
            "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
            "attention_head_dim": [None, 8],
            "norm_num_groups": 4,
        }
    },
    "DiffNet": {
        "autoregressive": True,
        "super_res_training": False,
        "gru_update": "standard",
        "MotionEncoder": {
            "learn_diff_image": True,
            "image_size": [16, 16],
            "in_channels": 1,
            "model_channels": 4,
            "n_downs": 1,
        },
        "DiffUnet": {"n_layers": 1, "nonlinear": "tanh"},
        "Int": {
            "sde": True,
            "method": "euler_heun",
            "noise_type": "diagonal",
            "sde_type": "stratonovich",
            "dt": 0.25,
            "rtol": 1e-3,
            "atol": 1e-3,
            "adaptive": False,
            "use_adjoint": False,
        },
    },
}
NOISE = {"num_train_timesteps": 1000, "beta_schedule": "linear", "prediction_type": "epsilon"}
OPTIM = {
    "lr": 1e-3,
    "betas": [0.95, 0.999],
    "weight_decay": 1e-6,
    "eps": 1e-8,
    "warmup_steps": 5,
    "num_cycles": 1,
}
EVAL = {"num_samples": 2, "sampler": "dpmsolver++", "num_steps": 4, "chunk": 2, "bf16": False}


@pytest.fixture
def tiny_cfg() -> dict:
    return copy.deepcopy(TINY)


@pytest.fixture
def make_module():
    from stdiff.module import STDiffModule

    def _make(stdiff: dict | None = None, train_channels_last: bool = False, **eval_kw):
        torch.manual_seed(0)
        return STDiffModule(
            copy.deepcopy(stdiff or TINY), dict(NOISE), dict(OPTIM), {**EVAL, **eval_kw},
            train_channels_last=train_channels_last,
        )  # fmt: skip

    return _make


@pytest.fixture
def clip_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    b = 2
    return {
        "vo": torch.rand(b, 3, 1, 16, 16, generator=g) * 2 - 1,
        "idx_o": torch.arange(3.0).repeat(b, 1),
        "vp": torch.rand(b, 2, 1, 16, 16, generator=g) * 2 - 1,
        "idx_p": torch.tensor([[3.0, 5.0], [4.0, 5.0]]),
    }


@pytest.fixture
def upstream_forward():
    """``run(fix, model)``: our forward on the inputs of an upstream ``forward``/``super_res``
    fixture (tools/upstream/stdiff.py), shaped as upstream's eps ``[N * K, C, H, W]``."""

    def run(fix: dict, model) -> torch.Tensor:
        i = fix["inputs"]
        n, k = i["Vo"].shape[0], i["idx_p"].shape[0]
        out = model(
            i["Vo"],
            i["idx_o"].repeat(n, 1),
            i["idx_p"].repeat(n, 1),
            i["noisy_Vp"].unflatten(0, (n, k)),
            i["timestep"],
            clean_vp=i["clean_Vp"],
            entropy=i["entropy"],
        )
        return out.flatten(0, 1)

    return run
