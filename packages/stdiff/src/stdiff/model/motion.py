"""Temporal dynamics encoder of STDiff: motion encoder, ConvGRU context, neural SDE future motion.

Data flow (reference stdiff.md, "Data flow"): observed frames -> frame differences ->
:class:`MotionEncoder` -> :class:`ConvGRUCell` over the observed steps -> context ``m`` ->
:class:`MotionSDE` integrated with ``torchsde.sdeint`` to any (fractional) future time.
"""

from __future__ import annotations

import torch
import torchsde
from torch import Tensor, nn

from stdiff.schema import DiffNetConfig, DiffUnetConfig, IntConfig, MotionEncoderConfig


class MotionEncoder(nn.Module):
    """MCnet-style encoder (reference: "MotionEncoder"): 5x5 conv, (n_downs-1) x [pool, 5x5
    conv doubling channels], pool, 7x7 conv doubling; ``model_channels * 2**n_downs`` channels at
    ``H / 2**n_downs``."""

    def __init__(self, cfg: MotionEncoderConfig):
        super().__init__()
        if cfg.n_downs < 1:
            raise ValueError(f"MotionEncoder.n_downs must be >= 1, got {cfg.n_downs}")
        ch = cfg.model_channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, ch, 5, padding=2), nn.ReLU()]
        for _ in range(cfg.n_downs - 1):
            layers += [nn.MaxPool2d(2), nn.Conv2d(ch, ch * 2, 5, padding=2), nn.ReLU()]
            ch *= 2
        layers += [nn.MaxPool2d(2), nn.Conv2d(ch, ch * 2, 7, padding=3), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvGRUCell(nn.Module):
    """Convolutional GRU (Cho et al. 2014, eqs. 5-8, with 3x3 convolutions).

    ``update="standard"``: ``h' = (1 - u) * h + u * h~``. ``update="upstream"`` reproduces the
    official code's ``h' = (1 - u) * h + h~`` (reference: Pitfalls, ConvGRU update).
    """

    def __init__(self, channels: int, update: str = "standard"):
        super().__init__()
        if update not in ("standard", "upstream"):
            raise ValueError(f"STDiff.DiffNet.gru_update={update!r}; use 'standard' or 'upstream'")
        self.update = update
        self.gates = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1)
        self.candidate = nn.Conv2d(2 * channels, channels, 3, padding=1)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        u, r = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
        cand = torch.tanh(self.candidate(torch.cat([x, r * h], 1)))
        if self.update == "upstream":
            return (1 - u) * h + cand
        return (1 - u) * h + u * cand


class SDEFuncNet(nn.Module):
    """Autonomous conv net used for the drift f and the diffusion g (upstream OdeSdeFuncNet):
    conv, n_layers x [act, conv], act, zero-initialised conv, so f = g = 0 at initialisation."""

    def __init__(self, channels: int, cfg: DiffUnetConfig):
        super().__init__()
        acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU}
        if cfg.nonlinear not in acts:
            raise ValueError(f"DiffUnet.nonlinear={cfg.nonlinear!r}; use one of {sorted(acts)}")
        act = acts[cfg.nonlinear]
        layers: list[nn.Module] = [nn.Conv2d(channels, channels, 3, padding=1)]
        for _ in range(cfg.n_layers):
            layers += [act(), nn.Conv2d(channels, channels, 3, padding=1)]
        last = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers += [act(), last]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MotionSDE(nn.Module):
    """dm = f(m) dt + g(m) o dW (Stratonovich, diagonal noise), on the flattened motion state.

    torchsde integrates states of shape [batch, dim]; ``shape`` restores [C, h, w] for the convs.
    g ends in tanh, so the per-element noise scale is bounded in (-1, 1) (reference: "Diffusion g").
    """

    def __init__(self, channels: int, cfg: DiffUnetConfig, int_cfg: IntConfig):
        super().__init__()
        self.noise_type = int_cfg.noise_type
        self.sde_type = int_cfg.sde_type
        self.drift = SDEFuncNet(channels, cfg)
        self.diffusion = SDEFuncNet(channels, cfg) if int_cfg.sde else None
        self.shape: tuple[int, ...] = ()

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        return self.drift(y.view(-1, *self.shape)).flatten(1)

    def g(self, t: Tensor, y: Tensor) -> Tensor:
        if self.diffusion is None:
            return torch.zeros_like(y)
        return torch.tanh(self.diffusion(y.view(-1, *self.shape))).flatten(1)


