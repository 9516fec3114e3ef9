"""Experiments override the package's top-level defaults (base.yaml's own keys come before the
experiment), and an experiment can require a value the user must pass (``${required:...}``)."""

from __future__ import annotations

import pytest
from omegaconf.errors import InterpolationResolutionError


def test_finetune_requires_init_from_and_takes_it_from_the_command_line(compose_package):
    cfg = compose_package("text-to-pose", ["experiment=finetune"])
    with pytest.raises(
        InterpolationResolutionError, match='init_from is required.*ARGS="init_from='
    ):
        cfg.get("init_from")
    cfg = compose_package("text-to-pose", ["experiment=finetune", "init_from=/w/last.ckpt"])
    assert cfg.init_from == "/w/last.ckpt" and cfg.model.pretrain is False


def test_without_the_experiment_init_from_defaults_to_none(compose_package):
    assert compose_package("text-to-pose", ["experiment=quickstart"]).init_from is None
