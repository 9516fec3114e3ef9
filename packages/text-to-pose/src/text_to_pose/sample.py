"""``text-to-pose-sample ckpt_path=... text="<HamNoSys>" first_pose=<file.pose>``: writes a
``.pose`` file and a GIF of the generated sign into the run directory."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from motioncore.train import hydra_entry, load_module
from text_to_pose.data.pose_io import read_pose, write_sequence
from text_to_pose.module import prediction_confidence
from text_to_pose.render import render_gif

log = logging.getLogger(__name__)


def _first_pose(cfg: DictConfig) -> torch.Tensor:
    if cfg.first_pose is not None:
        pose = read_pose(cfg.first_pose, cfg.data.fps)
        return torch.from_numpy(pose.data[0])
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("test")
    log.info(
        "first_pose not given: using the first test recording %s", datamodule.test_set[0]["id"]
    )
    return datamodule.test_set[0]["pose"][0]


def sample(cfg: DictConfig) -> dict[str, str]:
    if not cfg.text:
        raise ValueError('text is required: text="<HamNoSys string>" (glyphs U+E000-U+E0F1)')
    module = load_module(cfg)
    first = _first_pose(cfg)[None]
    poses, lengths = module.generate_text(
        [cfg.text], first, length=cfg.length, guidance=cfg.guidance, steps=cfg.steps
    )
    length = int(lengths[0])
    data = poses[0, :length].cpu().numpy()
    conf = prediction_confidence(poses, lengths)[0, :length].cpu().numpy()
    out = Path(cfg.paths.output_dir)
    fps = cfg.data.fps
    pose_path = write_sequence(out / f"{cfg.name}.pose", data, conf, fps)
    gif_path = render_gif(out / f"{cfg.name}.gif", [(data, conf)], fps=fps)
    log.info("wrote %s and %s (%d frames)", pose_path, gif_path, length)
    return {"pose": str(pose_path), "gif": str(gif_path), "frames": length}


_hydra_main = hydra_entry("pkg://text_to_pose.configs", "sample", fn=sample)


def quote_text_override(argv: list[str]) -> list[str]:
    """Quote an unquoted ``text=<HamNoSys>`` override.

    Hydra's override grammar rejects Private-Use-Area characters (all HamNoSys glyphs) in
    unquoted values, and the shell (also under ``make sample ARGS='text="..."'``) strips the
    quotes a user types, so the value is quoted here before Hydra parses argv.
    """
    out = []
    for arg in argv:
        if arg.startswith("text=") and arg[5:6] not in ("'", '"'):
            value = arg[5:].replace("'", "\\'")  # no HamNoSys glyph is a backslash
            arg = f"text='{value}'"
        out.append(arg)
    return out


def main() -> object:
    sys.argv = [sys.argv[0], *quote_text_override(sys.argv[1:])]
    return _hydra_main()


if __name__ == "__main__":
    main()
