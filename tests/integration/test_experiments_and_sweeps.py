"""Every experiment composes; every sweep spec is valid and its first trial composes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import sweep as sweep_tool

REPO = Path(__file__).resolve().parents[2]


def test_every_package_has_quickstart_and_paper(package):
    for name in ("quickstart", "paper"):
        path = REPO / "experiments" / package / f"{name}.yaml"
        assert path.is_file(), f"missing {path}"
        text = path.read_text()
        assert text.startswith("# @package _global_"), (
            f"{path} must start with '# @package _global_'"
        )
        assert re.search(r"make train MODEL=|-train ", text), (
            f"{path}: header must say how to run it"
        )


def test_experiment_composes(experiment_file, compose_package, tmp_path):
    package = experiment_file.parent.name
    cfg = compose_package(
        package, [f"experiment={experiment_file.stem}", f"paths.output_dir={tmp_path}"]
    )
    assert cfg.package == package
    for key in ("data", "model", "trainer"):
        OmegaConf.to_container(cfg[key], resolve=True)


def test_every_package_has_a_grid_and_a_capped_sweep(package):
    specs = [
        yaml.safe_load(p.read_text())
        for p in (REPO / "experiments" / package / "sweeps").glob("*.yaml")
    ]
    methods = {s["method"] for s in specs}
    assert "grid" in methods, f"{package} needs a grid sweep"
    assert methods & {"random", "bayes"}, f"{package} needs a random or bayes sweep with run_cap"


def test_sweep_is_valid_and_first_trial_composes(sweep_file, compose_package, logged_by_package):
    package = sweep_file.parents[1].name
    spec = sweep_tool.load_spec(sweep_file)
    assert logged_by_package(package, spec["metric"]["name"]), spec["metric"]["name"]
    first = sweep_tool.trials(spec)[0]
    cmd = sweep_tool.trial_command(spec, first, [])
    assert f"{package.replace('-', '_')}.train" in " ".join(cmd)
    overrides = [a for a in cmd if "=" in a and not a.startswith("-")]
    cfg = compose_package(package, overrides)
    for key, value in first.items():
        assert OmegaConf.select(cfg, key, throw_on_missing=False) is not None or value is None, key


def test_invalid_specs_are_rejected(tmp_path):
    good = {
        "program": "x",
        "method": "grid",
        "metric": {"name": "val/loss", "goal": "minimize"},
        "parameters": {"model.lr": {"values": [1, 2]}},
        "command": ["python", "-m", "x.train", "${args_no_hyphens}"],
    }
    for broken, message in [
        ({**good, "method": "hyperband"}, "method"),
        ({k: v for k, v in good.items() if k != "metric"}, "missing"),
        ({**good, "parameters": {"+model.new": {"values": [1]}}}, "no '\\+'"),
        ({**good, "method": "random"}, "run_cap"),
        ({**good, "command": ["python", "x.py"]}, "args_no_hyphens"),
    ]:
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(broken))
        with pytest.raises(ValueError, match=message):
            sweep_tool.validate(yaml.safe_load(path.read_text()), path)


def test_grid_and_random_trials():
    spec = {
        "method": "grid",
        "parameters": {"a": {"values": [1, 2]}, "b": {"values": ["x", "y"]}, "c": {"value": 0}},
    }
    assert len(sweep_tool.trials(spec)) == 4
    rnd = {
        "method": "random",
        "run_cap": 3,
        "parameters": {
            "lr": {"min": 1e-4, "max": 1e-2, "distribution": "log_uniform_values"},
            "n": {"min": 1, "max": 4},
        },
    }
    a, b = sweep_tool.trials(rnd, seed=1), sweep_tool.trials(rnd, seed=1)
    assert a == b and len(a) == 3
    assert all(1e-4 <= t["lr"] <= 1e-2 and 1 <= t["n"] <= 4 for t in a)
