"""stdiff's Hydra configs. Importing this package (Hydra does, to read ``pkg://stdiff.configs``)
registers ``model/schema``, the typed schema every ``model/*.yaml`` starts from
(:class:`stdiff.schema.ModuleConfig`)."""

from hydra.core.config_store import ConfigStore

from stdiff.schema import ModuleConfig

ConfigStore.instance().store(group="model", name="schema", node=ModuleConfig)
