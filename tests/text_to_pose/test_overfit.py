from __future__ import annotations

import torch

from text_to_pose.data.datamodule import TextPoseDataModule
from text_to_pose.module import TextToPoseModule


def test_overfits_one_batch(tiny_corpus):
    """On one fixed batch of 8 recordings, the pose loss (fixed steps t, eval mode) falls at
    least 5x in 120 Adam steps."""
    dm = TextPoseDataModule(root=str(tiny_corpus.parent), fps=12.5, max_frames=96)
    dm.setup()
    batch = dm.train_set.collate(dm.train_set.items[:8])
    torch.manual_seed(0)
    module = TextToPoseModule(hidden=64, heads=4, ff=128, text_layers=1, pose_layers=2,
                              max_frames=96, max_text_len=24, lr=3e-3, text_drop_prob=0.0,
                              text_encoder_dropout=0.0)  # fmt: skip
    optimiser = module.configure_optimizers()

    def held_out_loss() -> float:
        module.eval()
        with torch.no_grad():
            value = module.losses(batch, torch.Generator().manual_seed(0))["pose"].item()
        module.train()
        return value

    before = held_out_loss()
    for step in range(120):
        out = module.losses(batch, torch.Generator().manual_seed(step))
        optimiser.zero_grad()
        out["pose"].backward()
        optimiser.step()
    after = held_out_loss()
    assert after < before / 5, (before, after)
