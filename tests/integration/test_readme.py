"""Every fenced shell command of README.md works as written (checked without training).

How each command is checked is in tools/readme_commands.py; placeholders are the tiny real files
made by ``fixtures`` below.
"""

from __future__ import annotations

import json
import logging
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import readme_commands as rc  # noqa: E402
import run as runner  # noqa: E402

README = REPO / "README.md"
SECTIONS = list(dict.fromkeys(c.section for c in rc.extract(README.read_text())))


def write_wav(path: Path, seconds: float = 1.0, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, str]:
    """README placeholder -> a tiny real file of that kind."""
    from PIL import Image

    from text_to_pose.data.notation import random_sign
    from text_to_pose.data.pose_io import write_pose
    from text_to_pose.data.tokenizer import HamNoSysTokenizer

    d = tmp_path_factory.mktemp("readme_fixtures")
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(d / "me.png")
    write_wav(d / "song.wav")
    (d / "my_timeline.txt").write_text(
        "walk forward # 0 # 3 # legs\nwave the right hand # 1 # 2.5 # right arm\n"
    )
    joints = [[0.0, 0.9, 0.0]] * 22
    (d / "keys.json").write_text(
        json.dumps({"keyframes": [{"frame": 0, "joints": joints}, {"frame": 40, "joints": joints}]})
    )
    write_pose(d / "first.pose", np.zeros((2, 75, 3)), np.ones((2, 75)), 25.0)
    sign = random_sign(np.random.default_rng(0), HamNoSysTokenizer())
    sd15 = d / "stable-diffusion-v1-5"  # the configs of a diffusers SD-1.5 folder, no weights
    for sub, config in (("unet", {"block_out_channels": [320, 640, 1280, 1280]}), ("vae", {})):
        (sd15 / sub).mkdir(parents=True)
        (sd15 / sub / "config.json").write_text(json.dumps(config))
    return {
        "/path/to/stable-diffusion-v1-5": str(sd15),
        "<HamNoSys>": sign,
        "<file.pose>": str(d / "first.pose"),
        "me.png": str(d / "me.png"),
        "song.wav": str(d / "song.wav"),
        "my_timeline.txt": str(d / "my_timeline.txt"),
        "keys.json": str(d / "keys.json"),
        "clip.mp4": str(d / "clip.mp4"),
        "tokens.npz": str(d / "tokens.npz"),
        "music_features/song": str(d / "music_features" / "song"),
    }


@pytest.mark.parametrize("section", SECTIONS)
def test_readme_section_commands_work_as_written(section, fixtures, tmp_path, monkeypatch):
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(REPO / "experiments"))
    commands = [c for c in rc.extract(README.read_text()) if c.section == section]
    failures = rc.check_section(commands, rc.Context(tmp_path, fixtures))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("experiment", ["quickstart", "paper"])
def test_every_package_keeps_the_best_checkpoint_the_readme_promises(
    package, experiment, logged_by_package, monkeypatch
):
    """README: checkpoints/ holds last.ckpt "+ the best checkpoint by the package's val metric"."""
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(REPO / "experiments"))
    cfg = runner.compose(package, "train", [f"experiment={experiment}"])
    checkpoint = cfg.callbacks.model_checkpoint
    assert checkpoint.monitor and checkpoint.save_top_k != 0, f"{package}: no best checkpoint"
    assert checkpoint.monitor.startswith("val/") and logged_by_package(package, checkpoint.monitor)


def test_every_repo_path_the_readme_names_exists():
    names = rc.named_paths(README.read_text())
    assert ".ci/run" in names and "experiments/<package>/sweeps/<name>.yaml" in names
    assert rc.missing_paths(README.read_text()) == []


# --- the checker itself ------------------------------------------------------------------------

BROKEN = """
# Broken

```bash
make train MODEL=text-to-pose ARGS="trainer.max_stepz=5"
make train MODEL=nope
make train MODEL=stdiff GPUS=4
make sweep-local SWEEP=experiments/text-to-pose/sweeps/no_such_sweep.yaml
make eval MODEL=imf CKPT=...
uv run --frozen --all-packages imf-encode clip.mp4 -o tokens.npz --ckpt last.ckpt --no-such-flag
uv run --frozen --all-packages torchrun --nproc-per-node 4 -m stdiff.train trainer=ddp trainer.devices=2 data.batch_size=8
```

# Fine

```bash
make train MODEL=stdiff GPUS=4 ARGS="data.per_device_batch_size=3"   # a comment, # and more
make eval MODEL=stdiff CKPT=runs/stdiff/<run>/checkpoints/last.ckpt
```
"""


