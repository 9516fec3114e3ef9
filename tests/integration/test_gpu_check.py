"""`make gpu-check`: the dry run (every config the GPU run composes + the static device check)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import gpu_check  # noqa: E402


def test_dry_run_composes_everything_and_finds_no_hard_coded_device(tmp_path, run_cmd):
    res = run_cmd(
        [sys.executable, "tools/gpu_check.py", "--dry-run", "--out", str(tmp_path)], timeout=600
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    for package in gpu_check.PLANS:
        for part in ("train", "eval", "sample"):
            assert f"[dry-run] {package} {part}: composed" in res.stdout
    assert "text-to-pose ddp resume: composed" in res.stdout


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("x = model.cuda()", "'.cuda()'"),
        ("x = t.to('cuda:0')", "'cuda:0'"),
        ("a = t[0].numpy()", "'.numpy()' without '.cpu()'"),
        (
            "g = torch.Generator()\nz = torch.randn(3, generator=g, device=x.device)",
            "CPU torch.Generator",
        ),
    ],
)
def test_static_check_flags_device_hard_coding(source, problem):
    findings = gpu_check.check_source(source, "snippet.py")
    assert len(findings) == 1 and problem in findings[0].problem, findings


def test_static_check_accepts_device_agnostic_code():
    source = "\n".join(
        [
            "y = model.to(x.device)",
            "a = t[0].detach().cpu().numpy()",
            "c = t.detach().cpu()",
            "d = ((c + 1) * 2).movedim(0, 1)",
            "e = d.numpy()",
            "z = torch.randn(3, generator=g).to(x.device)",
            "w = torch.randn(3, generator=g, device='cpu')",
            "ok = torch.cuda.is_available()",
            "dev = 'cuda' if ok else 'cpu'",
        ]
    )
    assert gpu_check.check_source(source) == []


def test_ddp_batch_divides_by_the_gpu_count(tmp_path):
    overrides = gpu_check.ddp_overrides(tmp_path, gpus=3, global_batch=32, steps=20, ckpt=None)
    assert "data.batch_size=30" in overrides and "trainer.devices=3" in overrides
    resume = gpu_check.ddp_overrides(tmp_path, 3, 32, 30, ckpt=tmp_path / "last.ckpt")
    assert f"ckpt_path={tmp_path / 'last.ckpt'}" in resume


def test_real_run_without_a_gpu_names_the_dry_run(tmp_path, run_cmd):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    res = run_cmd([sys.executable, "tools/gpu_check.py", "--out", str(tmp_path)], timeout=120)
    assert res.returncode != 0 and "DRY_RUN=1" in res.stderr
