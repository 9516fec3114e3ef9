"""Text-motion crops in SMPL-RIFKE features, the collate function and the DataModule."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from motioncore.data import BuiltinData, source_fingerprint
from motioncore.train import BaseDataModule
from stmc_keyframe.data.amass import (
    FPS,
    SmplxJoints,
    joints_and_rotations,
    load_npz,
    read_annotations,
)
from stmc_keyframe.data.builtin import builtin
from stmc_keyframe.representation import smplrifke

log = logging.getLogger(__name__)


@dataclass
class Item:
    feats: torch.Tensor  # [L, 205]
    text: str
    boundaries: list[int]  # frames where another annotated segment starts/ends inside the crop
    keyid: str


class MotionTextDataset(Dataset):
    """Annotated crops; training crops are randomly trimmed by up to ``drop_motion_perc``."""

    def __init__(self, items: list[Item], max_len: int, train: bool, drop_motion_perc: float = 0.1):
        if not items:
            raise ValueError(
                "a split has no motion crops of a usable length: check the split files, "
                "data.builtin.n_motions (>= 10 for non-empty splits) and data.min_seconds"
            )
        self.items, self.max_len, self.train, self.drop = items, max_len, train, drop_motion_perc

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        it = self.items[i]
        feats, start = it.feats, 0
        length = len(feats)
        if self.train:
            cut = int(torch.randint(0, int(self.drop * length) + 1, (1,)))
            start = int(torch.randint(0, cut + 1, (1,)))
            length -= cut
            if length > self.max_len:
                start += int(torch.randint(0, length - self.max_len + 1, (1,)))
        length = min(length, self.max_len)
        bounds = [b - start for b in it.boundaries if 0 < b - start < length]
        return {"feats": feats[start : start + length], "text": it.text, "boundaries": bounds,
                "keyid": it.keyid}  # fmt: skip

    @staticmethod
    def collate(batch: list[dict]) -> dict:
        lengths = torch.tensor([len(b["feats"]) for b in batch])
        feats = torch.zeros(len(batch), int(lengths.max()), smplrifke.N_FEATS)
        for i, b in enumerate(batch):
            feats[i, : len(b["feats"])] = b["feats"]
        return {
            "feats": feats, "lengths": lengths, "text": [b["text"] for b in batch],
            "boundaries": [b["boundaries"] for b in batch], "keyid": [b["keyid"] for b in batch],
        }  # fmt: skip


def encoded_motions(
    root: Path, split: str, body_model: SmplxJoints | None
) -> dict[str, torch.Tensor]:
    """SMPL-RIFKE features of every motion of a split, cached next to the data and keyed by the
    split's motion files (path, size, mtime): editing, adding or removing a motion recomputes."""
    records = read_annotations(root, split)
    key = {
        "keyids": {rec.keyid: os.path.relpath(rec.path, root) for rec in records},
        "sources": source_fingerprint(root, [rec.path for rec in records]),
    }
    cache = root / f"features_{split}_{'smplx' if body_model else 'skeleton'}.pt"
    if cache.is_file():
        stored = torch.load(cache, weights_only=True)
        if isinstance(stored, dict) and stored.get("key") == key:
            return stored["features"]
        log.info("recomputing %s: the motion files of the %s split changed", cache, split)
    out = {}
    for rec in records:
        poses, trans = load_npz(rec.path, FPS)
        joints, rot = joints_and_rotations(poses, trans, body_model)
        out[rec.keyid] = smplrifke.encode(joints, rot)
    # a unique temporary name: DDP ranks computing the same cache never share a partial file
    fd, tmp = tempfile.mkstemp(prefix=f".{cache.name}.", dir=root)
    os.close(fd)
    torch.save({"key": key, "features": out}, tmp)
    os.replace(tmp, cache)
    return out


def crops_of_split(
    root: Path, split: str, min_len: int, body_model: SmplxJoints | None = None
) -> list[Item]:
    """Cut the annotated crops of each encoded motion (the features are crop-invariant)."""
    items = []
    motions = encoded_motions(root, split, body_model)
    for rec in read_annotations(root, split):
        feats = motions[rec.keyid]
        edges = sorted({round(x * FPS) for a in rec.annotations for x in (a.start, a.end)})
        for a in rec.annotations:
            s, e = round(a.start * FPS), min(round(a.end * FPS), len(feats))
            if e - s < min_len:
                continue
            items.append(
                Item(feats[s:e].clone(), a.text, [b - s for b in edges if s < b < e], rec.keyid)
            )
    return items


class MotionDataModule(BaseDataModule):
    """Built-in procedural data (``root=null``) or AMASS + HumanML3D-style data at ``root``.

    Per-feature mean/std over all training frames are computed on every fresh setup (upstream
    only saved them when resuming) and handed to the model, which stores them in its weights.
    """

    def __init__(
        self,
        root: str | None = None,
        data_dir: str = "data",
        builtin: dict | None = None,
        body_model_path: str | None = None,
        min_seconds: float = 2.0,
        max_len: int = 200,
        drop_motion_perc: float = 0.1,
        max_test_items: int | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        per_device_batch_size: int | None = None,
        num_workers: int = 0,
    ):
        super().__init__(batch_size, num_workers, eval_batch_size, per_device_batch_size)
        self.root, self.data_dir, self.builtin = root, Path(data_dir), dict(builtin or {})
        self.body_model_path = body_model_path
        self.min_len, self.max_len = int(min_seconds * FPS), max_len
        self.drop, self.max_test_items = drop_motion_perc, max_test_items
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def builtin_data(self) -> BuiltinData | None:
        if self.root is not None:
            return None
        tag = "procedural_v2_s{seed}_n{n_motions}".format(
            **{"seed": 0, "n_motions": 300, **self.builtin}
        )
        return builtin(self.data_dir / "stmc-keyframe" / tag, **self.builtin)

    def data_root(self) -> Path:
        return Path(self.root) if self.root is not None else self.builtin_root()

    def _body_model(self) -> SmplxJoints | None:
        return SmplxJoints(self.body_model_path) if self.body_model_path else None

    def prepare_data(self) -> None:
        """Build the built-in data, then the feature caches of every split (local rank 0)."""
        super().prepare_data()
        body = self._body_model()
        for split in ("train", "val", "test"):
            encoded_motions(self.data_root(), split, body)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        root = self.data_root()
        body = self._body_model()
        train = crops_of_split(root, "train", self.min_len, body)
        val = crops_of_split(root, "val", self.min_len, body)
        test = crops_of_split(root, "test", self.min_len, body)
        # evaluate the longest (composed) annotation of each test motion: transitions inside
        best: dict[str, Item] = {}
        for it in test:
            if it.keyid not in best or len(it.feats) > len(best[it.keyid].feats):
                best[it.keyid] = it
        test = list(best.values())[: self.max_test_items]
        frames = torch.cat([it.feats for it in train])
        self.stats = (frames.mean(0), frames.std(0))
        self.train_set = MotionTextDataset(train, self.max_len, True, self.drop)
        self.val_set = MotionTextDataset(val, self.max_len, False)
        self.test_set = MotionTextDataset(test, self.max_len, False)
        log.info("crops: %d train, %d val, %d test", len(train), len(val), len(test))