def test_extract_joins_continuations_and_strips_comments():
    text = "# S\n\n```bash\n# only a comment\nmake train \\\n  MODEL=imf   # trailing\nmake sample ARGS='text=\"a # b\"'\n```\n```python\nprint(1)\n```\n"
    cmds = rc.extract(text)
    assert [(c.section, c.line, c.text) for c in cmds] == [
        ("S", 5, "make train MODEL=imf"),
        ("S", 7, "make sample ARGS='text=\"a # b\"'"),
    ]


def test_a_broken_snippet_fails_for_each_broken_command(tmp_path, fixtures, monkeypatch):
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(REPO / "experiments"))
    commands = rc.extract(BROKEN)
    broken = [c for c in commands if c.section == "Broken"]
    failures = rc.check_section(broken, rc.Context(tmp_path / "b", fixtures))
    assert len(failures) == len(broken), "\n".join(failures)
    for failure, expected in zip(
        failures,
        [
            "max_stepz",
            "unknown MODEL='nope'",
            "must divide by the world size 4",
            "does not exist",
            "no earlier command of this section trains it",
            "unrecognized arguments: --no-such-flag",
            "4 processes but the config trains on 2 devices",
        ],
        strict=True,
    ):
        assert expected in failure, failure
    fine = [c for c in commands if c.section == "Fine"]
    assert rc.check_section(fine, rc.Context(tmp_path / "f", fixtures)) == []


def test_test_full_keeps_the_marker_expression_one_argument(tmp_path):
    ctx = rc.Context(tmp_path, {})
    (argv,) = rc.recorded_make(["test-full"], {}, ctx)
    assert argv[0] == "pytest"
    rc.check_pytest(argv[1:])
    with pytest.raises(rc.CommandError, match="-m"):
        rc.check_pytest(["-q", "-m", '"not', 'gpu"', "tests"])


# --- package validation of the composed config (issue 12, defects 7 and 8) ----------------------


def champ_section(fixtures, tmp_path, monkeypatch) -> tuple[list[rc.Command], list[str]]:
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(REPO / "experiments"))
    commands = [c for c in rc.extract(README.read_text()) if c.section == "champ-guidance"]
    assert commands, "README.md has no champ-guidance section"
    return commands, rc.check_section(commands, rc.Context(tmp_path, fixtures))


def test_readme_check_fails_when_sd15_keeps_the_tiny_guidance_width(
    fixtures, tmp_path, monkeypatch
):
    """Defect 7: ``model=sd15`` kept the tiny config's guidance_embedding_channels=32."""
    real = runner.compose

    def tiny_width(model, task, overrides):
        cfg = real(model, task, overrides)
        if model == "champ-guidance":
            cfg.model.net.guidance_embedding_channels = 32
        return cfg

    monkeypatch.setattr(runner, "compose", tiny_width)
    commands, failures = champ_section(fixtures, tmp_path, monkeypatch)
    sd15 = [c for c in commands if c.text.startswith("make") and "stable-diffusion" in c.text]
    assert len(sd15) == 2 and len(failures) == len(sd15), "\n".join(failures)
    for command, failure in zip(sd15, failures, strict=True):
        assert failure.startswith(f"README.md:{command.line}:")
        assert "guidance_embedding_channels=32 fits neither" in failure and "320" in failure


def test_readme_check_fails_when_sampling_needs_every_trained_guidance_type(
    fixtures, tmp_path, monkeypatch, caplog
):
    """Defect 8: a music-only sample of the music+pose model failed for the missing pose folder.
    As written it passes with a note; with the old refusal put back, the README check fails."""
    import champ_guidance.sample as champ_sample

    with caplog.at_level(logging.WARNING):
        _, failures = champ_section(fixtures, tmp_path / "as_written", monkeypatch)
    assert failures == []
    assert "['pose'] not given" in caplog.text and "dropped from the guidance sum" in caplog.text

    real = champ_sample.given_guidance

    def every_type_required(cfg):
        given = real(cfg)
        missing = sorted(set(cfg.guidance_types) - set(given))
        if missing:
            raise ValueError(f"guidance {missing} is required")
        return given

    monkeypatch.setattr(champ_sample, "given_guidance", every_type_required)
    _, failures = champ_section(fixtures, tmp_path / "strict", monkeypatch)
    assert len(failures) == 1 and "make sample" in failures[0], "\n".join(failures)
    assert "guidance ['pose'] is required" in failures[0]
