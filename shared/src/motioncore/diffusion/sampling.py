"""The one denoising loop every package uses.

Classifier-free guidance (Ho & Salimans 2022, eq. 6): ``u + s (c - u)`` with cond and uncond run in
ONE batched forward. Keyframes are injected as clean data at observed entries before every model
call (CondMDI's input replacement, ``x_in = M*x_obs + (1-M)*x_t``) or as noised data
(``injection="noised"``, inpainting-style imputation for models never trained with keyframes).
Reconstruction guidance (Ho et al. 2022, "Video Diffusion Models", eq. 7) corrects the x0
estimate with the gradient of a loss on it:
``x0' = x0 - (w * sqrt(abar_t) / 2) * grad_{x_t} L(x0)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from tqdm.auto import tqdm

from motioncore.diffusion.schedule import NoiseSchedule, _broadcast

Model = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


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
    uncond: Any = None,
    guidance_scale: float = 1.0,
    num_steps: int | None = None,
    sampler: str | None = None,
    keyframes: tuple[torch.Tensor, torch.Tensor] | None = None,
    injection: str = "clean",
    impute_final: bool = True,
    guidance_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
    guidance_weight: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    x_init: torch.Tensor | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Draw samples of ``shape`` from ``model(x_t, t, cond) -> prediction``.

    Args:
        keyframes: ``(values, mask)`` broadcastable to ``shape``; mask is 1 where observed.
        injection: ``clean`` (CondMDI) or ``noised`` (values diffused to the current t).
        impute_final: overwrite observed entries of the result with their values.
        guidance_loss: per-example loss on the x0 estimate for reconstruction guidance; with
            keyframes and no loss given, :func:`keyframe_loss` is used.
        guidance_weight: w of reconstruction guidance; 0 disables it.
        x_init: starting noise (else drawn from ``generator``).
    """
    if injection not in ("clean", "noised"):
        raise ValueError(f"injection={injection!r} is unknown; use 'clean' or 'noised'")
    scheduler = schedule.make_scheduler(sampler)
    scheduler.set_timesteps(num_steps or schedule.num_inference_steps, device=device)
    if x_init is None:
        x_init = torch.randn(shape, generator=generator, dtype=dtype)
    x = x_init.to(device=device, dtype=dtype) * scheduler.init_noise_sigma

    values = mask = None
    if keyframes is not None:
        values, mask = (k.to(device=device, dtype=dtype) for k in keyframes)
        values, mask = torch.broadcast_tensors(values, mask)
        if values.shape != torch.Size(shape):
            raise ValueError(f"keyframes of shape {tuple(values.shape)} do not match {shape}")
        if guidance_loss is None and guidance_weight > 0:
            guidance_loss = lambda x0: keyframe_loss(x0, values, mask)  # noqa: E731

    for step in tqdm(scheduler.timesteps, disable=not progress, desc="sampling", leave=False):
        t = torch.full((shape[0],), int(step), device=device, dtype=torch.long)
        x_in = scheduler.scale_model_input(x, step)
        if mask is not None:
            if injection == "clean":
                observed = values
            else:
                noise = torch.randn(shape, generator=generator, dtype=dtype).to(device)
                observed = schedule.add_noise(values, noise, t)
            x_in = mask * observed + (1 - mask) * x_in
        if guidance_loss is not None and guidance_weight > 0:
            out = _reconstruction_guided(
                model,
                schedule,
                x_in,
                t,
                cond,
                uncond,
                guidance_scale,
                guidance_loss,
                guidance_weight,
                mask,
            )
        else:
            out = guided_output(model, x_in, t, cond, uncond, guidance_scale)
        x = scheduler.step(out, step, x_in, generator=generator).prev_sample

    if mask is not None and impute_final:
        x = mask * values + (1 - mask) * x
    return x


def _reconstruction_guided(
    model, schedule, x_in, t, cond, uncond, scale, loss_fn, weight, mask
) -> torch.Tensor:
    with torch.enable_grad():
        x_req = x_in.detach().requires_grad_(True)
        out = guided_output(model, x_req, t, cond, uncond, scale)
        x0 = schedule.predict_x0(out, x_req, t)
        (grad,) = torch.autograd.grad(loss_fn(x0).sum(), x_req)
    if mask is not None:
        grad = grad * (1 - mask)
    a = _broadcast(schedule.alphas_cumprod, t, x_in)
    x0 = x0.detach() - weight * a.sqrt() / 2 * grad
    return schedule.output_from_x0(x0, x_in, t)
