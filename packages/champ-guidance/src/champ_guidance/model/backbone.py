"""The two UNets and the latent codec: the built-in tiny pixel-space configuration, or a local
Stable Diffusion 1.5 diffusers folder (``unet/`` + ``vae/``) given by path.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn

TINY = "tiny"


class PixelCodec(nn.Module):
    """Pixel space: the diffusion runs on images in [-1, 1] directly (downsample 1)."""

    downsample = 1

    def __init__(self, channels: int = 3):
        super().__init__()
        self.channels = channels

    def encode(self, images: torch.Tensor, sample: bool = False) -> torch.Tensor:
        return images

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents


class VaeCodec(nn.Module):
    """Frozen SD VAE: ``z = scaling_factor * E(x)`` (Rombach et al. 2022, Sec. 3)."""

    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.vae = vae.requires_grad_(False).eval()
        self.scale = float(vae.config.scaling_factor)
        self.channels = int(vae.config.latent_channels)
        self.downsample = 2 ** (len(vae.config.block_out_channels) - 1)

    def train(self, mode: bool = True) -> VaeCodec:  # the VAE stays in eval mode
        return super().train(False)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, sample: bool = False) -> torch.Tensor:
        dist = self.vae.encode(images).latent_dist
        return (dist.sample() if sample else dist.mean) * self.scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents / self.scale).sample


def _check_folder(path: Path) -> None:
    if not path.is_dir():
        raise FileNotFoundError(
            f"pretrained_model_name_or_path={path} is not a folder. Pass a local diffusers "
            "folder of Stable Diffusion 1.5 (with unet/ and vae/, e.g. saved by "
            "StableDiffusionPipeline.save_pretrained) or 'tiny' for the built-in configuration"
        )
    for sub in ("unet", "vae"):
        if not (path / sub / "config.json").is_file():
            raise FileNotFoundError(
                f"{path} is not a diffusers Stable Diffusion folder: {path / sub / 'config.json'} is "
                "missing (expected the layout of runwayml/stable-diffusion-v1-5: unet/, vae/, ...)"
            )


def load_backbone(
    pretrained_model_name_or_path: str, tiny_unet: dict, resolution: int
) -> tuple[UNet2DConditionModel, UNet2DConditionModel, nn.Module]:
    """(reference UNet, denoising UNet, codec). Both UNets start from the same weights."""
    if pretrained_model_name_or_path == TINY:
        reference = UNet2DConditionModel(sample_size=resolution, **tiny_unet)
        return reference, copy.deepcopy(reference), PixelCodec(tiny_unet["in_channels"])
    path = Path(pretrained_model_name_or_path).expanduser()
    _check_folder(path)
    try:
        reference = UNet2DConditionModel.from_pretrained(path, subfolder="unet")
        denoising = UNet2DConditionModel.from_pretrained(path, subfolder="unet")
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae")
    except (OSError, ValueError, RuntimeError) as e:
        raise RuntimeError(f"could not load the diffusers UNet/VAE from {path}: {e}") from e
    codec = VaeCodec(vae)
    if reference.config.in_channels != codec.channels:
        raise ValueError(
            f"{path}: unet in_channels={reference.config.in_channels} but the VAE has "
            f"{codec.channels} latent channels"
        )
    return reference, denoising, codec


def widen_conv_in(unet: UNet2DConditionModel, extra_channels: int) -> None:
    """Give the denoising UNet ``extra_channels`` more input channels for the reference latent
    concatenated to every noisy frame (Stable Video Diffusion's image conditioning, Blattmann et
    al. 2023, Sec. 4; InstructPix2Pix's conv_in surgery). The new weights start at zero, so a
    pretrained UNet computes exactly what it did before training begins."""
    old = unet.conv_in
    new = nn.Conv2d(
        old.in_channels + extra_channels,
        old.out_channels,
        old.kernel_size,
        old.stride,
        old.padding,
    )
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=new.in_channels)


class GuidanceInjector:
    """Adds the fused guidance to a UNet through a forward hook, so diffusers' UNet is used as is.

    ``spatial``: after ``conv_in`` (CHAMP's ``conv_in(x) + guidance_fea``). ``embedding``: to the
    output of ``time_embedding`` (one vector per frame).
    """

    def __init__(self, unet: UNet2DConditionModel, guidance_embedding_channels: int):
        spatial = unet.conv_in.out_channels
        embedding = unet.time_embedding.linear_2.out_features
        if guidance_embedding_channels == spatial:
            self.target, module = "spatial", unet.conv_in
        elif guidance_embedding_channels == embedding:
            self.target, module = "embedding", unet.time_embedding
        else:
            raise ValueError(
                f"guidance_embedding_channels={guidance_embedding_channels} fits neither entry point of "
                f"this UNet: use {spatial} (conv_in width: spatial guidance added after conv_in, "
                f"320 for SD-1.5) or {embedding} (time-embedding width: a per-frame vector added "
                "to the time embedding, 1280 for SD-1.5)"
            )
        self.pending: torch.Tensor | None = None
        module.register_forward_hook(self._add)

    def _add(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        if self.pending is None:
            return output
        if self.pending.shape != output.shape:
            raise RuntimeError(
                f"guidance features {tuple(self.pending.shape)} do not match the UNet's "
                f"{self.target} activations {tuple(output.shape)}"
            )
        return output + self.pending.to(output.dtype)
