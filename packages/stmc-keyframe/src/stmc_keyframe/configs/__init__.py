"""stmc-keyframe's Hydra configs. Importing this package (Hydra does, to read
``pkg://stmc_keyframe.configs``) registers ``diffusion/schema``, the typed schema
``diffusion/default.yaml`` starts from (:class:`stmc_keyframe.schema.DiffusionConfig`)."""

from hydra.core.config_store import ConfigStore

from stmc_keyframe.schema import DiffusionConfig

ConfigStore.instance().store(group="diffusion", name="schema", node=DiffusionConfig)
