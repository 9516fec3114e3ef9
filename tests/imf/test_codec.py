"""Encode/decode round trip: reference frame + fp16 tokens reproduce the direct forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imf.codec import decode_tokens, encode_frames, load_token_file, save_token_file
from imf.data import to_model_frames
from imf.model import IMFGenerator
from motioncore.media import read_video, to_uint8, write_video


def test_round_trip_equals_direct_reconstruction(tiny_generator_kwargs, tmp_path, clip_frames):
    torch.manual_seed(0)
    gen = IMFGenerator(**tiny_generator_kwargs).eval()
    frames = clip_frames(5)
    data = encode_frames(gen, frames, fps=10.0)
    assert data["tokens"].dtype == np.float16 and data["tokens"].shape == (5, 8)
    path = save_token_file(tmp_path / "t.npz", data)
    loaded = load_token_file(path)
    assert np.array_equal(loaded["tokens"], data["tokens"])
    decoded = decode_tokens(gen, loaded)
    x = to_model_frames(frames, 32)
    with torch.no_grad():
        direct = to_uint8(gen(x, x[:1].expand(5, -1, -1, -1)))
    assert decoded.shape == (5, 32, 32, 3)
    # fp16 tokens and the uint8 reference move pixels by at most a couple of levels.
    assert np.abs(decoded.astype(int) - direct).max() <= 3


def test_token_file_mismatch_is_a_clear_error(tiny_generator_kwargs, tmp_path, clip_frames):
    gen = IMFGenerator(**tiny_generator_kwargs).eval()
    data = encode_frames(gen, clip_frames(2), fps=10.0)
    other = IMFGenerator(**{**tiny_generator_kwargs, "token_dim": 4}).eval()
    with pytest.raises(ValueError, match="checkpoint that encoded"):
        decode_tokens(other, data)
    with pytest.raises(ValueError, match="lacks"):
        decode_tokens(gen, {"tokens": data["tokens"]})
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="truncated or not a .npz token file"):
        load_token_file(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="reference_index"):
        encode_frames(gen, clip_frames(2), fps=10.0, reference_index=5)


def test_encode_decode_cli_round_trip(tiny_checkpoint, clip_frames, tmp_path, capsys):
    from imf import decode, encode

    module, ckpt = tiny_checkpoint
    video = write_video(tmp_path / "in.mp4", clip_frames(6), fps=8)
    tokens, out = tmp_path / "tokens.npz", tmp_path / "out.mp4"
    assert (
        encode.main([str(video), "-o", str(tokens), "--ckpt", str(ckpt), "--frame-skip", "2"]) == 0
    )
    assert "3 frames x 16 bytes" in capsys.readouterr().out
    data = load_token_file(tokens)
    assert data["tokens"].shape == (3, 8) and float(data["fps"]) == pytest.approx(4.0)
    assert decode.main([str(tokens), "-o", str(out), "--ckpt", str(ckpt)]) == 0
    frames, fps = read_video(out)
    assert frames.shape == (3, 32, 32, 3) and fps == pytest.approx(4.0)
    expected = decode_tokens(module.generator.eval(), data)
    assert np.abs(frames.astype(int) - expected).mean() < 6  # only the H.264 re-encode differs
    with pytest.raises(
        FileNotFoundError, match="nope.ckpt does not exist; pass a file such as runs/"
    ):
        decode.main([str(tokens), "-o", str(out), "--ckpt", str(tmp_path / "nope.ckpt")])
