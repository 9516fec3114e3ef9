"""Every package installs alone: its third-party imports are declared (fast, static), and its
wheel installs into a fresh venv with the motioncore wheel and trains (slow)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(pyproject: Path) -> set[str]:
    """Distribution names of ``dependencies`` and every optional extra."""
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {_norm(m.group(0)) for r in reqs if (m := re.match(r"[A-Za-z][\w.-]*", r))}


def top_level_imports(src: Path) -> dict[str, Path]:
    """Absolute top-level module names imported anywhere under ``src`` -> a file importing it."""
    found = {}
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def test_every_third_party_import_is_declared(package):
    """`pip install packages/<name>` brings what the source imports: each third-party module
    belongs to a distribution that the package or motioncore declares (not one that merely
    arrives with another dependency)."""
    allowed = declared(REPO / "packages" / package / "pyproject.toml")
    allowed |= declared(REPO / "shared" / "pyproject.toml")
    src = REPO / "packages" / package / "src"
    local = {p.stem for p in src.iterdir()} | {"motioncore"}
    dists = packages_distributions()
    undeclared = []
    for module, path in top_level_imports(src).items():
        if module in sys.stdlib_module_names or module in local:
            continue
        owners = {_norm(d) for d in dists.get(module, [])}
        if not owners & allowed:
            names = ", ".join(sorted(owners)) or "no installed distribution"
            undeclared.append(f"{module} ({names}; imported by {path.relative_to(REPO)})")
    assert not undeclared, f"{package} imports undeclared modules: {undeclared}"


def test_the_import_check_sees_an_undeclared_module(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("import yaml\nfrom .x import y\nimport os.path\n")
    assert set(top_level_imports(tmp_path)) == {"yaml", "os"}
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "p"\ndependencies = ["{env:X:motioncore @ file:///s}", "PyYAML>=6"]\n'
        '[project.optional-dependencies]\nclip = ["open_clip_torch"]\n'
    )
    assert declared(tmp_path / "pyproject.toml") == {"pyyaml", "open-clip-torch"}
    assert {_norm(d) for d in packages_distributions()["yaml"]} == {"pyyaml"}


def uv() -> list[str]:
    return [shutil.which("uv")] if shutil.which("uv") else ["python3", "-m", "uv"]


def sh(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, **kw)
    assert res.returncode == 0, f"{cmd}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.mark.slow
def test_single_package_installs_from_wheels_and_trains(tmp_path, package):
    dist = tmp_path / "dist"
    portable = {**os.environ, "MOTIONCORE_REQUIREMENT": "motioncore"}
    for name in ("motioncore", package):
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
    script = venv / "bin" / f"{package}-train"
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
def test_path_install_requirement_points_at_shared(tmp_path, package):
    """`pip install packages/<name>` must find motioncore in ../../shared, not on an index."""
    import zipfile

    sh(
        [*uv(), "build", "--package", package, "--wheel", "--out-dir", str(tmp_path)],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "MOTIONCORE_REQUIREMENT"},
    )
    (wheel,) = tmp_path.glob("*.whl")
    meta = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert f"Requires-Dist: motioncore @ {(REPO / 'shared').as_uri()}" in text
