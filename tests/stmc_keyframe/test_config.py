"""The ``diffusion`` schema: a misspelt key or a wrongly typed value fails by name, both when
Hydra composes the config and when a dict is given directly."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException

from stmc_keyframe.schema import diffusion_config


@pytest.fixture
def composed(repo_root, monkeypatch, tmp_path):
    """Compose ``train`` with the repository's experiments plus ``typo`` (a misspelt key)."""
    exps = tmp_path / "experiments" / "stmc-keyframe"
    exps.mkdir(parents=True)
    for exp in (repo_root / "experiments" / "stmc-keyframe").glob("*.yaml"):
        (exps / exp.name).write_text(exp.read_text())
    (exps / "typo.yaml").write_text("# @package _global_\ndiffusion:\n  smoth_sigma: 2.0\n")
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(tmp_path / "experiments"))
    from motioncore.train import hydra_entry  # noqa: F401  (registers experiments://)

    def _compose(*overrides: str, experiment: str = "quickstart"):
        GlobalHydra.instance().clear()
        with initialize_config_module("stmc_keyframe.configs", version_base="1.3"):
            return compose("train", overrides=[f"experiment={experiment}", *overrides])

    yield _compose
    GlobalHydra.instance().clear()


def test_composition_types_the_diffusion_node(composed):
    cfg = composed("diffusion.smooth_sigma=3")
    assert cfg.diffusion.smooth_sigma == 3.0 and isinstance(cfg.diffusion.smooth_sigma, float)
    # without the schema, an experiment file would add the misspelt key silently
    with pytest.raises(ConfigCompositionException, match="smoth_sigma"):
        composed(experiment="typo")
    with pytest.raises(ConfigCompositionException, match="num_steps"):
        composed("diffusion.num_steps=many")


def test_direct_dicts_are_checked_the_same_way(composed):
    from omegaconf import OmegaConf

    d = OmegaConf.to_container(composed().diffusion, resolve=True)
    assert diffusion_config(d) == d
    with pytest.raises(ValueError, match=r"diffusion\.smoth_sigma.*valid keys"):
        diffusion_config({**d, "smoth_sigma": 2.0})
    missing = {k: v for k, v in d.items() if k != "foot_lock"}
    with pytest.raises(ValueError, match="diffusion.foot_lock"):
        diffusion_config(missing)
