"""The built-in corpus: random HamNoSys signs performed by the procedural signer, written in
the real on-disk format (``.pose`` files + ``index.jsonl``), built once per generator setting."""

from __future__ import annotations

import hashlib
import json
from functools import partial
from pathlib import Path

import numpy as np

from motioncore.data import BuiltinData
from text_to_pose.data.notation import parse_sign, random_sign
from text_to_pose.data.pose_io import write_pose
from text_to_pose.data.signer import SignerStyle, perform
from text_to_pose.data.tokenizer import HamNoSysTokenizer

VERSION = 1  # bump when the generator changes, so stale caches are not reused


def corpus_dir(cache_dir: str | Path, **params) -> Path:
    """Cache folder named by the generator version and parameters."""
    key = json.dumps({"version": VERSION, **params}, sort_keys=True)
    return Path(cache_dir) / f"synthetic-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def corpus(
    out_dir: str | Path,
    n_train: int = 2000,
    n_val: int = 64,
    n_test: int = 64,
    signers_per_text: int = 1,
    seed: int = 0,
    fps: float = 25.0,
) -> BuiltinData:
    """The corpus of these settings at ``out_dir``, built once and rebuilt when one changes."""
    if min(n_train, n_val, n_test) < 1 or signers_per_text < 1:
        raise ValueError("n_train, n_val, n_test and signers_per_text must all be >= 1")
    spec = dict(
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        signers_per_text=signers_per_text,
        seed=seed,
        fps=fps,
    )
    # index.jsonl without a build marker: a corpus of the previous (index-last) generator
    return BuiltinData(
        Path(out_dir), spec, partial(write_corpus, **spec), VERSION, replaces=("index.jsonl",)
    )


def generate_corpus(out_dir: str | Path, **settings) -> Path:
    """Build (once) the corpus of ``settings`` (see :func:`corpus`) and return its index."""
    return corpus(out_dir, **settings).build() / "index.jsonl"


def write_corpus(
    out_dir: Path,
    n_train: int,
    n_val: int,
    n_test: int,
    signers_per_text: int,
    seed: int,
    fps: float,
) -> None:
    """Write the ``.pose`` files and ``index.jsonl`` into ``out_dir``.

    Texts are unique and each belongs to one split, so no sign (and no recording) is shared
    between train, val and test. Training texts are performed by ``signers_per_text`` signers;
    every recording draws its own signer style. Same arguments, same bytes.
    """
    tokenizer = HamNoSysTokenizer()
    rng = np.random.default_rng(seed)
    texts: dict[str, None] = {}
    total = n_train + n_val + n_test
    for _ in range(100 * total):
        texts.setdefault(random_sign(rng, tokenizer))
        if len(texts) == total:
            break
    else:
        raise RuntimeError(f"could not draw {total} distinct signs; lower the corpus size")
    order = list(texts)
    splits = ["val"] * n_val + ["test"] * n_test + ["train"] * n_train
    rows, recording = [], 0
    for text, split in zip(order, splits):
        spec = parse_sign(text, tokenizer)
        for _ in range(signers_per_text if split == "train" else 1):
            sample_rng = np.random.default_rng([seed, recording])
            data, confidence = perform(spec, SignerStyle.sample(sample_rng, fps), sample_rng)
            name = f"poses/{split}_{recording:06d}.pose"
            write_pose(out_dir / name, data, confidence, fps)
            rows.append({"pose": name, "text": text, "split": split, "fps": fps})
            recording += 1
    (out_dir / "index.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8"
    )
