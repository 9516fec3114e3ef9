"""Parity fixtures for ``champ-guidance`` from CHAMP's own code (not run in CI).

Upstream: fudan-generative-vision/champ at 02e5533 (``models/``), which needs diffusers 0.24.

Regenerate (the workspace python provides torch; the old libraries go in a scratch folder):

    mkdir -p /tmp/champ-src && cd /tmp/champ-src
    git clone https://github.com/fudan-generative-vision/champ && git -C champ checkout 02e5533
    uv pip install --target /tmp/champ-up --no-deps diffusers==0.24.0 huggingface_hub==0.20.3 \
        einops==0.4.1
    cd /work/main && OMP_NUM_THREADS=1 uv run --frozen --all-packages python \
        tools/upstream/champ_guidance.py --champ /tmp/champ-src/champ --deps /tmp/champ-up

Writes ``tests/fixtures/upstream/champ-guidance/<name>.pt``, each ``{"upstream_commit",
"config", "state_dict", "inputs", "outputs"}``:

- ``guidance_encoder``: one ``GuidanceEncoder`` forward (with the five unused attentions and
  ``guidance_attention`` in its state dict, as CHAMP saves it);
- ``reference_denoise``: ``ChampModel.forward``: the reference UNet pass at t = 0 that fills
  the reference-attention banks, then one denoising-UNet forward that reads them, with the
  guidance features added after ``conv_in``;
- ``motion_unet``: the denoising UNet with AnimateDiff motion modules on a 5-frame clip
  (``uncond_fwd=True``: no reference bank), which pins where the modules sit;
- ``motion_module``: one ``VanillaTemporalModule`` on a short clip.

``state_dict`` of the model fixtures is ``{"<upstream .pth stem>": {key: tensor}}``, the files
the importer reads. Every parameter gets a random perturbation (zero-initialised output layers
included) and is rounded to float16 to keep each file under 2 MB; upstream then runs in float32
on exactly those rounded values. ``ReferenceAttentionControl.update`` casts banks to float16 by
default; here it is called with float32 (this package keeps banks in the compute dtype).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import torch

UPSTREAM_COMMIT = "fudan-generative-vision/champ@02e5533"
OUT = Path(__file__).resolve().parents[2] / "tests/fixtures/upstream/champ-guidance"

UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    block_out_channels=[32, 32],
    layers_per_block=1,
    cross_attention_dim=16,
    attention_head_dim=2,
    norm_num_groups=32,
)
DOWN_2D, UP_2D = ["CrossAttnDownBlock2D", "DownBlock2D"], ["UpBlock2D", "CrossAttnUpBlock2D"]
MOTION = dict(
    num_attention_heads=8,
    num_transformer_block=1,
    attention_block_types=["Temporal_Self", "Temporal_Self"],
    temporal_position_encoding=True,
    temporal_position_encoding_max_len=32,
    temporal_attention_dim_div=1,
)
ENCODER = dict(guidance_input_channels=3, block_out_channels=[8, 32, 32], attention_num_heads=2)


def perturb_and_round(model: torch.nn.Module) -> dict:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    state = {k: v.detach().half() for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return state


def unet3d_kwargs(motion: bool) -> dict:
    return dict(
        UNET,
        down_block_types=[t.replace("2D", "3D") for t in DOWN_2D],
        up_block_types=[t.replace("2D", "3D") for t in UP_2D],
        mid_block_type="UNetMidBlock3DCrossAttn",
        use_inflated_groupnorm=True,
        unet_use_cross_frame_attention=False,
        unet_use_temporal_attention=False,
        use_motion_module=motion,
        motion_module_resolutions=[1, 2, 4, 8],
        motion_module_mid_block=True,
        motion_module_decoder_only=False,
        motion_module_type="Vanilla",
        motion_module_kwargs=MOTION,
    )


def save(name: str, config: dict, state: dict, inputs: dict, outputs: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.pt"
    torch.save(
        {
            "upstream_commit": UPSTREAM_COMMIT,
            "config": config,
            "state_dict": state,
            "inputs": inputs,
            "outputs": outputs,
        },
        path,
    )
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")


def champ_forward(frames: int, motion: bool, uncond: bool, name: str) -> None:
    from models.champ_model import ChampModel
    from models.guidance_encoder import GuidanceEncoder
    from models.mutual_self_attention import ReferenceAttentionControl
    from models.unet_2d_condition import UNet2DConditionModel
    from models.unet_3d import UNet3DConditionModel

    torch.manual_seed(0)
    reference = UNet2DConditionModel(**UNET, down_block_types=DOWN_2D, up_block_types=UP_2D).eval()
    denoising = UNet3DConditionModel(**unet3d_kwargs(motion)).eval()
    encoder = GuidanceEncoder(UNET["block_out_channels"][0], **ENCODER).eval()
    state = {
        "reference_unet": perturb_and_round(reference),
        "denoising_unet": perturb_and_round(denoising),
        "guidance_encoder_dwpose": perturb_and_round(encoder),
    }
    if motion:  # CHAMP saves the motion modules in their own file
        state["motion_module"] = {
            k: v for k, v in state["denoising_unet"].items() if "motion_modules" in k
        }
        state["denoising_unet"] = {
            k: v for k, v in state["denoising_unet"].items() if "motion_modules" not in k
        }
    if uncond:  # the reference UNet does not run
        del state["reference_unet"]
    writer = ReferenceAttentionControl(reference, mode="write", fusion_blocks="full")
    reader = ReferenceAttentionControl(denoising, mode="read", fusion_blocks="full")
    reader.update = functools.partial(reader.update, dtype=torch.float32)
    model = ChampModel(reference, denoising, writer, reader, {"dwpose": encoder}).eval()
    inputs = {
        "noisy_latents": torch.randn(1, 4, frames, 8, 8),
        "timesteps": torch.tensor([517]),
        "ref_image_latents": torch.randn(1, 4, 8, 8),
        "clip_image_embeds": torch.randn(1, 1, UNET["cross_attention_dim"]),
        "multi_guidance_cond": torch.rand(1, 3, frames, 32, 32),
    }
    with torch.no_grad():
        out = model(**inputs, uncond_fwd=uncond)
    config = {
        "unet": UNET,
        "down_block_types": DOWN_2D,
        "up_block_types": UP_2D,
        "motion_module": MOTION if motion else None,
        "guidance_encoder": ENCODER,
        "guidance_types": ["dwpose"],
        "uncond_fwd": uncond,
    }
    save(name, config, state, inputs, {"model_pred": out})


def guidance_encoder() -> None:
    from models.guidance_encoder import GuidanceEncoder

    torch.manual_seed(0)
    config = dict(
        guidance_embedding_channels=64, **dict(ENCODER, block_out_channels=[8, 32, 32, 64])
    )
    model = GuidanceEncoder(**config).eval()
    state = perturb_and_round(model)
    inputs = {"condition": torch.rand(2, 3, 3, 32, 32)}
    with torch.no_grad():
        out = model(**inputs)
    save("guidance_encoder", config, {"guidance_encoder_depth": state}, inputs, {"embedding": out})


def motion_module() -> None:
    from models.motion_module import VanillaTemporalModule

    torch.manual_seed(0)
    config = dict(in_channels=64, **MOTION)
    model = VanillaTemporalModule(**config).eval()
    state = perturb_and_round(model)
    inputs = {"input_tensor": torch.randn(2, 64, 5, 4, 4)}
    with torch.no_grad():
        out = model(inputs["input_tensor"], None, None)
    save("motion_module", config, {"motion_module": state}, inputs, {"output": out})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--champ", type=Path, required=True, help="CHAMP checkout (has models/)")
    parser.add_argument("--deps", type=Path, required=True, help="--target dir with diffusers 0.24")
    args = parser.parse_args()
    sys.path[:0] = [str(args.deps), str(args.champ)]
    import diffusers.utils.import_utils

    diffusers.utils.import_utils._transformers_available = False  # CHAMP's models need none
    guidance_encoder()
    champ_forward(frames=3, motion=False, uncond=False, name="reference_denoise")
    champ_forward(frames=5, motion=True, uncond=True, name="motion_unet")
    motion_module()


if __name__ == "__main__":
    main()
