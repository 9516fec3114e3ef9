"""Hydra config source that serves ``experiments/<package>/<name>.yaml`` as ``experiment=<name>``.

The repository keeps experiments outside the packages (one folder per package, next to the sweep
specs), but Hydra's file source would expose them as group ``<package>`` rather than
``experiment``. This source maps the group ``experiment`` onto that folder, so a package config
declares ``experiment: null`` in its defaults and lists ``experiments://<package>`` in
``hydra.searchpath``. The experiments folder is ``$MOTIONCORE_EXPERIMENTS`` or the first
``experiments/`` found walking up from the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigResult, ConfigSource

GROUP = "experiment"


def experiments_root() -> Path | None:
    env = os.environ.get("MOTIONCORE_EXPERIMENTS")
    if env:
        return Path(env)
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "experiments").is_dir():
            return folder / "experiments"
    return None


class ExperimentsConfigSource(ConfigSource):
    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path)
        root = experiments_root()
        self.folder = (root / self.path) if root is not None else None

    @staticmethod
    def scheme() -> str:
        return "experiments"

    def _file(self, config_path: str) -> Path | None:
        if self.folder is None or not config_path.startswith(f"{GROUP}/"):
            return None
        return self.folder / self._normalize_file_name(config_path[len(GROUP) + 1 :])

    def load_config(self, config_path: str) -> ConfigResult:
        from hydra.plugins.config_source import ConfigLoadError
        from omegaconf import OmegaConf

        file = self._file(config_path)
        if file is None or not file.is_file():
            raise ConfigLoadError(f"Experiment not found: {file or config_path}")
        text = file.read_text(encoding="utf-8")
        return ConfigResult(
            config=OmegaConf.create(OmegaConf.load(file)),
            path=f"{self.scheme()}://{self.folder}",
            provider=self.provider,
            header=ConfigSource._get_header_dict(text[:512]),
        )

    def available(self) -> bool:
        return self.folder is not None and self.folder.is_dir()

    def is_group(self, config_path: str) -> bool:
        return self.available() and config_path in ("", GROUP)

    def is_config(self, config_path: str) -> bool:
        file = self._file(config_path)
        return file is not None and file.is_file()

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        if not self.available():
            return []
        if config_path == "":
            return [GROUP] if results_filter in (None, ObjectType.GROUP) else []
        if config_path != GROUP or results_filter == ObjectType.GROUP:
            return []
        return sorted(f"{GROUP}/{p.stem}" for p in self.folder.glob("*.yaml"))
