"""Build the Hydra ``main`` of a package's console scripts."""

from __future__ import annotations

import sys
from collections.abc import Callable

import hydra
from hydra._internal.sources_registry import SourcesRegistry
from hydra.core.plugins import Plugins  # noqa: F401  (initialises Hydra's plugin registry)
from omegaconf import DictConfig, OmegaConf

from motioncore.train.experiments_source import ExperimentsConfigSource
from motioncore.train.runner import run

SourcesRegistry.instance().register(ExperimentsConfigSource)


def _required(key: str, how: str) -> None:
    raise ValueError(f"{key} is required by this experiment: {how}")


# ``key: ${required:key,"how to pass it"}`` in an experiment: a value the user must give on the
# command line. (A plain ``???`` cannot do this: merging ``???`` onto a default keeps the default.)
OmegaConf.register_new_resolver("required", _required, replace=True)


def hydra_entry(
    config_path: str,
    config_name: str,
    fn: Callable[[DictConfig], object] = run,
    argv_filter: Callable[[list[str]], list[str]] | None = None,
    validate: Callable[[DictConfig], None] | None = None,
) -> Callable[[], object]:
    """``main`` for a console script: Hydra parses argv overrides and calls ``fn(cfg)``.

    ``config_path`` is a package resource path such as ``pkg://text_to_pose.configs``.
    ``argv_filter`` rewrites the overrides before Hydra parses them. ``validate(cfg)`` is the
    package's check of a composed config that ``make ... CHECK=1`` runs instead of ``fn``
    (raising an error that names the key and the fix): the checks ``fn`` itself makes where it
    uses those values, done without building anything. Both are kept as ``main.argv_filter``
    and ``main.validate``, so CHECK=1 composes and validates exactly what the script would run.
    """

    @hydra.main(config_path=config_path, config_name=config_name, version_base="1.3")
    def hydra_main(cfg: DictConfig) -> object:
        return fn(cfg)

    def main() -> object:
        if argv_filter is not None:
            sys.argv = [sys.argv[0], *argv_filter(sys.argv[1:])]
        return hydra_main()

    main.argv_filter = argv_filter
    main.validate = validate
    return main
