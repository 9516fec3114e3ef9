"""Fixtures of the text-to-pose tests: a tiny generated corpus and a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from text_to_pose.data.corpus import generate_corpus
from text_to_pose.data.tokenizer import HamNoSysTokenizer

TINY_MODEL = dict(hidden=32, heads=2, ff=64, text_layers=1, pose_layers=1, max_frames=96,
                  max_text_len=24, num_steps=10, text_encoder_dropout=0.0)  # fmt: skip


@pytest.fixture(scope="session")
def tokenizer() -> HamNoSysTokenizer:
    return HamNoSysTokenizer()


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """Index of a 12/4/4-recording corpus at 12.5 fps."""
    root = tmp_path_factory.mktemp("corpus")
    return generate_corpus(root, n_train=12, n_val=4, n_test=4, seed=3, fps=12.5)


@pytest.fixture
def tiny_module():
    from text_to_pose.module import TextToPoseModule

    torch.manual_seed(0)
    return TextToPoseModule(**TINY_MODEL)


@pytest.fixture
def random_batch(tokenizer):
    """A padded batch of 3 recordings of lengths 9, 14 and 6 with texts of 4-6 glyphs."""

    def make(seed: int = 0) -> dict:
        from text_to_pose.data.dataset import TextPoseDataset

        g = np.random.default_rng(seed)
        names = [["hamflathand", "hamextfingeru", "hampalml", "hamchest"],
                 ["hamfist", "hamextfingero", "hampalmd", "hamnose", "hammoveu"],
                 ["hamsymmlr", "hamfinger2", "hamextfingerul", "hampalml", "hamchin",
                  "hamcircleo"]]  # fmt: skip
        items = []
        for n, length in zip(names, (9, 14, 6)):
            ids = torch.tensor(tokenizer.encode(tokenizer.from_names(n)))
            pose = torch.from_numpy(g.normal(size=(length, 75, 3)).astype(np.float32))
            conf = torch.from_numpy(g.uniform(0.5, 1, (length, 75)).astype(np.float32))
            items.append({"text": tokenizer.decode(ids), "text_ids": ids, "pose": pose,
                          "confidence": conf, "id": f"s{length}"})  # fmt: skip
        return TextPoseDataset.collate(items)

    return make
