"""Config values as plain Python (what modules store in hparams and pass to builders), and
dicts checked against a package's structured (dataclass) schema."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


def plain(value: Any) -> Any:
    """A Hydra ``DictConfig``/``ListConfig`` as a resolved dict/list; any other value unchanged."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def checked(schema: type, values: Any, where: str) -> Any:
    """``values`` merged onto the dataclass ``schema`` (its defaults filled in) as a ``schema``
    instance. An unknown key, a missing required one or a value of the wrong type raises
    ``ValueError`` naming ``<where>.<key>`` and, where known, the valid keys: the same check
    Hydra makes at composition for a config group that starts from a registered schema, for
    dicts that reach a constructor without Hydra (importers, tests, benchmarks)."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except OmegaConfBaseException as e:
        key = f"{where}.{e.full_key}" if getattr(e, "full_key", None) else where
        node = getattr(e, "object_type", None)
        valid = (
            f"; valid keys: {[f.name for f in dataclasses.fields(node)]}"
            if dataclasses.is_dataclass(node)
            else ""
        )
        raise ValueError(f"{key}: {str(e).splitlines()[0]}{valid}") from None
