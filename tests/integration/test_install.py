"""One package built with `uv build` installs into a fresh venv with the motioncore wheel and trains."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "text-to-pose"


def uv() -> list[str]:
    return [shutil.which("uv")] if shutil.which("uv") else ["python3", "-m", "uv"]


def sh(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, **kw)
    assert res.returncode == 0, f"{cmd}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.mark.slow
def test_single_package_installs_from_wheels_and_trains(tmp_path):
    dist = tmp_path / "dist"
    portable = {**os.environ, "MOTIONCORE_REQUIREMENT": "motioncore"}
    for name in ("motioncore", PACKAGE):
        sh(
            [*uv(), "build", "--package", name, "--wheel", "--out-dir", str(dist)],
            cwd=REPO,
            env=portable,
        )
    wheels = sorted(str(p) for p in dist.glob("*.whl"))
    assert len(wheels) == 2
    venv = tmp_path / "venv"
    sh([*uv(), "venv", "--python", "3.11", str(venv)])
    sh([*uv(), "pip", "install", "--python", str(venv / "bin" / "python"), *wheels])
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "MOTIONCORE_EXPERIMENTS": str(REPO / "experiments"),
    }
    env.pop("VIRTUAL_ENV", None)
    script = venv / "bin" / f"{PACKAGE}-train"
    sh(
        [
            str(script),
            "experiment=quickstart",
            "trainer.max_steps=2",
            "logger=none",
            "test=false",
            f"hydra.run.dir={work / 'run'}",
            f"paths.data_dir={work / 'data'}",
        ],
        cwd=work,
        env=env,
    )
    assert (work / "run" / "checkpoints" / "last.ckpt").is_file()
    configs = sh(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.resources as r; print(r.files('motioncore.configs') / 'trainer' / 'cpu.yaml')",
        ]
    )
    assert Path(configs.stdout.strip()).is_file()


@pytest.mark.slow
def test_path_install_requirement_points_at_shared(tmp_path):
    """`pip install packages/<name>` must find motioncore in ../../shared, not on an index."""
    import zipfile

    sh(
        [*uv(), "build", "--package", PACKAGE, "--wheel", "--out-dir", str(tmp_path)],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "MOTIONCORE_REQUIREMENT"},
    )
    (wheel,) = tmp_path.glob("*.whl")
    meta = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert f"Requires-Dist: motioncore @ {(REPO / 'shared').as_uri()}" in text
