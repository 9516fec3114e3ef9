"""The ``.imf`` bitstream: a clip as one coded reference frame plus entropy-coded tokens.

Coding of the tokens ``t_c = E_T(x_c)`` (``[T, d_m]`` floats):

1. Uniform scalar quantisation at quality ``Q``: ``q = round(t / step)`` with
   ``step = std(tokens of the clip) / Q`` (Q is "quantisation bins per standard deviation";
   larger Q, finer tokens, more bits). Decoded tokens are ``q * step`` (float32), computed the
   same way on both sides, so they are bit-identical to the encoder's quantised tokens.
2. Temporal prediction: frame 0 codes ``q_0``, every later frame the residual
   ``q_t - q_{t-1}`` (an integer difference: lossless).
3. Entropy coding with constriction's ANS coder under quantised Laplace models: one scale for
   frame 0, one scale per token dimension for the residuals (maximum-likelihood ``mean |r|``),
   both stored in the header.

File layout (little-endian): the fixed header ``HEADER`` (magic ``IMF1``, version, reference
codec, image size, d_m, frames, fps, step, symbol range, frame-0 scale, checkpoint fingerprint,
reference and payload lengths), ``d_m`` float16 residual scales, the checkpoint path (u16 length
+ UTF-8, so ``imf-decode`` finds the decoder), the reference frame (PNG, lossless by default, or
JPEG), then the ANS payload as uint32 words. Bits per pixel count the whole file.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from pathlib import Path

import constriction
import numpy as np
from PIL import Image

from imf.codec import clip_tokens, decode_tokens
from imf.model.generator import IMFGenerator

MAGIC, VERSION = b"IMF1", 1
HEADER = struct.Struct("<4sBBHHIffiiff8sII")
REFERENCE_CODECS = ("png", "jpeg")
MIN_SCALE = 0.05  # Laplace scale floor: a constant dimension still gets a valid model


class BitstreamError(ValueError):
    """A ``.imf`` file that cannot be read (names the file and what is wrong)."""


@dataclass
class Bitstream:
    """Decoded contents of a ``.imf`` file (``symbols`` are the quantised tokens ``q``)."""

    reference: np.ndarray  # uint8 [S, S, 3], as the decoder sees it
    symbols: np.ndarray  # int32 [T, d_m]
    step: float
    fps: float
    image_size: int
    fingerprint: bytes
    checkpoint: str
    quality: float
    reference_bytes: int
    payload_bytes: int

    @property
    def tokens(self) -> np.ndarray:
        return dequantise(self.symbols, self.step)


def generator_fingerprint(generator: IMFGenerator) -> bytes:
    """8-byte hash of the generator's weights: a bitstream decodes only with its encoder's."""
    digest = hashlib.sha256()
    for name, tensor in generator.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.digest()[:8]


def quantisation_step(tokens: np.ndarray, quality: float) -> float:
    if not np.isfinite(quality) or quality <= 0:
        raise ValueError(f"quality must be a positive number, got {quality}")
    spread = float(np.std(tokens))
    return float(np.float32(max(spread, 1e-6) / quality))


def quantise(tokens: np.ndarray, step: float) -> np.ndarray:
    return np.round(tokens.astype(np.float64) / step).astype(np.int32)


def dequantise(symbols: np.ndarray, step: float) -> np.ndarray:
    return (symbols.astype(np.float32) * np.float32(step)).astype(np.float32)


def _laplace_scale(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(values).mean(axis=0), MIN_SCALE).astype(np.float16)


def _encode_reference(frame: np.ndarray, codec: str, jpeg_quality: int) -> bytes:
    buffer = io.BytesIO()
    if codec == "png":
        Image.fromarray(frame).save(buffer, format="PNG", optimize=True)
    elif codec == "jpeg":
        Image.fromarray(frame).save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        raise ValueError(f"reference codec must be one of {REFERENCE_CODECS}, got {codec!r}")
    return buffer.getvalue()


def pack(
    reference: np.ndarray,
    symbols: np.ndarray,
    step: float,
    fps: float,
    quality: float,
    fingerprint: bytes,
    checkpoint: str = "",
    reference_codec: str = "png",
    jpeg_quality: int = 90,
) -> bytes:
    """Serialise quantised tokens ``symbols`` [T, d_m] and the uint8 reference into bytes."""
    frames, token_dim = symbols.shape
    residuals = np.diff(symbols, axis=0, prepend=np.zeros((1, token_dim), np.int32))
    first_scale = float(_laplace_scale(residuals[:1].reshape(-1, 1))[0])
    scales = _laplace_scale(residuals[1:]) if frames > 1 else np.ones(token_dim, np.float16)
    lo, hi = int(residuals.min()), int(residuals.max())
    model = constriction.stream.model.QuantizedLaplace(lo, hi)
    per_symbol = np.concatenate(
        [np.full(token_dim, first_scale), np.tile(scales.astype(np.float64), frames - 1)]
    )
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(
        residuals.reshape(-1).astype(np.int32), model, np.zeros_like(per_symbol), per_symbol
    )
    payload = coder.get_compressed().astype("<u4").tobytes()
    image = _encode_reference(reference, reference_codec, jpeg_quality)
    path = checkpoint.encode()
    header = HEADER.pack(
        MAGIC,
        VERSION,
        REFERENCE_CODECS.index(reference_codec),
        reference.shape[0],
        token_dim,
        frames,
        fps,
        step,
        lo,
        hi,
        first_scale,
        quality,
        fingerprint,
        len(image),
        len(payload) // 4,
    )
    scale_bytes = scales.astype("<f2").tobytes()
    return header + scale_bytes + struct.pack("<H", len(path)) + path + image + payload


def unpack(blob: bytes, name: str = "bitstream") -> Bitstream:
    """Inverse of :func:`pack`; ``name`` (the file) appears in every error."""

    def take(offset: int, size: int, what: str) -> bytes:
        if offset + size > len(blob):
            raise BitstreamError(
                f"{name} is truncated: its {what} needs bytes {offset}..{offset + size}, the "
                f"file has {len(blob)}; re-encode the clip with imf-encode"
            )
        return blob[offset : offset + size]

    if blob[:4] != MAGIC:
        raise BitstreamError(
            f"{name} is not an .imf bitstream (no IMF1 magic); write it with imf-encode"
        )
    fields = HEADER.unpack(take(0, HEADER.size, "header"))
    _, version, _codec, size, token_dim, frames, fps, step, lo, hi, first_scale = fields[:11]
    quality, fingerprint, image_len, words = fields[11:]
    if version != VERSION:
        raise BitstreamError(f"{name} has bitstream version {version}; this imf reads {VERSION}")
    offset = HEADER.size
    scales = np.frombuffer(take(offset, 2 * token_dim, "token scales"), "<f2").astype(np.float64)
    offset += 2 * token_dim
    (path_len,) = struct.unpack("<H", take(offset, 2, "checkpoint path length"))
    checkpoint = take(offset + 2, path_len, "checkpoint path").decode()
    offset += 2 + path_len
    image = take(offset, image_len, "reference frame")
    offset += image_len
    payload = np.frombuffer(take(offset, 4 * words, "token payload"), "<u4").astype(np.uint32)
    if offset + 4 * words != len(blob):
        raise BitstreamError(
            f"{name} has {len(blob) - offset - 4 * words} trailing bytes; re-encode it"
        )
    try:
        reference = np.array(Image.open(io.BytesIO(image)).convert("RGB"))
    except OSError as e:
        raise BitstreamError(f"{name}: the reference frame does not decode ({e})") from e
    if reference.shape != (size, size, 3):
        raise BitstreamError(f"{name}: reference frame {reference.shape} is not {size} px square")
    model = constriction.stream.model.QuantizedLaplace(lo, hi)
    per_symbol = np.concatenate([np.full(token_dim, first_scale), np.tile(scales, frames - 1)])
    try:
        coder = constriction.stream.stack.AnsCoder(payload)
        residuals = coder.decode(model, np.zeros_like(per_symbol), per_symbol)
    except Exception as e:  # constriction raises plain exceptions on bad data
        raise BitstreamError(
            f"{name}: the token payload does not decode ({e}); re-encode it"
        ) from e
    symbols = np.cumsum(residuals.reshape(frames, token_dim), axis=0).astype(np.int32)
    return Bitstream(
        reference, symbols, step, fps, size, fingerprint, checkpoint, quality, image_len, 4 * words
    )


def encode_clip(
    generator: IMFGenerator,
    frames: np.ndarray,
    fps: float,
    quality: float,
    reference_index: int = 0,
    checkpoint: str = "",
    reference_codec: str = "png",
    jpeg_quality: int = 90,
    fingerprint: bytes | None = None,
) -> tuple[bytes, np.ndarray]:
    """uint8 ``[T, H, W, 3]`` -> (``.imf`` bytes, the quantised tokens ``q`` [T, d_m]).
    ``fingerprint``: :func:`generator_fingerprint`, when the caller already has it."""
    reference, tokens = clip_tokens(generator, frames, reference_index)
    step = quantisation_step(tokens, quality)
    symbols = quantise(tokens, step)
    blob = pack(
        reference,
        symbols,
        step,
        fps,
        quality,
        fingerprint or generator_fingerprint(generator),
        checkpoint,
        reference_codec,
        jpeg_quality,
    )
    return blob, symbols


def decode_clip(
    generator: IMFGenerator,
    stream: Bitstream,
    name: str = "bitstream",
    fingerprint: bytes | None = None,
) -> np.ndarray:
    """Decoded bitstream -> uint8 ``[T, S, S, 3]`` (refuses a generator other than the
    encoder's)."""
    fingerprint = fingerprint or generator_fingerprint(generator)
    if stream.fingerprint != fingerprint:
        raise BitstreamError(
            f"{name} was encoded by another checkpoint (weights fingerprint "
            f"{stream.fingerprint.hex()}, this one {fingerprint.hex()}); "
            f"decode with the encoder's checkpoint ({stream.checkpoint or 'not recorded'})"
        )
    data = {
        "reference": stream.reference,
        "tokens": stream.tokens,
        "fps": np.float32(stream.fps),
        "image_size": np.int32(stream.image_size),
    }
    return decode_tokens(generator, data)


def write_bitstream(path: str | Path, blob: bytes) -> Path:
    """Write atomically (a partial file never carries the final name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return path


def read_bitstream(path: str | Path) -> Bitstream:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"bitstream {path} does not exist; create it with imf-encode")
    return unpack(path.read_bytes(), str(path))
