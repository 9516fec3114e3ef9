"""The compression use of IMF: a clip becomes its reference frame plus one token per frame.

The token file (``.npz``) holds ``reference`` (uint8 ``[S, S, 3]``, the frame the decoder
caches ``f_r``, ``t_r`` from), ``tokens`` (fp16 ``[T, token_dim]``: 2 * token_dim bytes per
frame), ``fps`` and ``image_size``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from imf.data.dataset import to_model_frames
from imf.model.generator import IMFGenerator
from motioncore.media import to_uint8

TOKEN_DTYPE = np.float16
REQUIRED_KEYS = ("reference", "tokens", "fps", "image_size")


@torch.no_grad()
def clip_tokens(
    generator: IMFGenerator, frames: np.ndarray, reference_index: int = 0, chunk: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[T, H, W, 3]`` -> (uint8 reference ``[S, S, 3]``, float32 tokens ``[T, d_m]``)."""
    device = next(generator.parameters()).device
    x = to_model_frames(frames, generator.image_size)
    if not 0 <= reference_index < len(x):
        raise ValueError(f"reference_index {reference_index} outside the clip's {len(x)} frames")
    tokens = torch.cat(
        [
            generator.encode_tokens(x[i : i + chunk].to(device)).float().cpu()
            for i in range(0, len(x), chunk)
        ]
    )
    return to_uint8(x[reference_index : reference_index + 1])[0], tokens.cpu().numpy()


def encode_frames(
    generator: IMFGenerator,
    frames: np.ndarray,
    fps: float,
    reference_index: int = 0,
    chunk: int = 32,
) -> dict[str, np.ndarray]:
    """uint8 ``[T, H, W, 3]`` -> token-file arrays (``t_c = E_T(x_c)`` for every frame)."""
    reference, tokens = clip_tokens(generator, frames, reference_index, chunk)
    return {
        "reference": reference,
        "tokens": tokens.astype(TOKEN_DTYPE),
        "fps": np.array(fps, dtype=np.float32),
        "image_size": np.array(generator.image_size, dtype=np.int32),
    }


@torch.no_grad()
def decode_tokens(
    generator: IMFGenerator, data: dict[str, np.ndarray], chunk: int = 32
) -> np.ndarray:
    """Token-file arrays -> uint8 ``[T, S, S, 3]``; ``f_r``, ``m_r`` are computed once."""
    check_token_file(data, generator)
    device = next(generator.parameters()).device
    reference = to_model_frames(data["reference"][None], generator.image_size).to(device)
    cache = generator.encode_reference(reference)
    tokens = torch.from_numpy(data["tokens"].astype(np.float32))
    frames = [
        to_uint8(generator.decode(cache, tokens[i : i + chunk].to(device)))
        for i in range(0, len(tokens), chunk)
    ]
    return np.concatenate(frames)


def check_token_file(data: dict[str, np.ndarray], generator: IMFGenerator) -> None:
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"token file lacks {missing}; write it with imf-encode")
    tokens, size = data["tokens"], int(data["image_size"])
    if tokens.ndim != 2 or tokens.shape[1] != generator.token_dim:
        raise ValueError(
            f"tokens have shape {tokens.shape}, the checkpoint decodes [T, {generator.token_dim}]; "
            "decode with the checkpoint that encoded the clip"
        )
    if size != generator.image_size or data["reference"].shape != (size, size, 3):
        raise ValueError(
            f"token file is for {size} px frames (reference {data['reference'].shape}), the "
            f"checkpoint for {generator.image_size} px"
        )


def save_token_file(path: str | Path, data: dict[str, np.ndarray]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez(f, **data)
    return path


def load_token_file(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"token file {path} does not exist; create it with imf-encode")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"{path} is truncated or not a .npz token file ({type(e).__name__}: {e}); "
            "re-encode the clip with imf-encode"
        ) from e


def bytes_per_frame(token_dim: int) -> int:
    """Size of one frame's token in the fp16 token stream."""
    return token_dim * np.dtype(TOKEN_DTYPE).itemsize
