"""A tiny conditional diffusion model used to prove motioncore.train.run end to end.

Each sequence is a sinusoid whose frequency is set by its class; the denoiser is a small MLP that
predicts x0 from (x_t, t, class). Not a test module: tests put this folder on sys.path.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import TensorDataset

from motioncore.diffusion import Guidance, NoiseSchedule, sample
from motioncore.losses import masked_mse
from motioncore.masking import length_mask
from motioncore.train import BaseDataModule, round_seed

T, F, CLASSES = 16, 2, 3


def make_sequences(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    time = torch.linspace(0, 2 * math.pi, T)
    freq = (labels + 1).float()[:, None]
    x = torch.stack([torch.sin(freq * time), torch.cos(freq * time)], -1)
    return x + 0.02 * torch.randn(x.shape, generator=g), labels


class ToyData(BaseDataModule):
    def setup(self, stage: str | None = None) -> None:
        self.train_set = TensorDataset(*make_sequences(256, 0))
        self.val_set = TensorDataset(*make_sequences(32, 1))
        self.test_set = TensorDataset(*make_sequences(32, 2))


class ToyDenoiser(nn.Module):
    def __init__(self, hidden: int = 64, steps: int = 50):
        super().__init__()
        self.label = nn.Embedding(CLASSES + 1, hidden)  # last index = unconditional
        self.time = nn.Embedding(steps, hidden)
        self.net = nn.Sequential(
            nn.Linear(T * F + hidden, hidden), nn.SiLU(), nn.Linear(hidden, T * F)
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x.flatten(1), (self.label(label) + self.time(t))], -1)
        return self.net(h).view_as(x)


class ToyModule(pl.LightningModule):
    def __init__(self, hidden: int = 64, steps: int = 50, lr: float = 3e-3, nan_at_step: int = -1):
        super().__init__()
        self.save_hyperparameters()
        self.schedule = NoiseSchedule(
            num_train_timesteps=steps,
            beta_schedule="cosine",
            prediction_type="sample",
            num_inference_steps=10,
        )
        self.net = ToyDenoiser(hidden, steps)

    def training_step(self, batch, _):
        x0, label = batch
        noise = torch.randn_like(x0)
        t = self.schedule.sample_timesteps(len(x0), x0.device)
        pred = self.net(self.schedule.add_noise(x0, noise, t), t, label)
        mask = length_mask(torch.full((len(x0),), T), T)[..., None]
        loss = masked_mse(pred, self.schedule.training_target(x0, noise, t), mask).mean()
        if self.global_step == self.hparams.nan_at_step:
            loss = loss * float("nan")
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, _):
        x0, label = batch
        t = torch.full((len(x0),), 5, dtype=torch.long)
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
        pred = self.net(self.schedule.add_noise(x0, noise, t), t, label)
        self.log("val/loss", (pred - x0).pow(2).mean())

    def test_step(self, batch, _):
        x0, label = batch
        out = sample(
            self.net,
            self.schedule,
            tuple(x0.shape),
            cond=label,
            guidance=Guidance(uncond=torch.full_like(label, CLASSES), scale=1.0),
            generator=torch.Generator().manual_seed(round_seed(self, 0)),
        )
        self.log("test/mse", (out - x0).pow(2).mean())
        self.log("baseline/mse", x0.pow(2).mean())

    def on_train_end(self):
        """Each rank dumps its flat parameters, so DDP tests can check the ranks agree."""
        flat = torch.cat([p.detach().flatten() for p in self.parameters()])
        torch.save(flat, f"{self.trainer.default_root_dir}/params_rank{self.global_rank}.pt")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
