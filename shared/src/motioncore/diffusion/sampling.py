"""The one denoising loop every package uses.

Classifier-free guidance (Ho & Salimans 2022, eq. 6): ``u + s (c - u)`` with cond and uncond run in
ONE batched forward. Keyframes are injected as clean data at observed entries before every model
call (CondMDI's input replacement, ``x_in = M*x_obs + (1-M)*x_t``) or as noised data
(``injection="noised"``, inpainting-style imputation for models never trained with keyframes).
Reconstruction guidance (Ho et al. 2022, "Video Diffusion Models", eq. 7) corrects the x0
estimate with the gradient of a loss on it:
``x0' = x0 - (w * sqrt(abar_t) / 2) * grad_{x_t} L(x0)``.

Per step: ``x_in`` (keyframes injected) -> guided model output -> optional callback with the x0
estimate -> ``scheduler.step`` -> next ``x``. A NaN/inf model output or next ``x`` stops the loop
with :class:`NonFiniteSample` naming the step, so no caller writes a sample made of NaNs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import SchedulerMixin
from tqdm.auto import tqdm

from motioncore.diffusion.schedule import NoiseSchedule, _broadcast

Model = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
StepCallback = Callable[[int, int, torch.Tensor, torch.Tensor], None]
INJECTIONS = ("clean", "noised")


@dataclass(frozen=True)
class Guidance:
    """How the model output is steered at every step.

    Args:
        uncond: unconditional conditioning for classifier-free guidance (None: no CFG).
        scale: CFG scale s of ``u + s (c - u)``; 1 runs the conditional model alone.
        loss: per-example loss ``[B]`` on the x0 estimate for reconstruction guidance; with
            keyframes and no loss given, :func:`keyframe_loss` is used.
        weight: w of reconstruction guidance; 0 disables it.
    """

    uncond: Any = None
    scale: float = 1.0
    loss: Callable[[torch.Tensor], torch.Tensor] | None = None
    weight: float = 0.0


@dataclass(frozen=True)
class Keyframes:
    """Observed entries the sample must pass through.

    Args:
        values, mask: broadcastable to the sample shape; mask is 1 where observed.
        injection: ``clean`` (CondMDI) or ``noised`` (values diffused to the current t).
        impute_final: overwrite observed entries of the result with their values.
    """

    values: torch.Tensor
    mask: torch.Tensor
    injection: str = "clean"
    impute_final: bool = True

    def __post_init__(self) -> None:
        if self.injection not in INJECTIONS:
            raise ValueError(f"injection={self.injection!r} is unknown; use one of {INJECTIONS}")


class NonFiniteSample(FloatingPointError):
    """Raised by :func:`sample` when an input, the model output or the sample is NaN or inf."""


def require_finite(x: torch.Tensor, what: str, fix: str) -> None:
    """Raise :class:`NonFiniteSample` naming ``what`` and ``fix`` when ``x`` holds NaN or inf."""
    if bool(torch.isfinite(x).all()):
        return
    kind = "NaN" if bool(torch.isnan(x).any()) else "infinite"
    raise NonFiniteSample(f"sampling stopped: {what} is {kind}; nothing was written. {fix}")


def _likely_causes(guidance: Guidance, dtype: torch.dtype) -> str:
    causes = []
    if guidance.uncond is not None and guidance.scale != 1.0:
        causes.append(f"a too large guidance scale ({guidance.scale}; typical 1-7.5)")
    if guidance.weight > 0:
        causes.append(f"a too large reconstruction guidance weight ({guidance.weight})")
    if dtype in (torch.float16, torch.bfloat16):
        causes.append(f"{dtype} overflow (sample in float32)")
    causes.append("non-finite weights in the checkpoint (evaluate an earlier one) or conditioning")
    return f"Likely cause: {'; or '.join(causes)}. Fix that argument and rerun."


def concat_cond(a: Any, b: Any) -> Any:
    """Concatenate two conditionings (tensors, or dicts/lists of them) along the batch axis."""
    if a is None:
        return None
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b], dim=0)
    if isinstance(a, Mapping):
        return {k: concat_cond(a[k], b[k]) for k in a}
    if isinstance(a, list | tuple):
        return type(a)(concat_cond(x, y) for x, y in zip(a, b, strict=True))
    if a == b:
        return a
    raise TypeError(
        f"cannot batch conditioning values {a!r} and {b!r}; use tensors or equal scalars"
    )


def guided_output(
    model: Model, x: torch.Tensor, t: torch.Tensor, cond: Any, uncond: Any, scale: float
) -> torch.Tensor:
    """Model output with classifier-free guidance; a single forward when ``scale != 1``."""
    if scale == 1.0 or uncond is None:
        return model(x, t, cond)
    out = model(torch.cat([x, x]), torch.cat([t, t]), concat_cond(cond, uncond))
    c, u = out.chunk(2)
    return u + scale * (c - u)


def keyframe_loss(x0: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Default reconstruction-guidance loss: ||M * (x_obs - x0)||^2 summed per example."""
    return ((values - x0) * mask).pow(2).flatten(1).sum(1)


