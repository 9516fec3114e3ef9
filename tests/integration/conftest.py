"""Helpers for integration tests: run the runner and package configs the way make does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def packages() -> list[str]:
    return sorted(p.parent.name for p in (REPO / "packages").glob("*/pyproject.toml"))


def experiment_files() -> list[Path]:
    return sorted((REPO / "experiments").glob("*/*.yaml"))


def sweep_files() -> list[Path]:
    return sorted((REPO / "experiments").glob("*/sweeps/*.yaml"))


@pytest.fixture
def compose_package(monkeypatch):
    """Compose ``<package>``'s train config with overrides, as its console script would."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    import motioncore.train.entry  # noqa: F401  (registers the experiments:// config source)

    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(REPO / "experiments"))

    def _compose(package: str, overrides: list[str], name: str = "train"):
        GlobalHydra.instance().clear()
        module = f"{package.replace('-', '_')}.configs"
        with initialize_config_module(module, version_base="1.3"):
            return compose(name, overrides=overrides, return_hydra_config=False)

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def logged_by_package():
    """``(package, "val/x") -> bool``: does the package's source log that metric name?"""

    def _logged(package: str, metric: str) -> bool:
        stage, _, name = metric.partition("/")
        src = "\n".join(p.read_text() for p in (REPO / "packages" / package / "src").rglob("*.py"))
        return stage in ("train", "val", "test", "baseline") and (
            metric in src or f"/{name}" in src or f'"{name}"' in src
        )

    return _logged


@pytest.fixture
def run_cmd():
    def _run(cmd: list[str], timeout: int = 600, env: dict | None = None, **kw):
        full_env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
        return subprocess.run(
            cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout, **kw
        )

    return _run


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


def pytest_generate_tests(metafunc):
    """Parametrize over what exists in the repo: ``package``, ``experiment_file``, ``sweep_file``."""
    if "package" in metafunc.fixturenames:
        metafunc.parametrize("package", packages())
    if "experiment_file" in metafunc.fixturenames:
        files = experiment_files()
        metafunc.parametrize(
            "experiment_file", files, ids=[f"{p.parent.name}/{p.stem}" for p in files]
        )
    if "sweep_file" in metafunc.fixturenames:
        files = sweep_files()
        metafunc.parametrize(
            "sweep_file", files, ids=[f"{p.parents[1].name}/{p.stem}" for p in files]
        )
