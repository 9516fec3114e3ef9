"""``text-to-pose-sample ckpt_path=... text="<HamNoSys>" first_pose=<file.pose>``: writes a
``.pose`` file and a GIF of the generated sign into the run directory; ``texts="a|b|c"`` or
``texts_file=`` composes several signs into one sequence."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import numpy as np
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


def sign_texts(cfg: DictConfig) -> list[str]:
    """The signs to generate: ``text=``, ``texts="a|b|c"`` or ``texts_file=`` (one per line).

    HamNoSys has a ``|`` glyph (hammetaalt); a sign that contains it needs ``texts_file=``.
    """
    given = [k for k in ("text", "texts", "texts_file") if cfg.get(k)]
    if len(given) != 1:
        raise ValueError(
            'give exactly one of text="<HamNoSys>", texts="<sign 1>|<sign 2>|..." or '
            f"texts_file=<file, one sign per line>; got {given or 'none'}"
        )
    if cfg.get("text"):
        return [cfg.text]
    if cfg.get("texts"):
        texts = str(cfg.texts).split("|")
    else:
        path = Path(cfg.texts_file)
        if not path.is_file():
            raise FileNotFoundError(f"texts_file={path} does not exist")
        texts = [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
    if not texts or any(not t for t in texts):
        raise ValueError(f"every sign must be a non-empty HamNoSys string, got {texts}")
    return texts


def sample(cfg: DictConfig) -> dict[str, str]:
    """Generate each sign from the last frame of the previous one (the first from
    ``first_pose``) and write the whole sequence as one ``.pose``, one GIF and, beside them,
    ``<name>.signs.json`` with each sign's text and ``[start, end)`` frame range."""
    texts = sign_texts(cfg)
    module = load_module(cfg)
    first = _first_pose(cfg)[None]
    data, conf, signs, start = [], [], [], 0
    for text in texts:
        poses, lengths = module.generate_text(
            [text], first, length=cfg.length, guidance=cfg.guidance, steps=cfg.steps
        )
        length = int(lengths[0])
        data.append(poses[0, :length].cpu().numpy())
        conf.append(prediction_confidence(poses, lengths)[0, :length].cpu().numpy())
        signs.append({"text": text, "start": start, "end": start + length})
        start += length
        first = poses[:, length - 1]
    data, conf = np.concatenate(data), np.concatenate(conf)
    out = Path(cfg.paths.output_dir)
    fps = cfg.data.fps
    pose_path = write_sequence(out / f"{cfg.name}.pose", data, conf, fps)
    gif_path = render_gif(out / f"{cfg.name}.gif", [(data, conf)], fps=fps)
    ranges = out / f"{cfg.name}.signs.json"
    ranges.write_text(json.dumps({"fps": fps, "signs": signs}, ensure_ascii=False, indent=1))
    log.info("wrote %s, %s and %s (%d signs, %d frames)", pose_path, gif_path, ranges,
             len(signs), start)  # fmt: skip
    return {"pose": str(pose_path), "gif": str(gif_path), "signs": str(ranges), "frames": start}


def quote_text_override(argv: list[str]) -> list[str]:
    """Quote an unquoted ``text=<HamNoSys>`` / ``texts=...`` override.

    Hydra's override grammar rejects Private-Use-Area characters (all HamNoSys glyphs) in
    unquoted values, and the shell (also under ``make sample ARGS='text="..."'``) strips the
    quotes a user types, so the value is quoted here before Hydra parses argv.
    """
    out = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in ("text", "texts") and value[:1] not in ("'", '"'):
            value = value.replace("'", "\\'")  # no HamNoSys glyph is a backslash
            arg = f"{key}='{value}'"
        out.append(arg)
    return out


main = hydra_entry(
    "pkg://text_to_pose.configs", "sample", fn=sample, argv_filter=quote_text_override
)


if __name__ == "__main__":
    main()