@torch.no_grad()
def sample(
    model: Model,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    cond: Any = None,
    *,
    guidance: Guidance | None = None,
    keyframes: Keyframes | None = None,
    num_steps: int | None = None,
    sampler: str | SchedulerMixin | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    x_init: torch.Tensor | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Draw samples of ``shape`` from ``model(x_t, t, cond) -> prediction``.

    The model returns the schedule's prediction type; a model that estimates x0 directly (e.g. a
    stitched collage of crops) wraps it with :meth:`NoiseSchedule.output_from_x0`.

    Args:
        guidance: CFG and reconstruction guidance (:class:`Guidance`); None runs ``model`` plainly.
        keyframes: observed entries (:class:`Keyframes`).
        sampler: a name of :data:`SAMPLERS` (default: the schedule's), or a diffusers scheduler
            built by the caller (its ``set_timesteps`` is called here).
        x_init: starting noise (else drawn from ``generator``).
        callback: ``callback(step, t, x_t, x0)`` after every model call: the step index, the
            integer timestep, the model input ``x_t`` (keyframes injected) and the x0 estimate.
    """
    guidance = guidance or Guidance()
    if isinstance(sampler, SchedulerMixin):
        scheduler = sampler
    else:
        scheduler = schedule.make_scheduler(sampler)
    scheduler.set_timesteps(num_steps or schedule.num_inference_steps, device=device)
    if x_init is None:
        x_init = torch.randn(shape, generator=generator, dtype=dtype)
    x = x_init.to(device=device, dtype=dtype) * scheduler.init_noise_sigma
    require_finite(x, "the starting noise x_init", "Pass a finite x_init.")

    values = mask = None
    loss_fn = guidance.loss
    if keyframes is not None:
        values, mask = (
            k.to(device=device, dtype=dtype) for k in (keyframes.values, keyframes.mask)
        )
        values, mask = torch.broadcast_tensors(values, mask)
        require_finite(
            values,
            "keyframes.values",
            "Pass finite values everywhere, 0 where the mask is 0 (a NaN times mask 0 is NaN).",
        )
        if values.shape != torch.Size(shape):
            raise ValueError(f"keyframes of shape {tuple(values.shape)} do not match {shape}")
        if loss_fn is None and guidance.weight > 0:
            loss_fn = lambda x0: keyframe_loss(x0, values, mask)  # noqa: E731
    reconstruct = loss_fn is not None and guidance.weight > 0

    n = len(scheduler.timesteps)
    for i, step in enumerate(
        tqdm(scheduler.timesteps, disable=not progress, desc="sampling", leave=False)
    ):
        t = torch.full((shape[0],), int(step), device=device, dtype=torch.long)
        x_in = scheduler.scale_model_input(x, step)
        if mask is not None:
            if keyframes.injection == "clean":
                observed = values
            else:
                noise = torch.randn(shape, generator=generator, dtype=dtype).to(device)
                observed = schedule.add_noise(values, noise, t)
            x_in = mask * observed + (1 - mask) * x_in
        if reconstruct:
            out = _reconstruction_guided(model, schedule, x_in, t, cond, guidance, loss_fn, mask)
        else:
            out = guided_output(model, x_in, t, cond, guidance.uncond, guidance.scale)
        where = f"at step {i + 1}/{n} (timestep {int(step)})"
        require_finite(out, f"the model output {where}", _likely_causes(guidance, out.dtype))
        if callback is not None:
            callback(i, int(step), x_in, schedule.predict_x0(out, x_in, t))
        x = scheduler.step(out, step, x_in, generator=generator).prev_sample
        require_finite(
            x, f"x_t after the scheduler step {where}", _likely_causes(guidance, out.dtype)
        )

    if mask is not None and keyframes.impute_final:
        x = mask * values + (1 - mask) * x
    return x


def _reconstruction_guided(
    model: Model,
    schedule: NoiseSchedule,
    x_in: torch.Tensor,
    t: torch.Tensor,
    cond: Any,
    guidance: Guidance,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    mask: torch.Tensor | None,
) -> torch.Tensor:
    with torch.enable_grad():
        x_req = x_in.detach().requires_grad_(True)
        out = guided_output(model, x_req, t, cond, guidance.uncond, guidance.scale)
        x0 = schedule.predict_x0(out, x_req, t)
        (grad,) = torch.autograd.grad(loss_fn(x0).sum(), x_req)
    if mask is not None:
        grad = grad * (1 - mask)
    a = _broadcast(schedule.alphas_cumprod, t, x_in)
    x0 = x0.detach() - guidance.weight * a.sqrt() / 2 * grad
    return schedule.output_from_x0(x0, x_in, t)
