"""Fixtures shared by every test folder (test modules cannot import each other)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "tests" / "shared" / "toy"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture
def toy_pipeline(monkeypatch) -> Path:
    """Put the toy diffusion pipeline on sys.path (and PYTHONPATH for child processes)."""
    monkeypatch.syspath_prepend(str(TOY))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TOY), os.environ.get("PYTHONPATH", "")]))
    return TOY


@pytest.fixture
def compose():
    """Compose a config from a folder with motioncore's shared groups on the search path."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    def _compose(config_dir: Path, name: str, overrides: list[str] = ()):
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(config_dir), version_base="1.3"):
            return hydra_compose(name, overrides=list(overrides))

    yield _compose
    GlobalHydra.instance().clear()
