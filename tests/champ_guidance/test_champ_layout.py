"""CHAMP's own data layout, validation before training, sampling with a subset of guidance
types, sampler-knob ranges and the sd15 / checkpoint config."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import champ_guidance.train  # noqa: F401  (registers the experiments:// config source)
from champ_guidance.data.dataset import ChampDataModule, ClipDataset
from champ_guidance.data.layout import DataLayoutError, frame_file, write_image

CHAMP_TYPES = ["depth", "normal", "semantic_map", "dwpose"]


def write_champ_layout(root, clips=("c0", "c1"), frames=5, size=16, seed=0):
    rng = np.random.default_rng(seed)
    for clip in clips:
        for i in range(frames):
            name = f"{i:04d}.png"
            write_image(
                root / clip / "images" / name, rng.integers(0, 255, (size, size, 3), np.uint8)
            )
            for gtype in CHAMP_TYPES:
                write_image(
                    root / clip / gtype / name, rng.integers(0, 255, (size, size, 3), np.uint8)
                )
            mask = np.zeros((size, size), np.uint8)
            mask[:, : size // 2] = 255
            write_image(root / clip / "mask" / name, mask)
    return root


def champ_dataset(root, **kw):
    args = dict(
        guidance_types=CHAMP_TYPES,
        guidance_input_channels=[3, 3, 3, 3],
        resolution=16,
        guidance_resolution=16,
        sequence_length=3,
    )
    args.update(kw)
    return ClipDataset(root, **args)


def test_champ_layout_is_read_with_masked_semantic_maps(tmp_path):
    root = write_champ_layout(tmp_path / "champ")
    ds = champ_dataset(root, fps=25.0)
    assert [r.name for r in ds.records] == ["c0", "c1"] and len(ds) == 2 * 3
    item = ds[0]
    assert item["frames"].shape == (3, 3, 16, 16) and item["fps"] == 25.0
    for gtype in CHAMP_TYPES:
        g = item["guidance"][gtype]
        assert g.shape == (3, 3, 16, 16) and 0 <= g.min() and g.max() <= 1
    # the mask blacks out the semantic map's right half (upstream's mask_to_bkgd), only there
    assert item["guidance"]["semantic_map"][..., 8:].abs().max() == 0
    assert item["guidance"]["depth"][..., 8:].abs().max() > 0
    # the reference defaults to the clip's first frame
    torch.testing.assert_close(item["reference"], item["frames"][0], atol=1e-2, rtol=0)


def test_champ_layout_errors_name_the_folder(tmp_path):
    root = write_champ_layout(tmp_path / "champ")
    (root / "c1" / "normal" / "0004.png").unlink()
    with pytest.raises(DataLayoutError, match=r"c1/normal has 4 frames but .*c1/images has 5"):
        champ_dataset(root)
    with pytest.raises(DataLayoutError, match="set its guidance_input_channels entry to 3"):
        champ_dataset(root, guidance_types=["depth"], guidance_input_channels=[4])


def test_invalid_pose_json_fails_when_the_dataset_is_built(make_layout, tmp_path):
    root = make_layout(tmp_path / "data", frames=6)
    bad = frame_file(root / "poses" / "b", 5, ".json")
    bad.write_text("{not json")
    with pytest.raises(DataLayoutError, match=str(bad)):
        ClipDataset(
            root,
            guidance_types=["music", "pose"],
            guidance_input_channels=[3, 6],
            resolution=16,
            guidance_resolution=16,
            sequence_length=2,
        )


def test_a_tiny_champ_folder_trains(tmp_path, make_net_kwargs):
    from champ_guidance.module import ChampModule

    root = write_champ_layout(tmp_path / "champ", clips=("c0", "c1", "c2"))
    dm = ChampDataModule(
        train_data_dir=str(root),
        synthetic_dir=str(tmp_path / "unused"),
        guidance_types=CHAMP_TYPES,
        guidance_input_channels=[3, 3, 3, 3],
        resolution=16,
        guidance_resolution=16,
        sequence_length=2,
        eval_sequence_length=2,
        batch_size=2,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    kw = make_net_kwargs(guidance_types=CHAMP_TYPES, guidance_input_channels=[3, 3, 3, 3])
    schedule = dict(num_train_timesteps=1000, prediction_type="v_prediction")
    module = ChampModule(net=kw, schedule=schedule, learning_rate=1e-3)
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    torch.manual_seed(0)
    loss = module.training_step(batch, 0)
    loss.backward()
    grads = [p.grad for p in module.net.guidance_encoders["dwpose"].parameters()]
    assert torch.isfinite(loss) and all(g is not None for g in grads)
    opt.step()


def test_sampling_knobs_are_range_checked(make_net_kwargs):
    from champ_guidance.module import ChampModule

    schedule = dict(num_train_timesteps=1000)
    for bad, message in (
        (dict(num_inference_steps=0), "num_inference_steps=0 must be >= 1"),
        (dict(num_inference_steps=-3), "num_inference_steps=-3 must be >= 1"),
        (dict(context_overlap=24), r"context_overlap=24 must be in \[0, context_window=24\)"),
    ):
        with pytest.raises(ValueError, match=message):
            ChampModule(net=make_net_kwargs(), schedule=schedule, **bad)
    module = ChampModule(net=make_net_kwargs(), schedule=schedule)
    reference = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="num_inference_steps=0"):
        module.generate(reference, {"music": torch.zeros(1, 2, 3)}, num_steps=0)


def sample_cfg(compose, config_dir, tmp_path, **values):
    cfg = compose(config_dir, "sample", [f"{k}={v}" for k, v in values.items()])
    OmegaConf.set_struct(cfg, False)
    return cfg


@pytest.fixture
def config_dir(repo_root):
    return repo_root / "packages" / "champ-guidance" / "src" / "champ_guidance" / "configs"


def test_music_only_sampling_drops_the_pose_term_with_a_note(compose, config_dir, tmp_path, caplog):
    from champ_guidance.data.audio import synth_track, write_wav
    from champ_guidance.sample import animation_inputs

    audio, _ = synth_track(120, 1.2, 0.1, np.random.default_rng(0))
    write_wav(tmp_path / "song.wav", audio)
    write_image(tmp_path / "me.png", np.full((20, 24, 3), 128, np.uint8))
    cfg = sample_cfg(
        compose,
        config_dir,
        tmp_path,
        reference_image=tmp_path / "me.png",
        music=tmp_path / "song.wav",
    )
    with caplog.at_level(logging.WARNING):
        reference, guidance, fps = animation_inputs(cfg)
    assert set(guidance) == {"music"} and guidance["music"].shape == (1, 12, 35)
    assert reference.shape == (1, 3, 32, 32) and fps == 10.0
    assert "['pose'] not given" in caplog.text and "plain sum" in caplog.text
    cfg.music = None
    with pytest.raises(ValueError, match="no guidance given"):
        animation_inputs(cfg)
    cfg.guidance_dirs.depth = str(tmp_path)
    with pytest.raises(ValueError, match=r"\['depth'\] was given but this model was trained"):
        animation_inputs(cfg)


def test_sd15_brings_sd_sizes_and_a_best_checkpoint_is_kept(compose, config_dir):
    cfg = compose(config_dir, "train", ["model=sd15", "pretrained_model_name_or_path=/sd"])
    assert cfg.model.net.guidance_embedding_channels == 320
    assert list(cfg.model.net.guidance_encoder.block_out_channels) == [16, 32, 96, 256]
    assert cfg.callbacks.model_checkpoint.monitor == "val/loss"
    assert compose(config_dir, "train", []).model.net.guidance_embedding_channels == 32


def test_music_finetune_trains_only_the_music_encoder(compose, config_dir, monkeypatch, repo_root):
    import hydra

    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(repo_root / "experiments"))
    tiny = [  # the experiment's architecture at the tiny test size
        "experiment=music_finetune",
        "pretrained_model_name_or_path=tiny",
        "resolution=16",
        "guidance_input_channels=[3,3,3,3,4]",
        "model.net.guidance_embedding_channels=32",
        "model.net.guidance_encoder.block_out_channels=[8,16]",
        "model.net.guidance_encoder.attention_heads=0",
        "model.net.image_encoder.model_name=tiny",
        "model.net.image_encoder.tiny.output_dim=64",
    ]
    cfg = compose(config_dir, "train", tiny)
    assert list(cfg.model.trainable) == ["guidance_encoders.music"]
    module = hydra.utils.instantiate(cfg.model)
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    assert names and all(n.startswith("net.guidance_encoders.music.") for n in names)
    assert any(n.startswith("net.temporal.") for n, _ in module.named_parameters())
    both = compose(
        config_dir, "train", [*tiny, "model.trainable=[guidance_encoders.music,temporal]"]
    )
    names = [
        n for n, p in hydra.utils.instantiate(both.model).named_parameters() if p.requires_grad
    ]
    assert {n.split(".")[1] for n in names} == {"guidance_encoders", "temporal"}
    with pytest.raises(Exception, match="'guidance_encoders.sound' matches no parameter"):
        hydra.utils.instantiate(
            compose(config_dir, "train", [*tiny, "model.trainable=[guidance_encoders.sound]"]).model
        )
