"""Bad inputs of stdiff get a clear error or a named warning, never a silent wrong result."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from stdiff.data.formats import load_sequence


def _seq(tmp_path, frames):
    seq = tmp_path / "seq"
    seq.mkdir()
    for i, f in enumerate(frames):
        iio.imwrite(seq / f"{i:03d}.png", f)
    return seq


def test_png_with_transparency_is_refused(tmp_path):
    rgba = np.full((8, 8, 4), 200, np.uint8)
    rgba[0, 0, 3] = 10
    seq = _seq(tmp_path, [rgba, rgba])
    with pytest.raises(ValueError, match=r"000.png has transparent pixels.*flatten"):
        load_sequence(seq, "frames", (8, 8), 3)


def test_opaque_alpha_is_dropped_losslessly(tmp_path):
    rgba = np.full((8, 8, 4), 255, np.uint8)
    rgba[..., 0] = 0
    x = load_sequence(_seq(tmp_path, [rgba]), "frames", (8, 8), 3)
    assert x.shape == (1, 3, 8, 8) and x[0, 0].max() == -1 and x[0, 1].min() == 1


def test_other_size_is_resized_with_a_warning_naming_both(tmp_path):
    seq = _seq(tmp_path, [np.zeros((8, 16), np.uint8)] * 2)
    with pytest.warns(UserWarning, match=r"8x16 \(HxW\), resized to data.image_size=8x8"):
        x = load_sequence(seq, "frames", (8, 8), 1)
    assert x.shape == (2, 1, 8, 8)


def test_mixed_frame_sizes_are_refused_by_file(tmp_path):
    seq = _seq(tmp_path, [np.zeros((8, 8), np.uint8), np.zeros((8, 12), np.uint8)])
    with pytest.raises(ValueError, match=r"001.png is 8x12 but .*000.png is 8x8"):
        load_sequence(seq, "frames", (8, 8), 1)


def test_colour_to_grey_warns(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    with pytest.warns(UserWarning, match="data.channels=3"):
        load_sequence(_seq(tmp_path, [rgb]), "frames", (8, 8), 1)


@pytest.mark.parametrize("steps", [0, -3])
def test_non_positive_step_counts_are_refused(make_module, clip_batch, steps):
    module = make_module()
    b = clip_batch
    with pytest.raises(ValueError, match=f"num_steps={steps} must be an integer >= 1"):
        module.predict(b["vo"], b["idx_o"], b["idx_p"], 1, num_steps=steps)
    with pytest.raises(ValueError, match=f"eval.num_steps={steps}"):
        make_module(num_steps=steps)
    with pytest.raises(ValueError, match="num_samples=0"):
        module.predict(b["vo"], b["idx_o"], b["idx_p"], 0, generator=torch.Generator())
