"""ARGS reach every sweep trial; the global batch splits over the world size or is per device."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from torch.utils.data import TensorDataset

from motioncore.train import BaseDataModule

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import sweep as sweep_tool  # noqa: E402

TOY = REPO / "tests" / "shared" / "toy" / "toy_train.py"
GRID = REPO / "experiments" / "text-to-pose" / "sweeps" / "lr_width_grid.yaml"


def test_fixed_args_replace_swept_values_and_follow_the_swept_arguments():
    spec = sweep_tool.load_spec(GRID)
    fixed = sweep_tool.with_fixed(spec, ["model.hidden=64", "trainer.max_steps=50"])
    trials = sweep_tool.trials(fixed)
    assert {t["model.hidden"] for t in trials} == {"64"} and len(trials) == 2
    cmd = sweep_tool.trial_command(fixed, trials[0], [])
    assert "model.hidden=64" in cmd and "trainer.max_steps=50" in cmd
    # a fixed key that is not swept comes after every swept one, so Hydra keeps it
    extra = sweep_tool.with_fixed(spec, ["seed=7"])
    cmd = sweep_tool.trial_command(extra, sweep_tool.trials(extra)[0], [])
    assert cmd.index("seed=7") > max(cmd.index(a) for a in cmd if a.startswith("model."))


def test_sweep_check_composes_every_trial_with_args(capsys):
    sweep_tool.main(["local", str(GRID), "--check", "--", "trainer.max_steps=50"])
    assert "ok: 4 trial(s) of text-to-pose compose" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="trainer.max_stepz"):
        sweep_tool.main(["local", str(GRID), "--check", "--", "trainer.max_stepz=50"])


def test_sweep_local_passes_args_to_every_trial(tmp_path, run_cmd):
    spec = {
        "program": str(TOY),
        "method": "grid",
        "metric": {"name": "val/loss", "goal": "minimize"},
        "parameters": {"model.hidden": {"values": [-1, 16]}, "model.lr": {"values": [0.003]}},
        "command": ["${env}", "python", "${program}", "logger=none", "${args_no_hyphens}"],
    }
    path = tmp_path / "toy" / "sweeps" / "grid.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "results"
    args = ["model.hidden=8", "trainer.max_steps=16", "test=false"]
    res = run_cmd(
        [sys.executable, "tools/sweep.py", "local", str(path), "--out", str(out), "--", *args],
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    rows = list(csv.DictReader(open(out / "results.csv")))
    # hidden=-1 would fail to build: ARGS replaced the swept value in every trial
    assert [(r["model.hidden"], r["status"]) for r in rows] == [("8", "ok")]
    trial = yaml.safe_load((out / "trial_000" / ".hydra" / "overrides.yaml").read_text())
    assert set(args) <= set(trial) and trial[-2:] == args[1:]


class Split(BaseDataModule):
    def __init__(self, world: int, **kw):
        super().__init__(**kw)
        self.train_set = self.val_set = TensorDataset(torch.zeros(48, 1))
        cpu = SimpleNamespace(root_device=torch.device("cpu"))
        self.trainer = SimpleNamespace(world_size=world, strategy=cpu)


def test_global_batch_splits_over_ranks_and_per_device_batch_overrides_it():
    assert Split(4, batch_size=8).train_dataloader().batch_size == 2
    with pytest.raises(ValueError, match=r"data.batch_size=6 .* world size 4.*per_device"):
        Split(4, batch_size=6).train_dataloader()
    per_device = Split(16, batch_size=6, eval_batch_size=1, per_device_batch_size=3)
    assert per_device.train_dataloader().batch_size == 3
    assert per_device.val_dataloader().batch_size == 3
