"""``champ-guidance-train`` / ``python -m champ_guidance.train``: fit, then evaluate."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from motioncore.train import hydra_entry


def unet_widths(net: DictConfig) -> tuple[int, int]:
    """(conv_in width, time-embedding width) of the UNet ``net`` builds, read from its config:
    the built-in ``tiny_unet`` or ``<pretrained_model_name_or_path>/unet/config.json``
    (diffusers' time embedding is 4x the first block's width unless ``time_embedding_dim``)."""
    from champ_guidance.model.backbone import TINY, _check_folder

    if net.pretrained_model_name_or_path == TINY:
        unet = dict(net.tiny_unet)
    else:
        folder = Path(net.pretrained_model_name_or_path).expanduser()
        _check_folder(folder)
        unet = json.loads((folder / "unet" / "config.json").read_text())
    first = int(unet["block_out_channels"][0])
    return first, int(unet.get("time_embedding_dim") or 4 * first)


def check_guidance_channels(cfg: DictConfig) -> None:
    """The guidance enters the UNet after ``conv_in`` or into its time embedding, so
    ``guidance_embedding_channels`` must equal one of their widths (320 / 1280 for SD-1.5)."""
    net = cfg.model.net
    spatial, embedding = unet_widths(net)
    channels = int(net.guidance_embedding_channels)
    if channels not in (spatial, embedding):
        raise ValueError(
            f"guidance_embedding_channels={channels} fits neither entry point of the UNet of "
            f"pretrained_model_name_or_path={net.pretrained_model_name_or_path}: pass "
            f"guidance_embedding_channels={spatial} (conv_in width, spatial guidance) or "
            f"{embedding} (time-embedding width, one vector per frame); model=sd15 sets 320"
        )


main = hydra_entry("pkg://champ_guidance.configs", "train", validate=check_guidance_channels)

if __name__ == "__main__":
    main()
