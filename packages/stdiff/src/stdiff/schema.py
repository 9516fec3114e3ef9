"""The typed schema of stdiff's model config (upstream key names), one set of dataclasses used twice:

- by Hydra: ``configs/model/*.yaml`` start from ``model/schema`` (registered by
  :mod:`stdiff.configs`), so a misspelt key, in a yaml file or on the command line, fails at
  composition with Hydra's message naming the key (``Key 'dtt' not in 'IntConfig'``);
- by :func:`stdiff_config`, which checks the same way a ``STDiff`` dict given directly (imported
  upstream configs, tests, the bench) and fills in the defaults.

``Diffusion.unet_config`` (diffusers ``UNet2DModel`` arguments + ``m_channels``) and ``noise``
(:class:`motioncore.diffusion.NoiseSchedule` arguments) stay free-form: the constructors they
are passed to refuse an unknown argument by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf

from motioncore.train.config import checked


@dataclass
class MotionEncoderConfig:
    """``STDiff.DiffNet.MotionEncoder``."""

    learn_diff_image: bool = True
    image_size: Any = 64  # int or [H, W]
    in_channels: int | None = None  # None: the frames' channels (data.channels)
    model_channels: int = 64
    n_downs: int = 2

    @property
    def out_channels(self) -> int:
        return self.model_channels * 2**self.n_downs


@dataclass
class DiffUnetConfig:
    """``STDiff.DiffNet.DiffUnet``: depth and nonlinearity of the SDE drift/diffusion nets."""

    n_layers: int = 2
    nonlinear: str = "tanh"


@dataclass
class IntConfig:
    """``STDiff.DiffNet.Int``: the SDE integrator (torchsde.sdeint arguments).

    ``sde: false`` integrates the drift alone (g = 0, the ODE variant) with the same solver;
    ``use_adjoint`` switches to ``torchsde.sdeint_adjoint`` (upstream's choice, memory-light).
    """

    sde: bool = True
    method: str = "euler_heun"
    noise_type: str = "diagonal"
    sde_type: str = "stratonovich"
    dt: float = 0.1
    rtol: float = 1e-3
    atol: float = 1e-3
    adaptive: bool = False
    use_adjoint: bool = False


@dataclass
class DiffNetConfig:
    """``STDiff.DiffNet`` with its sub-blocks; ``gru_update`` picks the ConvGRU rule."""

    autoregressive: bool = True
    super_res_training: bool = False
    gru_update: str = "standard"
    MotionEncoder: MotionEncoderConfig = field(default_factory=MotionEncoderConfig)
    DiffUnet: DiffUnetConfig = field(default_factory=DiffUnetConfig)
    Int: IntConfig = field(default_factory=IntConfig)


@dataclass
class DiffusionConfig:
    """``STDiff.Diffusion``."""

    unet_config: dict[str, Any] = MISSING


@dataclass
class STDiffConfig:
    """``STDiff``: the model, as upstream's configs name it."""

    Diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    DiffNet: DiffNetConfig = field(default_factory=DiffNetConfig)


@dataclass
class OptimConfig:
    """AdamW and diffusers' cosine-with-hard-restarts schedule."""

    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.95, 0.999])
    weight_decay: float = 1e-6
    eps: float = 1e-8
    warmup_steps: int = 500
    num_cycles: int = 2


@dataclass
class EvalConfig:
    """Test-time sampling (see :class:`stdiff.module.STDiffModule`)."""

    num_samples: int = 4
    sampler: str = "dpmsolver++"
    num_steps: int = 20
    chunk: int = 3
    bf16: bool = False
    clip_x0: bool = True
    channels_last: bool = True


@dataclass
class ModuleConfig:
    """The ``model`` config group: the arguments of :class:`stdiff.module.STDiffModule`."""

    _target_: str = "stdiff.module.STDiffModule"
    channels: int | None = None
    STDiff: STDiffConfig = field(default_factory=STDiffConfig)
    noise: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    gradient_checkpointing: bool = False
    train_channels_last: bool = False


def stdiff_config(values: dict) -> STDiffConfig:
    """A ``STDiff`` dict as a checked :class:`STDiffConfig` (defaults filled in)."""
    return checked(STDiffConfig, values, "STDiff")


def model_kwargs(name: str, channels: int, *overrides) -> dict:
    """``STDiffModule`` arguments from ``configs/model/<name>.yaml`` read without Hydra (bench,
    tests), checked by the schema; ``overrides`` (dicts) are merged on in order and ``channels``
    stands in for ``${data.channels}``."""
    cfg = OmegaConf.load(Path(__file__).parent / "configs" / "model" / f"{name}.yaml")
    cfg.pop("defaults")
    cfg.channels = channels
    merged = checked(ModuleConfig, OmegaConf.merge(cfg, *overrides), "model")
    kwargs = dataclasses.asdict(merged)
    kwargs.pop("_target_")
    return kwargs
