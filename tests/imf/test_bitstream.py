"""The .imf bitstream: entropy-coded quantised tokens + coded reference frame."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imf import bitstream
from imf.codec import clip_tokens, load_token_file
from imf.model import IMFGenerator
from imf.module import IMFModule
from motioncore.media import read_video, write_video


@pytest.fixture
def generator(tiny_generator_kwargs):
    torch.manual_seed(0)
    return IMFGenerator(**tiny_generator_kwargs).eval()


def test_decoded_tokens_are_bit_identical_to_the_encoders(generator, clip_frames):
    frames = clip_frames(6)
    blob, symbols = bitstream.encode_clip(generator, frames, fps=10.0, quality=8)
    stream = bitstream.unpack(blob)
    assert np.array_equal(stream.symbols, symbols) and stream.symbols.dtype == np.int32
    _, tokens = clip_tokens(generator, frames)
    step = bitstream.quantisation_step(tokens, 8)
    expected = bitstream.dequantise(bitstream.quantise(tokens, step), step)
    assert stream.tokens.tobytes() == expected.tobytes()
    assert np.abs(stream.tokens - tokens).max() <= step / 2 + 1e-6
    decoded = bitstream.decode_clip(generator, stream)
    assert decoded.shape == (6, 32, 32, 3) and decoded.dtype == np.uint8


def test_rate_grows_and_error_shrinks_with_quality(generator, clip_frames):
    frames = clip_frames(6)
    _, tokens = clip_tokens(generator, frames)
    sizes, errors = [], []
    for quality in (1, 8, 64):
        blob, _ = bitstream.encode_clip(generator, frames, fps=10.0, quality=quality)
        sizes.append(bitstream.unpack(blob).payload_bytes)
        errors.append(float(np.abs(bitstream.unpack(blob).tokens - tokens).max()))
    assert sizes[0] < sizes[1] < sizes[2]
    assert errors[0] > errors[1] > errors[2]


def test_entropy_coding_beats_fixed_width_symbols():
    rng = np.random.default_rng(0)
    symbols = np.cumsum(rng.integers(-2, 3, size=(40, 32)), axis=0).astype(np.int32)
    reference = np.zeros((16, 16, 3), np.uint8)
    blob = bitstream.pack(reference, symbols, 0.1, 10.0, 8.0, b"\0" * 8)
    assert np.array_equal(bitstream.unpack(blob).symbols, symbols)
    payload = bitstream.unpack(blob).payload_bytes
    assert payload < symbols.size  # under one byte per token entry (int32 would be 4)


def test_truncated_or_foreign_bitstreams_name_the_file(generator, tmp_path, clip_frames):
    blob, _ = bitstream.encode_clip(generator, clip_frames(3), fps=10.0, quality=4)
    path = tmp_path / "clip.imf"
    for cut in (10, bitstream.HEADER.size + 3, len(blob) - 200, len(blob) - 1):
        path.write_bytes(blob[:cut])
        with pytest.raises(bitstream.BitstreamError, match=r"clip\.imf is truncated"):
            bitstream.read_bitstream(path)
    path.write_bytes(b"PK\x03\x04 not a bitstream")
    with pytest.raises(bitstream.BitstreamError, match=r"clip\.imf is not an \.imf bitstream"):
        bitstream.read_bitstream(path)


def test_bitstream_refuses_another_checkpoint(generator, tiny_generator_kwargs, clip_frames):
    blob, _ = bitstream.encode_clip(
        generator, clip_frames(3), fps=10.0, quality=4, checkpoint="a.ckpt"
    )
    torch.manual_seed(1)
    other = IMFGenerator(**tiny_generator_kwargs).eval()
    with pytest.raises(bitstream.BitstreamError, match="another checkpoint.*a.ckpt"):
        bitstream.decode_clip(other, bitstream.unpack(blob, "clip.imf"), "clip.imf")


def test_truncated_token_file_names_the_file(tmp_path):
    path = tmp_path / "tokens.npz"
    with path.open("wb") as f:
        np.savez(f, tokens=np.zeros((4, 8), np.float16))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match=r"tokens\.npz is truncated.*imf-encode"):
        load_token_file(path)


def test_encode_decode_cli_with_a_bitstream(tiny_checkpoint, clip_frames, tmp_path, capsys):
    from imf import decode, encode

    module, ckpt = tiny_checkpoint
    video = write_video(tmp_path / "in.mp4", clip_frames(4), fps=8)
    clip, out = tmp_path / "clip.imf", tmp_path / "out.mp4"
    args = [str(video), "-o", str(clip), "--ckpt", str(ckpt), "--quality", "16"]
    assert encode.main(args) == 0
    assert "bits per pixel, reference frame included" in capsys.readouterr().out
    assert decode.main([str(clip), "-o", str(out)]) == 0  # the checkpoint is recorded
    frames, fps = read_video(out)
    assert frames.shape == (4, 32, 32, 3) and fps == pytest.approx(8.0)
    with pytest.raises(SystemExit, match=r"\.imf bitstream or a \.npz"):
        encode.main([str(video), "-o", str(tmp_path / "clip.bin"), "--ckpt", str(ckpt)])


def test_rate_distortion_curve_and_plot(generator, tmp_path, clip_frames):
    from imf.data import to_model_frames
    from imf.rate_distortion import rate_distortion, write_report

    clips = [to_model_frames(clip_frames(4), 32)]
    curve = rate_distortion(generator, clips, [1, 16], IMFModule.image_quality)
    low, high = curve["points"]
    assert curve["baseline"]["bpp"] < low["bpp"] < high["bpp"]
    assert {"psnr", "ssim", "l1"} <= set(low) and curve["frames"] == 3  # after the reference
    assert math.isfinite(curve["baseline"]["psnr"])  # frame 0 is the baseline's exact copy
    json_path, png_path = write_report(curve, tmp_path)
    assert png_path.read_bytes()[:4] == b"\x89PNG" and json_path.is_file()
