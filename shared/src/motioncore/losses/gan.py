"""Adversarial losses for single- or multi-scale discriminators.

Every function takes the discriminator logits as one tensor or as a list with one tensor per
scale (e.g. a two-scale patch discriminator, as in IMF, reference imf.md); losses are means
over all logits of a scale, then averaged over scales. Each returns a scalar.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Logits = Tensor | Sequence[Tensor]


def _scales(logits: Logits) -> list[Tensor]:
    scales = [logits] if isinstance(logits, Tensor) else list(logits)
    if not scales:
        raise ValueError("expected at least one tensor of logits")
    return scales


def _paired_scales(real_logits: Logits, fake_logits: Logits) -> list[tuple[Tensor, Tensor]]:
    real, fake = _scales(real_logits), _scales(fake_logits)
    if len(real) != len(fake):
        raise ValueError(f"{len(real)} real scales but {len(fake)} fake scales")
    return list(zip(real, fake))


def hinge_d_loss(real_logits: Logits, fake_logits: Logits) -> Tensor:
    """Hinge discriminator loss ``E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]``.

    Lim & Ye 2017 (Geometric GAN), as used by Miyato et al. 2018 (SN-GAN) and by IMF with a
    two-scale patch discriminator (reference imf.md, losses table).
    """
    pairs = _paired_scales(real_logits, fake_logits)
    losses = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in pairs]
    return torch.stack(losses).mean()


def hinge_g_loss(fake_logits: Logits) -> Tensor:
    """Hinge generator loss ``-E[D(G(z))]`` (Lim & Ye 2017; Miyato et al. 2018)."""
    return torch.stack([-f.mean() for f in _scales(fake_logits)]).mean()


def nonsaturating_d_loss(real_logits: Logits, fake_logits: Logits) -> Tensor:
    """Logistic discriminator loss ``E[softplus(-D(x))] + E[softplus(D(G(z)))]``.

    Goodfellow et al. 2014, eq. 1, written on logits: ``-log sigmoid(l) = softplus(-l)``.
    """
    pairs = _paired_scales(real_logits, fake_logits)
    losses = [F.softplus(-r).mean() + F.softplus(f).mean() for r, f in pairs]
    return torch.stack(losses).mean()


def nonsaturating_g_loss(fake_logits: Logits) -> Tensor:
    """Non-saturating generator loss ``E[softplus(-D(G(z)))] = -E[log sigmoid(D(G(z)))]``.

    The ``-log D(G(z))`` heuristic of Goodfellow et al. 2014, section 3.
    """
    return torch.stack([F.softplus(-f).mean() for f in _scales(fake_logits)]).mean()


def r1_penalty(real_logits: Logits, real_inputs: Tensor | Sequence[Tensor]) -> Tensor:
    """R1 gradient penalty ``E_x[||grad_x D(x)||^2]`` on real data.

    Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?", eq. 9,
    *without* the ``gamma / 2`` factor: multiply by ``gamma / 2`` yourself. The caller must
    call ``real_inputs.requires_grad_()`` before the discriminator forward. The graph is kept
    (``create_graph=True``) so the penalty can be backpropagated.

    Args:
        real_logits: logits on real data, one tensor or one per scale. Patch logits are summed
            per example before differentiation, so each example's gradient is that of its
            summed logits.
        real_inputs: the tensor the logits were computed from, shared by every scale, or one
            tensor per scale when the caller built the pyramid itself.
    """
    logits = _scales(real_logits)
    if isinstance(real_inputs, Tensor):
        inputs = [real_inputs] * len(logits)
    else:
        inputs = list(real_inputs)
    if len(inputs) != len(logits):
        raise ValueError(f"{len(logits)} logit scales but {len(inputs)} input tensors")
    penalties = []
    for logit, inp in zip(logits, inputs):
        if not inp.requires_grad:
            raise ValueError("real_inputs must require grad: call .requires_grad_() before D")
        (grad,) = torch.autograd.grad(logit.sum(), inp, create_graph=True)
        penalties.append(grad.square().reshape(grad.shape[0], -1).sum(dim=1).mean())
    return torch.stack(penalties).mean()
