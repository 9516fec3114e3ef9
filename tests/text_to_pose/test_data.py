from __future__ import annotations

import filecmp
import json

import numpy as np
import pytest
import torch

from text_to_pose.data.corpus import generate_corpus
from text_to_pose.data.datamodule import TextPoseDataModule
from text_to_pose.data.dataset import LengthBucketBatchSampler
from text_to_pose.data.holistic import BODY_POINTS, RIGHT_HAND_OFFSET
from text_to_pose.data.index import read_index
from text_to_pose.data.notation import parse_sign, random_sign_names
from text_to_pose.data.pose_io import read_pose, write_pose
from text_to_pose.data.signer import SignerStyle, perform
from text_to_pose.data.tokenizer import BOS

BASE = ["hamflathand", "hamextfingeru", "hampalml", "hamchest"]
R_WRIST = BODY_POINTS.index("RIGHT_WRIST")
L_WRIST = BODY_POINTS.index("LEFT_WRIST")


def _perform(tokenizer, names, seed=0):
    spec = parse_sign(tokenizer.from_names(names), tokenizer)
    style = SignerStyle(120.0, (256.0, 190.0), 1.0, 1.0, 1.0, 1.0, 0.0)
    return perform(spec, style, np.random.default_rng(seed))


def test_random_signs_parse_back(tokenizer):
    rng = np.random.default_rng(0)
    for _ in range(200):
        names = random_sign_names(rng)
        spec = parse_sign(tokenizer.from_names(names), tokenizer)
        assert spec.symmetric == ("hamsymmlr" in names)
        assert spec.location in names and spec.handshape in names


def test_parse_rejects_glyphs_outside_the_subset(tokenizer):
    with pytest.raises(ValueError, match="hamwavy"):
        parse_sign(tokenizer.from_names([*BASE, "hammoveu", "hamwavy"]), tokenizer)
    with pytest.raises(ValueError, match="perpendicular"):
        parse_sign(tokenizer.from_names(["hamfist", "hamextfingeru", "hampalmu", "hamchest",
                                         "hamnomotion"]), tokenizer)  # fmt: skip


