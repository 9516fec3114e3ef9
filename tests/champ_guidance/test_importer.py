"""champ-guidance-import: CHAMP's per-module .pth files (the tiny upstream fixture) + a tiny
SD-1.5-shaped diffusers folder -> a checkpoint that loads with weights_only=True, records the
overrides that rebuild it, lists dropped/unmapped keys and reproduces upstream's output."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import torch

from champ_guidance.importer import main

TINY_OVERRIDES = [
    "resolution=16",  # the tiny VAE below downsamples by 2: 8x8 latents as in the fixture
    "guidance_resolution=32",
    "model.net.guidance_embedding_channels=32",
    "model.net.guidance_encoder.block_out_channels=[8,32,32]",
    "model.net.guidance_encoder.attention_heads=2",
    "model.net.image_encoder.model_name=tiny",
    "model.net.image_encoder.tiny.output_dim=16",
]


@pytest.fixture(scope="module")
def champ_release(tmp_path_factory, parity):
    """(folder of CHAMP .pth files, SD folder, fixture) from the reference_denoise fixture."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    fx = parity.load_fixture("reference_denoise")
    root = tmp_path_factory.mktemp("champ_release")
    for stem, state in fx["state_dict"].items():
        torch.save(state, root / f"{stem}.pth")
    cfg = fx["config"]
    unet = UNet2DConditionModel(
        **cfg["unet"],
        down_block_types=cfg["down_block_types"],
        up_block_types=cfg["up_block_types"],
    )
    sd = root / "sd15"
    unet.save_pretrained(sd / "unet")
    AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
    ).save_pretrained(sd / "vae")
    return root, sd, fx


def write_animation_inputs(folder) -> None:
    """``folder/me.png`` (a 16 px reference) and ``folder/dwpose/`` (three 32 px PNG maps)."""
    import numpy as np

    from champ_guidance.data.layout import write_image

    rng = np.random.default_rng(0)
    write_image(folder / "me.png", rng.integers(0, 255, (16, 16, 3), np.uint8))
    for i in range(3):
        write_image(folder / "dwpose" / f"{i:04d}.png", rng.integers(0, 255, (32, 32, 3), np.uint8))


def test_import_writes_a_checkpoint_that_reproduces_upstream(
    parity, champ_release, tmp_path, capsys
):
    import hydra

    from champ_guidance.importer import compose_train_config

    root, sd, fx = champ_release
    out = tmp_path / "champ.ckpt"
    assert main([str(root), "--sd15", str(sd), "-o", str(out), *TINY_OVERRIDES]) == 0
    printed = capsys.readouterr().out
    assert "dropped" in printed and "unmapped upstream keys: 0" in printed
    assert "no motion-module weights (a stage-1 release)" in printed
    ckpt = torch.load(out, weights_only=True)
    info = ckpt["imported_from"]
    assert info["upstream"].startswith("fudan-generative-vision/champ@")
    assert info["unmapped_keys"] == []
    assert any("guidance_attention" in k for k in info["dropped_unused_keys"])
    overrides = ckpt["hydra_overrides"]
    assert "model=sd15" in overrides and "guidance_types=[dwpose]" in overrides
    # the recorded overrides rebuild the architecture; the weights load strictly
    module = hydra.utils.instantiate(compose_train_config(overrides).model)
    module.load_state_dict(ckpt["state_dict"])
    out_ours = parity.run_champ(module.net.eval(), fx["inputs"], uncond=False)
    assert parity.max_diff(out_ours, fx["outputs"]["model_pred"]) <= parity.TOL


def test_an_imported_checkpoint_samples(champ_release, tmp_path, compose, repo_root):
    """The sample entry point on an imported checkpoint, guidance from a folder of PNG maps."""
    from champ_guidance.sample import animate

    root, sd, _ = champ_release
    out = tmp_path / "champ.ckpt"
    assert main([str(root), "--sd15", str(sd), "-o", str(out), *TINY_OVERRIDES]) == 0
    write_animation_inputs(tmp_path)
    overrides = torch.load(out, weights_only=True)["hydra_overrides"]
    cfg = compose(
        repo_root / "packages/champ-guidance/src/champ_guidance/configs",
        "sample",
        [
            *overrides,
            f"ckpt_path={out}",
            f"reference_image={tmp_path / 'me.png'}",
            f"guidance_dirs.dwpose={tmp_path / 'dwpose'}",
            "num_inference_steps=2",
            f"output_dir={tmp_path / 'run'}",
            f"paths.output_dir={tmp_path / 'run'}",
        ],
    )
    paths = animate(cfg)
    assert any(p.suffix == ".mp4" and p.stat().st_size > 0 for p in paths)


def test_import_refuses_foreign_files_by_name(champ_release, tmp_path, capsys):
    root, sd, _ = champ_release
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--sd15", str(sd), "-o", str(tmp_path / "x.ckpt")])
    assert "has no denoising_unet.pth" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    torch.save({"encoder.weight": torch.zeros(2)}, foreign / "denoising_unet.pth")
    with pytest.raises(SystemExit):
        main([str(foreign), "--sd15", str(sd), "-o", str(tmp_path / "x.ckpt")])
    assert "checkpoint of another model" in capsys.readouterr().err
    torch.save({"state_dict": {}, "hyper_parameters": {}}, foreign / "denoising_unet.pth")
    with pytest.raises(SystemExit):
        main([str(foreign), "--sd15", str(sd), "-o", str(tmp_path / "x.ckpt")])
    assert "is a Lightning checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.ckpt").exists()


def test_import_refuses_motion_modules_in_another_naming(champ_release, tmp_path, capsys):
    """diffusers' MotionAdapter naming (no temporal_transformer, attn1) would load as unmapped
    keys and leave the temporal modules at their zero initialisation: refused by name."""
    root, sd, _ = champ_release
    folder = tmp_path / "diffusers_named"
    shutil.copytree(root, folder, ignore=shutil.ignore_patterns("sd15"))
    key = "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q.weight"
    torch.save({key: torch.zeros(4, 4)}, folder / "motion_module.pth")
    with pytest.raises(SystemExit):
        main([str(folder), "--sd15", str(sd), "-o", str(tmp_path / "x.ckpt")])
    err = capsys.readouterr().err
    assert "motion_module.pth" in err and key in err and "temporal_transformer" in err
    assert not (tmp_path / "x.ckpt").exists()


@pytest.mark.slow
def test_make_sample_animates_an_imported_checkpoint(champ_release, tmp_path, repo_root):
    """A tiny CHAMP release folder -> champ-guidance-import -> ``make sample`` (the runner
    rebuilds the architecture from the checkpoint's recorded overrides)."""
    root, sd, _ = champ_release
    out = tmp_path / "champ.ckpt"
    assert main([str(root), "--sd15", str(sd), "-o", str(out), *TINY_OVERRIDES]) == 0
    write_animation_inputs(tmp_path)
    args = [
        f"reference_image={tmp_path / 'me.png'}",
        f"guidance_dirs.dwpose={tmp_path / 'dwpose'}",
        "num_inference_steps=2",
        f"output_dir={tmp_path / 'run'}",
    ]
    proc = subprocess.run(
        ["make", "sample", "MODEL=champ-guidance", f"CKPT={out}", f"ARGS={' '.join(args)}"],
        cwd=repo_root,
        env={**os.environ, "WANDB_MODE": "offline"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    mp4 = tmp_path / "run" / "animation.mp4"
    assert mp4.is_file() and mp4.stat().st_size > 0


def test_fixture_files_stay_small(parity):
    for path in parity.FIXTURES.glob("*.pt"):
        assert path.stat().st_size < 2_000_000, path