class TemporalDynamics(nn.Module):
    """Upstream ``DiffModel``: context encoding of observed frames and SDE future prediction."""

    def __init__(self, cfg: DiffNetConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.MotionEncoder.out_channels
        self.channels = ch
        self.encoder = MotionEncoder(cfg.MotionEncoder)
        self.gru = ConvGRUCell(ch, cfg.gru_update)
        self.sde = MotionSDE(ch, cfg.DiffUnet, cfg.Int)

    def context_encode(self, vo: Tensor, idx_o: Tensor) -> Tensor:
        """Observed frames [B, To, C, H, W] at times [B, To] -> context [B, Cm, h, w].

        With ``learn_diff_image`` the inputs are finite-difference velocities
        ``(x_i - x_{i-1}) / (t_i - t_{i-1})``: equal to upstream's frame differences for unit
        spacing, and correct for unevenly spaced observations (upstream ignores ``idx_o``).
        """
        if vo.ndim != 5:
            raise ValueError(f"observed frames must be [B, To, C, H, W], got {tuple(vo.shape)}")
        b, to = vo.shape[:2]
        if self.cfg.MotionEncoder.learn_diff_image:
            if to < 2:
                raise ValueError(f"learn_diff_image needs To >= 2 observed frames, got {to}")
            gaps = (idx_o[:, 1:] - idx_o[:, :-1]).to(vo.dtype)
            if (gaps <= 0).any():
                raise ValueError("observed times idx_o must be strictly increasing")
            inputs = (vo[:, 1:] - vo[:, :-1]) / gaps[..., None, None, None]
        else:
            inputs = vo
        feats = self.encoder(inputs.flatten(0, 1)).unflatten(0, (b, inputs.shape[1]))
        h = torch.zeros_like(feats[:, 0])
        for i in range(feats.shape[1]):
            h = self.gru(feats[:, i], h)
        return h

    def future_predict(self, m: Tensor, offsets: Tensor, entropy: int | None = None) -> Tensor:
        """Integrate the SDE from the last observed time (offset 0) to ``offsets`` [B, K] > 0.

        Each example may ask for its own times: the solver runs once on the sorted union of all
        requested times (torchsde shares ``ts`` over the batch) and each example gathers its own.
        One Brownian path per example; ``entropy`` seeds it. Returns [B, K, Cm, h, w].
        """
        if offsets.ndim != 2 or offsets.shape[0] != m.shape[0]:
            raise ValueError(
                f"offsets must be [B, K] with B={m.shape[0]}, got {tuple(offsets.shape)}"
            )
        if (offsets <= 0).any():
            raise ValueError("future times must lie after the last observed time")
        cfg = self.cfg.Int
        grid, index = torch.unique(offsets.detach().float().cpu(), sorted=True, return_inverse=True)
        ts = torch.cat([grid.new_zeros(1), grid]).to(m.device)
        self.sde.shape = tuple(m.shape[1:])
        y0 = m.flatten(1)
        bm = torchsde.BrownianInterval(
            t0=0.0,
            t1=float(ts[-1]),
            size=y0.shape,
            dtype=y0.dtype,
            device=y0.device,
            entropy=entropy,
            levy_area_approximation="none",
        )
        solver = torchsde.sdeint_adjoint if cfg.use_adjoint else torchsde.sdeint
        kw = {"adjoint_params": tuple(self.sde.parameters())} if cfg.use_adjoint else {}
        path = solver(
            self.sde,
            y0,
            ts,
            bm=bm,
            method=cfg.method,
            dt=cfg.dt,
            rtol=cfg.rtol,
            atol=cfg.atol,
            adaptive=cfg.adaptive,
            **kw,
        )[1:]  # [len(grid), B, D]
        b = torch.arange(m.shape[0], device=m.device)[:, None]
        picked = path[index.to(m.device), b]  # [B, K, D]
        return picked.view(m.shape[0], offsets.shape[1], *m.shape[1:])
