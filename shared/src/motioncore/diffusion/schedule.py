"""Noise schedules, training targets and loss weights on top of diffusers schedulers.

diffusers owns the beta schedules and the per-step update rules; this module only adds what it
does not have: one config object that builds every scheduler consistently, training targets for
each prediction type, conversions between prediction types, and Min-SNR-gamma weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    SchedulerMixin,
)

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
BETA_SCHEDULES = {
    "linear": "linear",
    "scaled_linear": "scaled_linear",
    "cosine": "squaredcos_cap_v2",
}
SAMPLERS = ("ddpm", "ddim", "dpmsolver++")


def _broadcast(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Gather ``values[t]`` and reshape to broadcast against ``like`` (any number of dims)."""
    out = values.to(like.device)[t.to(like.device).long()].to(like.dtype)
    return out.reshape(-1, *([1] * (like.ndim - 1)))


@dataclass
class NoiseSchedule:
    """One place for the diffusion hyperparameters shared by training and sampling.

    Args:
        num_train_timesteps: T of the forward process.
        beta_schedule: ``linear``, ``scaled_linear`` or ``cosine`` (Nichol & Dhariwal 2021, eq. 17,
            diffusers' ``squaredcos_cap_v2``).
        prediction_type: ``epsilon``, ``sample`` (x0) or ``v_prediction`` (Salimans & Ho 2022).
        rescale_zero_snr: rescale betas to zero terminal SNR (Lin et al. 2024, Alg. 1).
        sampler: default sampler, one of ``ddpm``, ``ddim``, ``dpmsolver++``.
        num_inference_steps: default number of sampling steps.
        min_snr_gamma: gamma of Min-SNR weighting (Hang et al. 2023); ``None`` disables it.
        noise_offset: offset-noise strength (constant per example and channel).
    """

    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction_type: str = "epsilon"
    rescale_zero_snr: bool = False
    sampler: str = "ddpm"
    num_inference_steps: int = 50
    min_snr_gamma: float | None = None
    noise_offset: float = 0.0

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type={self.prediction_type!r} is unknown; use one of {PREDICTION_TYPES}"
            )
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(
                f"beta_schedule={self.beta_schedule!r} is unknown; use one of "
                f"{tuple(BETA_SCHEDULES)}"
            )
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r} is unknown; use one of {SAMPLERS}")
        if self.rescale_zero_snr and self.prediction_type == "epsilon":
            raise ValueError(
                "rescale_zero_snr=True makes x0 unrecoverable from an epsilon prediction at the "
                "last timestep (SNR 0); use prediction_type=v_prediction or sample"
            )
        self._train = DDPMScheduler(**self._common())
        self.alphas_cumprod = self._train.alphas_cumprod.clone()

    def _common(self) -> dict:
        return dict(
            num_train_timesteps=self.num_train_timesteps,
            beta_schedule=BETA_SCHEDULES[self.beta_schedule],
            beta_start=self.beta_start,
            beta_end=self.beta_end,
            prediction_type=self.prediction_type,
            rescale_betas_zero_snr=self.rescale_zero_snr,
        )

    def make_scheduler(self, sampler: str | None = None) -> SchedulerMixin:
        """A fresh diffusers scheduler (stateful during sampling, so never shared)."""
        name = sampler or self.sampler
        common = self._common()
        # Zero-terminal-SNR needs "trailing" spacing so sampling starts at t = T-1 (Lin et al. §3.3).
        spacing = "trailing" if self.rescale_zero_snr else "leading"
        if name == "ddpm":
            return DDPMScheduler(**common, clip_sample=False, timestep_spacing=spacing)
        if name == "ddim":
            return DDIMScheduler(
                **common, clip_sample=False, set_alpha_to_one=True, timestep_spacing=spacing
            )
        if name == "dpmsolver++":
            return DPMSolverMultistepScheduler(
                **common,
                algorithm_type="dpmsolver++",
                solver_order=2,
                timestep_spacing="trailing" if self.rescale_zero_snr else "linspace",
            )
        raise ValueError(f"sampler={name!r} is unknown; use one of {SAMPLERS}")

    # ---- forward process -------------------------------------------------------------------
    def sample_timesteps(
        self,
        batch: int,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Uniform integer timesteps in [0, T)."""
        t = torch.randint(0, self.num_train_timesteps, (batch,), generator=generator)
        return t.to(device)

    def sample_noise(
        self, x0: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Gaussian noise shaped like ``x0``, plus offset noise constant over dims >= 2."""
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        if self.noise_offset > 0:
            shape = x0.shape[:2] + (1,) * (x0.ndim - 2)
            offset = torch.randn(shape, generator=generator, dtype=x0.dtype).to(x0.device)
            noise = noise + self.noise_offset * offset
        return noise

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) = N(sqrt(abar_t) x0, (1 - abar_t) I) (Ho et al. 2020, eq. 4); any shape.

        diffusers' ``add_noise`` of the training DDPM scheduler."""
        return self._train.add_noise(x0, noise, t)

    def training_target(
        self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """What the network regresses: epsilon, x0, or v = sqrt(abar) eps - sqrt(1-abar) x0
        (diffusers' ``get_velocity``)."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "sample":
            return x0
        return self._train.get_velocity(x0, noise, t)

    # ---- conversions -----------------------------------------------------------------------
    def predict_x0(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 implied by a network output of this schedule's prediction type."""
        a = _broadcast(self.alphas_cumprod, t, x_t)
        if self.prediction_type == "epsilon":
            return (x_t - (1 - a).sqrt() * output) / a.sqrt()
        if self.prediction_type == "sample":
            return output
        return a.sqrt() * x_t - (1 - a).sqrt() * output

    def output_from_x0(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`predict_x0`: the network output that implies ``x0`` at ``x_t``."""
        a = _broadcast(self.alphas_cumprod, t, x_t)
        if self.prediction_type == "sample":
            return x0
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        if self.prediction_type == "epsilon":
            return eps
        return a.sqrt() * eps - (1 - a).sqrt() * x0

    # ---- loss weights ----------------------------------------------------------------------
    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """abar_t / (1 - abar_t): diffusers' ``training_utils.compute_snr``, which is not imported
        because that module loads transformers (tens of seconds on a busy CPU)."""
        a = self.alphas_cumprod.to(t.device)[t.long()]
        return a / (1 - a)

    def loss_weights(self, t: torch.Tensor) -> torch.Tensor:
        """Per-example weights [B]: Min-SNR-gamma (Hang et al. 2023, eq. 9) or ones.

        The weight on the x0-space MSE is min(SNR, gamma); expressed for the regressed target it
        becomes min(SNR, gamma) / SNR for epsilon and min(SNR, gamma) / (SNR + 1) for v.
        """
        if self.min_snr_gamma is None:
            return torch.ones(t.shape, device=t.device)
        snr = self.snr(t)
        clipped = snr.clamp(max=self.min_snr_gamma)
        if self.prediction_type == "sample":
            return clipped
        if self.prediction_type == "v_prediction":
            return clipped / (snr + 1)
        return clipped / snr.clamp(min=1e-8)
