"""An importer's checkpoint outside any run directory carries the overrides of its architecture:
make eval/sample rebuild that architecture from the checkpoint's ``hydra_overrides``."""

from __future__ import annotations

import sys

import torch


def test_eval_and_sample_apply_the_checkpoint_overrides(tmp_path, run_cmd):
    ckpt = tmp_path / "imported.ckpt"
    torch.save(
        {"state_dict": {}, "hyper_parameters": {},
         "hydra_overrides": ["model.hidden=48", "model.heads=4"]},
        ckpt,
    )  # fmt: skip
    for command in ("eval", "sample"):
        res = run_cmd(
            [sys.executable, "tools/run.py", command, "--model", "text-to-pose",
             "--ckpt", str(ckpt), "--dry-run", "--", "steps=3" if command == "sample" else "seed=1"],
            timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        printed = res.stdout.splitlines()[0]
        assert "model.hidden=48" in printed and "model.heads=4" in printed, printed
        assert printed.index("model.hidden=48") < printed.index(f"ckpt_path={ckpt}")


def test_a_checkpoint_in_a_run_dir_uses_the_run_overrides(tmp_path, run_cmd):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- model.hidden=40\n- trainer.max_steps=9\n")
    (run / "checkpoints").mkdir()
    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": {}, "hydra_overrides": ["model.hidden=48"]}, ckpt)
    res = run_cmd(
        [sys.executable, "tools/run.py", "eval", "--model", "text-to-pose", "--ckpt", str(ckpt),
         "--dry-run"],
        timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    printed = res.stdout.splitlines()[0]
    assert "model.hidden=40" in printed and "model.hidden=48" not in printed
    assert "trainer.max_steps=9" not in printed
