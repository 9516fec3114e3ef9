"""DataModule: the built-in synthetic corpus, or a real corpus through ``data.root``."""

from __future__ import annotations

import logging
from pathlib import Path

from torch.utils.data import DataLoader

from motioncore.data import BuiltinData
from motioncore.train import BaseDataModule
from text_to_pose.data.corpus import corpus, corpus_dir
from text_to_pose.data.dataset import LengthBucketBatchSampler, TextPoseDataset
from text_to_pose.data.index import SPLITS, find_index, read_index

log = logging.getLogger(__name__)


class TextPoseDataModule(BaseDataModule):
    """Reads ``<root>/index.{jsonl,csv}`` and its ``.pose`` files.

    Args:
        root: folder of a real corpus; ``None`` generates (once) and uses the built-in one
            under ``cache_dir``.
        index: index file name inside ``root`` (default: index.jsonl, then index.csv).
        synthetic: generator arguments (:func:`generate_corpus`) for the built-in corpus.
        fps: every recording is resampled to this rate.
        max_frames, max_text_len: longer recordings/texts are skipped (model table sizes).
        bucket_by_length: training batches of similar lengths (less padding compute).
    """

    def __init__(self, root: str | None = None, index: str | None = None,
                 cache_dir: str = "data/text-to-pose", synthetic: dict | None = None,
                 fps: float = 25.0, max_frames: int = 200, max_text_len: int = 64,
                 batch_size: int = 32, eval_batch_size: int | None = None,
                 per_device_batch_size: int | None = None,
                 num_workers: int = 0, bucket_by_length: bool = True, seed: int = 0) -> None:  # fmt: skip
        super().__init__(batch_size, num_workers, eval_batch_size, per_device_batch_size)
        self.bucket_by_length, self.seed = bucket_by_length, seed
        self.root, self.index, self.cache_dir = root, index, cache_dir
        self.synthetic = dict(synthetic or {})
        self.fps, self.max_frames, self.max_text_len = fps, max_frames, max_text_len

    def builtin_data(self) -> BuiltinData | None:
        if self.root is not None:
            return None
        params = {**self.synthetic, "fps": self.fps}
        return corpus(corpus_dir(self.cache_dir, **params), **params)

    def index_path(self) -> Path:
        if self.root is not None:
            return find_index(self.root, self.index)
        return self.builtin_root() / "index.jsonl"

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        records = read_index(self.index_path())
        by_split = {s: [r for r in records if r.split == s] for s in SPLITS}
        files = {s: {r.pose.resolve() for r in by_split[s]} for s in SPLITS}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = files[a] & files[b]
            if shared:
                raise ValueError(
                    f"{len(shared)} pose files are in both the {a} and {b} splits (e.g. "
                    f"{sorted(shared)[0]}); every recording must belong to one split"
                )
        texts = {s: {r.text for r in by_split[s]} for s in SPLITS}
        if texts["train"] & texts["test"]:
            log.warning("%d test texts also occur in training", len(texts["train"] & texts["test"]))
        for split in SPLITS:
            if not by_split[split]:
                raise ValueError(f"the index has no {split!r} rows; every split needs recordings")
        args = (self.fps, self.max_frames, self.max_text_len)
        self.train_set = TextPoseDataset(by_split["train"], *args)
        self.val_set = TextPoseDataset(by_split["val"], *args)
        self.test_set = TextPoseDataset(by_split["test"], *args)

    def train_dataloader(self) -> DataLoader:
        if not self.bucket_by_length:
            return super().train_dataloader()
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        sampler = LengthBucketBatchSampler(
            [len(item["pose"]) for item in self.train_set.items],
            self.rank_batch_size(self.batch_size), seed=self.seed, rank=rank,
            world_size=world,
        )  # fmt: skip
        return DataLoader(self.train_set, batch_sampler=sampler, collate_fn=self.train_set.collate,
                          num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)  # fmt: skip
