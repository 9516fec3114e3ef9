"""2-process CPU DDP (gloo) of real packages: both ranks end with identical parameters."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "tests" / "integration" / "plugins"

TINY = {
    "text-to-pose": [
        "data.synthetic.n_train=16",
        "data.synthetic.n_val=4",
        "data.synthetic.n_test=4",
        "data.batch_size=4",
        "data.eval_batch_size=4",
        "model.hidden=32",
        "model.heads=2",
        "model.ff=64",
        "model.text_layers=1",
        "model.pose_layers=1",
        "model.max_frames=96",
    ],
    # GAN training with manual optimisation: two optimisers must stay in sync across ranks
    "imf": [
        "data.image_size=32",
        "data.batch_size=4",
        "data.eval_batch_size=4",
        "data.pairs_per_clip=2",
        "data.eval_pairs_per_clip=2",
        "data.synthetic.frames=6",
        "data.synthetic.train_clips=3",
        "data.synthetic.val_clips=1",
        "data.synthetic.test_clips=1",
        "model.generator.feature_channels=[8,16]",
        "model.generator.motion_channels=[8,16]",
        "model.generator.stem_channels=8",
        "model.generator.token_channels=[8,16]",
        "model.generator.token_dim=8",
        "model.generator.mlp_dim=16",
        "model.generator.heads=2",
        "model.discriminator.ndf=8",
        "model.discriminator.n_layers=2",
        "model.gan_start_step=1",
        "model.sample_clips=1",
    ],
}


@pytest.mark.ddp
@pytest.mark.parametrize("ddp_package", sorted(TINY))
def test_two_rank_cpu_ddp_keeps_ranks_identical(ddp_package, tmp_path, run_cmd):
    package = ddp_package
    module = f"{package.replace('-', '_')}.train"
    cmd = [
        sys.executable,
        "-m",
        module,
        "experiment=quickstart",
        "trainer=ddp_cpu",
        "trainer.max_steps=3",
        "trainer.limit_val_batches=0",
        "logger=none",
        "test=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"paths.data_dir={tmp_path / 'data'}",
        "+callbacks.rank_dump._target_=rank_dump.RankDump",
        f"+callbacks.rank_dump.dirpath={tmp_path / 'ranks'}",
        *TINY[package],
    ]
    env = {
        "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")]),
        "MOTIONCORE_EXPERIMENTS": str(REPO / "experiments"),
    }
    res = run_cmd(cmd, timeout=900, env=env)
    assert res.returncode == 0, res.stderr[-4000:]
    a, b = (torch.load(tmp_path / "ranks" / f"params_rank{r}.pt") for r in (0, 1))
    assert a.numel() > 0 and torch.equal(a, b)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] >= 3
