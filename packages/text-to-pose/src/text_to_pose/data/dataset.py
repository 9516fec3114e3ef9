"""Pose/text pairs in memory and their padding collator."""

from __future__ import annotations

import logging

import torch
from torch.utils.data import Dataset

from motioncore.masking import length_mask
from text_to_pose.data.index import Record
from text_to_pose.data.pose_io import read_pose
from text_to_pose.data.tokenizer import PAD, HamNoSysTokenizer

log = logging.getLogger(__name__)


class TextPoseDataset(Dataset):
    """Loads every record of one split (preprocessed by :func:`read_pose`) into memory.

    Recordings longer than ``max_frames`` or with texts longer than ``max_text_len - 1`` glyphs
    are skipped with a warning (upstream filtered by length as well); an unknown glyph is an
    error naming the file.
    """

    def __init__(self, records: list[Record], fps: float, max_frames: int, max_text_len: int):
        self.tokenizer = HamNoSysTokenizer()
        self.items: list[dict] = []
        skipped = 0
        for record in records:
            try:
                ids = self.tokenizer.encode(record.text)
            except ValueError as e:
                raise ValueError(f"{record.pose}: {e}") from e
            pose = read_pose(record.pose, fps)
            if len(pose.data) > max_frames or len(ids) > max_text_len or len(pose.data) < 2:
                skipped += 1
                continue
            self.items.append({
                "text": record.text,
                "text_ids": torch.tensor(ids),
                "pose": torch.from_numpy(pose.data),
                "confidence": torch.from_numpy(pose.confidence),
                "id": record.pose.stem,
            })  # fmt: skip
        if skipped:
            log.warning(
                "skipped %d of %d recordings longer than data.max_frames=%d frames or "
                "data.max_text_len=%d tokens", skipped, len(records), max_frames, max_text_len
            )  # fmt: skip
        if not self.items:
            raise ValueError("no usable recording in this split (see the warning above)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]

    @staticmethod
    def collate(items: list[dict]) -> dict:
        """Right-pad frames (zeros, confidence 0) and texts (PAD) to the batch maximum."""
        lengths = torch.tensor([len(it["pose"]) for it in items])
        text_lengths = torch.tensor([len(it["text_ids"]) for it in items])
        b, frames, width = len(items), int(lengths.max()), int(text_lengths.max())
        pose = torch.zeros(b, frames, *items[0]["pose"].shape[1:])
        confidence = torch.zeros(b, frames, items[0]["confidence"].shape[1])
        ids = torch.full((b, width), PAD, dtype=torch.long)
        for row, it in enumerate(items):
            pose[row, : lengths[row]] = it["pose"]
            confidence[row, : lengths[row]] = it["confidence"]
            ids[row, : text_lengths[row]] = it["text_ids"]
        return {
            "pose": pose,
            "confidence": confidence,
            "lengths": lengths,
            "frame_valid": length_mask(lengths, frames),
            "text_ids": ids,
            "text_valid": length_mask(text_lengths, width),
            "texts": [it["text"] for it in items],
            "ids": [it["id"] for it in items],
        }


class LengthBucketBatchSampler:
    """Shuffled full batches of similar length, so that padding (and its compute) stays small.

    Indices are shuffled, cut into pools of ``pool`` batches, sorted by length inside each
    pool, cut into batches, and the batches are shuffled again; each of ``world_size`` ranks
    takes every ``world_size``-th batch (equal counts). Written here because torch has no
    length-bucketing sampler and this one needs the dataset's lengths.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, pool: int = 50,
                 rank: int = 0, world_size: int = 1) -> None:  # fmt: skip
        if len(lengths) < batch_size * world_size:
            raise ValueError(
                f"{len(lengths)} training recordings cannot fill one batch of {batch_size} on "
                f"each of {world_size} ranks; lower data.batch_size"
            )
        self.lengths = torch.as_tensor(lengths)
        self.batch_size, self.seed, self.pool = batch_size, seed, pool
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g)
        batches = []
        chunk = self.batch_size * self.pool
        for start in range(0, len(order), chunk):
            pool = order[start : start + chunk]
            pool = pool[torch.argsort(self.lengths[pool], stable=True)]
            batches += [pool[i : i + self.batch_size].tolist()
                        for i in range(0, len(pool), self.batch_size)]  # fmt: skip
        batches = [b for b in batches if len(b) == self.batch_size]  # drop the short ones
        batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        usable = len(batches) - len(batches) % self.world_size
        return batches[self.rank : usable : self.world_size]

    def __iter__(self):
        batches = self._batches()
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        # Every pool but the last is a whole number of batches, so this is exact.
        return len(self.lengths) // self.batch_size // self.world_size
