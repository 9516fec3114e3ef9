from __future__ import annotations

import pytest
import torch

from text_to_pose.data.tokenizer import BOS, PAD, glyph_table


def test_vocabulary_and_ids_are_upstream_transcriptions(tokenizer):
    # 4 special ids + the 210 code points of HamNoSysUnicode.ttf; upstream's unit test ids.
    assert len(tokenizer) == 214 and (PAD, BOS) == (1, 2)
    assert tokenizer.encode("\ue000\ue071") == [2, 13, 97]
    assert tokenizer.encode("\ue000\ue071\ue012\ue029\ue03f\ue089\ue0c6\ue0d8") == [
        2, 13, 97, 30, 42, 58, 120, 178, 192
    ]  # fmt: skip
    assert tokenizer.encode(" \u00a0") == [2, 4, 12]
    assert tokenizer.name_to_char["hamfist"] == "\ue000"
    # Every named glyph has its own id, and alternative code points share their glyph's id.
    primary = [n for n in glyph_table() if "#" not in n]
    ids = [tokenizer.char_to_id[tokenizer.name_to_char[n]] for n in primary]
    assert len(set(ids)) == len(primary) and min(ids) == 4 and max(ids) == 213
    assert tokenizer.char_to_id["\u00ee"] == tokenizer.char_to_id["\ue054"]  # hambelowstomach


def test_encode_one_token_per_glyph_with_bos(tokenizer):
    text = "\ue000\ue071\ue0e9"
    ids = tokenizer.encode(text)
    assert ids[0] == BOS and len(ids) == len(text) + 1
    assert tokenizer.decode(ids) == text
    assert tokenizer.encode("") == [BOS]


def test_batch_pads_and_masks(tokenizer):
    ids, valid = tokenizer.batch(["\ue000\ue001\ue002", "", "\ue005"])
    assert ids.shape == (3, 4) and ids.dtype == torch.long
    assert valid.sum(1).tolist() == [4, 1, 2]
    assert (ids[~valid] == PAD).all() and (ids[:, 0] == BOS).all()


def test_unknown_glyph_names_character_and_code_point(tokenizer):
    with pytest.raises(ValueError, match=r"'x' \(U\+0078\) at position 1"):
        tokenizer.encode("\ue000x")
    with pytest.raises(ValueError, match=r"U\+E0FF"):
        tokenizer.encode("\ue0ff")


def test_text_longer_than_the_table_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="max_text_len"):
        tokenizer.batch(["\ue000" * 10], max_len=5)


def test_names_round_trip(tokenizer):
    names = ["hamsymmlr", "hamfinger2", "hamextfingeru", "hampalml", "hamchest", "hammoveo"]
    assert tokenizer.to_names(tokenizer.from_names(names)) == names
    with pytest.raises(ValueError, match="hamnotaglyph"):
        tokenizer.from_names(["hamnotaglyph"])