def test_the_hands_do_what_the_symbols_say(tokenizer):
    up, _ = _perform(tokenizer, [*BASE, "hammoveu"])
    down, _ = _perform(tokenizer, [*BASE, "hammoved"])
    # Pixel y grows downward: moving up reaches a higher (smaller y) wrist position.
    assert up[:, R_WRIST, 1].min() < down[:, R_WRIST, 1].min() - 40  # 0.45 x 120 px
    head, _ = _perform(tokenizer, ["hamflathand", "hamextfingeru", "hampalml", "hamforehead",
                                   "hamnomotion"])  # fmt: skip
    belly, _ = _perform(tokenizer, ["hamflathand", "hamextfingeru", "hampalml", "hamstomach",
                                    "hamnomotion"])  # fmt: skip
    assert head[:, R_WRIST, 1].min() < belly[:, R_WRIST, 1].min() - 80
    # Handshape: the index fingertip is far from the wrist in a flat hand, close in a fist.
    fist, _ = _perform(tokenizer, ["hamfist", *BASE[1:], "hamnomotion"])
    flat, _ = _perform(tokenizer, [*BASE, "hamnomotion"])
    tip = RIGHT_HAND_OFFSET + 8

    def reach(x):
        return np.linalg.norm(x[:, tip] - x[:, RIGHT_HAND_OFFSET], axis=-1)[len(x) // 2]

    assert reach(flat) > 1.5 * reach(fist)
    # Symmetry moves the left hand too; otherwise it rests.
    sym, _ = _perform(tokenizer, ["hamsymmlr", *BASE, "hammoveu"])
    assert np.ptp(sym[:, L_WRIST, 1]) > 100 and np.ptp(up[:, L_WRIST, 1]) < 10
    # Repetition, speed: longer and shorter recordings.
    thrice, _ = _perform(tokenizer, [*BASE, "hammoveu", "hamrepeatfromstartseveral"])
    slow, _ = _perform(tokenizer, [*BASE, "hammoveu", "hamslow"])
    fast, _ = _perform(tokenizer, [*BASE, "hammoveu", "hamfast"])
    assert len(thrice) > len(up) + 15 and len(fast) < len(up) < len(slow)


def test_generator_is_deterministic_and_splits_are_disjoint(tmp_path, tiny_corpus):
    again = generate_corpus(tmp_path, n_train=12, n_val=4, n_test=4, seed=3, fps=12.5)
    assert again.read_bytes() == tiny_corpus.read_bytes()
    rows = [json.loads(line) for line in again.read_text().splitlines()]
    for row in rows:
        assert filecmp.cmp(tmp_path / row["pose"], tiny_corpus.parent / row["pose"], shallow=False)
    texts = {s: {r["text"] for r in rows if r["split"] == s} for s in ("train", "val", "test")}
    assert len(texts["train"]) == 12 and len(texts["val"]) == 4 and len(texts["test"]) == 4
    assert not (texts["train"] & texts["val"]) and not (texts["train"] & texts["test"])
    other = generate_corpus(tmp_path / "other", n_train=12, n_val=4, n_test=4, seed=4, fps=12.5)
    assert other.read_bytes() != again.read_bytes()
    lengths = [len(read_pose(again.parent / r["pose"]).data) for r in rows]
    assert 8 <= min(lengths) and max(lengths) <= 90


def test_builtin_corpus_is_rebuilt_when_a_setting_changes(tmp_path):
    index = generate_corpus(tmp_path / "c", n_train=3, n_val=1, n_test=1, seed=3, fps=12.5)
    first, stamp = index.read_bytes(), index.stat().st_mtime_ns
    assert generate_corpus(tmp_path / "c", n_train=3, n_val=1, n_test=1, seed=3, fps=12.5) == index
    assert index.stat().st_mtime_ns == stamp
    generate_corpus(tmp_path / "c", n_train=3, n_val=1, n_test=1, seed=3, fps=10.0)
    assert index.read_bytes() != first and '"fps": 10.0' in index.read_text()


def _write_real_corpus(root, fmt):
    """A hand-made corpus in the real format: random poses + an index with three splits."""
    g = np.random.default_rng(0)
    rows = []
    for i, split in enumerate(["train"] * 4 + ["val", "test"]):
        data = g.uniform(100, 400, (8 + i, 75, 3)).astype(np.float32)
        data[:, 11], data[:, 12] = [310, 200, 0], [190, 200, 0]
        write_pose(root / "poses" / f"r{i}.pose", data, np.ones((8 + i, 75), np.float32), 50.0)
        rows.append({"pose": f"poses/r{i}.pose", "text": "\ue001\ue020\ue03e\ue052",
                     "split": split, "fps": 50})  # fmt: skip
    if fmt == "csv":
        lines = ["pose,text,split,fps"] + [f"{r['pose']},{r['text']},{r['split']},50" for r in rows]
        (root / "index.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        (root / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return rows


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_real_format_loader(tmp_path, fmt):
    _write_real_corpus(tmp_path, fmt)
    dm = TextPoseDataModule(root=str(tmp_path), fps=25.0, max_frames=50, batch_size=2)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (4, 1, 1)
    item = dm.train_set[0]
    assert item["pose"].shape == (4, 75, 3)  # 8 frames at 50 fps -> 4 at 25 fps
    batch = next(iter(dm.train_dataloader()))
    assert batch["pose"].shape[0] == 2 and batch["text_ids"][0, 0] == BOS
    assert batch["frame_valid"].sum(1).tolist() == batch["lengths"].tolist()


def test_bad_indexes_are_clear_errors(tmp_path):
    rows = _write_real_corpus(tmp_path, "jsonl")
    index = tmp_path / "index.jsonl"
    index.write_text(json.dumps({"pose": "poses/r0.pose", "split": "train"}) + "\n")
    with pytest.raises(ValueError, match=r"missing columns \['text'\]"):
        read_index(index)
    index.write_text(json.dumps({**rows[0], "split": "dev"}) + "\n")
    with pytest.raises(ValueError, match="'dev' is not one of"):
        read_index(index)
    shared = [rows[0], {**rows[0], "split": "test"}, rows[4]]
    index.write_text("".join(json.dumps(r) + "\n" for r in shared))
    with pytest.raises(ValueError, match="both the train and test splits"):
        TextPoseDataModule(root=str(tmp_path)).setup()
    index.write_text("".join(json.dumps({**r, "text": "abc"}) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"U\+0061"):
        TextPoseDataModule(root=str(tmp_path)).setup()
    with pytest.raises(FileNotFoundError, match="no index file"):
        TextPoseDataModule(root=str(tmp_path / "poses")).setup()


def test_length_buckets_cover_full_batches_of_similar_length():
    lengths = torch.randint(5, 200, (1000,)).tolist()
    sampler = LengthBucketBatchSampler(lengths, batch_size=10, pool=20)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 100
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([np.ptp([lengths[i] for i in b]) for b in batches])
    assert spread < 20  # random batches of 10 would spread over ~160 frames
    assert list(sampler) != batches  # reshuffled every epoch
    ranks = [list(LengthBucketBatchSampler(lengths, 10, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 50
    assert not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}
