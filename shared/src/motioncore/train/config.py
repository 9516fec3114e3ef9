"""Config values as plain Python: what modules store in hparams and pass to builders."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


def plain(value: Any) -> Any:
    """A Hydra ``DictConfig``/``ListConfig`` as a resolved dict/list; any other value unchanged."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value
