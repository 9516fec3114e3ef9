"""Every package's train, eval and sample configs: one composition (base.yaml), every experiment
composes, eval/sample add only what differs, debug=fast has no logger, quickstarts instantiate."""

from __future__ import annotations

import importlib
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {
    "text-to-pose": "text_to_pose",
    "stmc-keyframe": "stmc_keyframe",
    "stdiff": "stdiff",
    "imf": "imf",
    "champ-guidance": "champ_guidance",
}
CASES = [
    (pkg, exp.stem)
    for pkg in PACKAGES
    for exp in sorted((REPO / "experiments" / pkg).glob("*.yaml"))
]


def configs(pkg: str) -> Path:
    return REPO / "packages" / pkg / "src" / PACKAGES[pkg] / "configs"


def code_lines(path: Path) -> list[str]:
    lines = (line.split(" #")[0].rstrip() for line in path.read_text().splitlines())
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture
def composer(compose, monkeypatch):
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(REPO / "experiments"))
    from motioncore.train import hydra_entry  # noqa: F401  (registers experiments://)

    def _compose(pkg: str, name: str, *overrides: str):
        importlib.import_module(f"{PACKAGES[pkg]}.configs")  # registers structured schemas
        return compose(configs(pkg), name, ["paths.output_dir=/tmp/x", *overrides])

    return _compose


@pytest.mark.parametrize("pkg", PACKAGES)
def test_eval_and_sample_inherit_train_and_stay_short(pkg):
    for name in ("train", "eval", "sample"):
        lines = code_lines(configs(pkg) / f"{name}.yaml")
        assert lines[0].replace(" ", "") in ("defaults:[base,_self_]", "defaults:"), name
        assert len(lines) <= 15, f"{name}.yaml has {len(lines)} lines: keep only what differs"
    assert not any("searchpath" in line for line in code_lines(configs(pkg) / "base.yaml"))


@pytest.mark.parametrize("pkg,experiment", CASES)
def test_every_experiment_composes_for_train_eval_and_sample(composer, pkg, experiment):
    train = composer(pkg, "train", f"experiment={experiment}")
    evaluation = composer(pkg, "eval", f"experiment={experiment}")
    sampling = composer(pkg, "sample", f"experiment={experiment}")
    assert train.task_name == "train" and train.train and train.test
    assert evaluation.task_name == "eval" and not evaluation.train and evaluation.test
    assert sampling.task_name == "sample"
    for cfg in (evaluation, sampling):
        assert cfg.package == train.package == pkg
        assert OmegaConf.to_container(cfg.model) == OmegaConf.to_container(train.model)
        assert OmegaConf.to_container(cfg.data) == OmegaConf.to_container(train.data)


@pytest.mark.parametrize("pkg", PACKAGES)
def test_debug_fast_has_no_logger(composer, pkg):
    assert composer(pkg, "train").logger
    for name in ("train", "eval"):
        cfg = composer(pkg, name, "debug=fast", "experiment=quickstart")
        assert cfg.logger is None and cfg.trainer.max_steps == 5


@pytest.mark.parametrize("pkg", PACKAGES)
def test_quickstart_data_and_model_instantiate(composer, pkg, tmp_path):
    cfg = composer(pkg, "train", "experiment=quickstart", f"paths.data_dir={tmp_path}")
    data = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    assert data.__class__.__module__.startswith(PACKAGES[pkg])
    assert sum(p.numel() for p in model.parameters()) > 0
