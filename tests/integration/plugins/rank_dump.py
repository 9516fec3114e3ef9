"""A callback the DDP tests add through config: each rank saves its final flat parameters, or
what stopped it."""

from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback


class RankDump(Callback):
    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)

    def on_train_end(self, trainer, pl_module):
        flat = torch.cat([p.detach().flatten().cpu() for p in pl_module.parameters()])
        self.dirpath.mkdir(parents=True, exist_ok=True)
        torch.save(flat, self.dirpath / f"params_rank{trainer.global_rank}.pt")

    def on_exception(self, trainer, pl_module, exception):
        """Each rank records how it stopped, so preemption tests can check every rank."""
        self.dirpath.mkdir(parents=True, exist_ok=True)
        line = f"{type(exception).__name__} at global step {trainer.global_step}\n"
        (self.dirpath / f"exception_rank{trainer.global_rank}.txt").write_text(line)
