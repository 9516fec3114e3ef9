"""Every stdiff experiment composes, and kitti_range keeps upstream's key names and values."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

import motioncore.train.entry  # noqa: F401  (registers the experiments:// config source)


def _compose(name, overrides):
    GlobalHydra.instance().clear()
    with initialize_config_module("stdiff.configs", version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.mark.parametrize("exp", ["quickstart", "paper", "kitti_range"])
@pytest.mark.parametrize("name", ["train", "eval", "sample"])
def test_experiments_compose(exp, name, monkeypatch, repo_root):
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(repo_root / "experiments"))
    cfg = _compose(name, [f"experiment={exp}", "paths.output_dir=/tmp/x"])
    assert cfg.model._target_ == "stdiff.module.STDiffModule"
    assert cfg.data.To >= 2


def test_kitti_range_keys_match_upstream(monkeypatch, repo_root):
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(repo_root / "experiments"))
    cfg = _compose("train", ["experiment=kitti_range", "paths.output_dir=/tmp/x"])
    unet = cfg.model.STDiff.Diffusion.unet_config
    assert list(unet.sample_size) == [64, 512] and "in_channels" not in unet  # from the data
    assert cfg.model.channels == cfg.data.channels == 1
    assert unet.m_channels == 256 and unet.layers_per_block == 2
    assert list(unet.down_block_types) == ["DownBlock2D"] + ["AttnDownBlock2D"] * 4
    assert list(unet.up_block_types) == ["AttnUpBlock2D"] * 4 + ["UpBlock2D"]
    net = cfg.model.STDiff.DiffNet
    assert net.autoregressive and not net.super_res_training
    me = net.MotionEncoder
    assert (
        me.learn_diff_image,
        list(me.image_size),
        me.model_channels,
        me.n_downs,
    ) == (
        True,
        [64, 512],
        64,
        2,
    )
    assert (net.DiffUnet.n_layers, net.DiffUnet.nonlinear) == (2, "tanh")
    i = net.Int
    assert (i.sde, i.method, i.noise_type, i.sde_type, i.dt, i.rtol, i.atol, i.adaptive) == (
        True,
        "euler_heun",
        "diagonal",
        "stratonovich",
        0.1,
        1e-3,
        1e-3,
        False,
    )
    noise = cfg.model.noise
    assert (noise.num_train_timesteps, noise.beta_schedule, noise.prediction_type) == (
        1000,
        "linear",
        "epsilon",
    )
    assert list(cfg.model.optim.betas) == [0.95, 0.999]


def test_unknown_key_is_rejected(monkeypatch, repo_root):
    from hydra.errors import ConfigCompositionException

    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(repo_root / "experiments"))
    with pytest.raises(ConfigCompositionException, match="not_a_knob"):
        _compose("train", ["experiment=quickstart", "model.STDiff.DiffNet.not_a_knob=1"])


def test_misspelt_key_in_an_experiment_fails_at_composition(monkeypatch, repo_root, tmp_path):
    """The model group is typed (stdiff.schema): a yaml file's typo is refused while composing,
    naming the key, instead of reaching the model."""
    from hydra.errors import ConfigCompositionException

    exps = tmp_path / "stdiff"
    exps.mkdir()
    (exps / "typo.yaml").write_text(
        "# @package _global_\nmodel:\n  STDiff:\n    DiffNet:\n      Int:\n        dtt: 0.5\n"
    )
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(tmp_path))
    with pytest.raises(ConfigCompositionException, match=r"model\.STDiff\.DiffNet\.Int\.dtt"):
        _compose("train", ["experiment=typo"])
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(repo_root / "experiments"))
    cfg = _compose("train", ["experiment=quickstart", "model.STDiff.DiffNet.Int.dt=0.5"])
    assert cfg.model.STDiff.DiffNet.Int.dt == 0.5


def test_sample_reads_input_folders_and_times(monkeypatch, repo_root, tmp_path):
    import numpy as np

    from stdiff.data.formats import write_range_sequence
    from stdiff.sample import future_times, observed_clips

    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(repo_root / "experiments"))
    for i in range(2):
        write_range_sequence(tmp_path / f"seq{i}", np.full((4, 8, 32), 10.0 * (i + 1), np.float32))
    common = ["experiment=kitti_range", "paths.output_dir=/tmp/x", "data.image_size=[8,32]"]
    cfg = _compose("sample", [*common, f"input={tmp_path}"])
    vo = observed_clips(cfg)
    assert vo.shape == (2, 3, 1, 8, 32)
    assert vo[1, 0, 0, 0, 0] == pytest.approx(20 / 85 * 2 - 1)
    one = observed_clips(_compose("sample", [*common, f"input={tmp_path / 'seq0'}"]))
    assert one.shape == (1, 3, 1, 8, 32)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        observed_clips(_compose("sample", [*common, f"input={tmp_path / 'nope'}"]))
    assert future_times(3, 4, 2).tolist() == [2.5, 3.0, 3.5, 4.0]
    with pytest.raises(ValueError, match="fps"):
        future_times(3, 4, 0)
