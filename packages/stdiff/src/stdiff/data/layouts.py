"""Train/val/test sequences of ``data.root`` for the folder layouts upstream's loaders read
(``stdiff/utils/dataset.py`` of XiYe20/STDiffProject), so real data loads without making split
folders by hand. ``detect`` picks the layout; ``data.layout=<name>`` forces one.

- ``cityscapes``: ``leftImg8bit_sequence`` with ``train/ val/ test/`` of city folders holding
  ``<city>_<seq>_<frame>_leftImg8bit.png``; ``data.root`` may be that folder or its parent. A
  sequence is one run of consecutive frame numbers of one ``<city>_<seq>`` (upstream's grouping).
- ``kth``: action folders (``boxing``, ``handclapping``, ``handwaving``, ``jogging_no_empty``,
  ``running_no_empty``, ``walking_no_empty``; the plain ``jogging``/``running``/``walking`` where
  the ``_no_empty`` ones are absent) of ``personNN_<action>_dN`` frame folders; persons 1-16
  train except person 5 (val), 17-25 test.
- ``split_folders``: ``train/ val/ test/`` folders of sequences. Without ``val/`` (BAIR: upstream's
  tfrecord conversion writes ``train/`` and ``test/`` of ``example_N`` folders) val is 5% of the
  train sequences, drawn with upstream's ``random_split`` seed 2021.
- ``drives``: sequence folders up to two levels below ``data.root`` (KITTI ``<date>/<drive>_sync``),
  sorted by name and split by index (:func:`split_by_ids`).
"""

from __future__ import annotations

import re
from itertools import groupby
from pathlib import Path

import torch

from stdiff.data.formats import FrameRun, find_sequences, frame_files, list_sequences

LAYOUTS = ("auto", "split_folders", "cityscapes", "kth", "drives")
SPLITS = ("train", "val", "test")
KITTI_TEST_IDS = [10, 11, 12, 13]
KTH_ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
KTH_PERSONS = {
    "train": [p for p in range(1, 17) if p != 5],
    "val": [5],
    "test": list(range(17, 26)),
}
BAIR_TRAIN_FRACTION, BAIR_SEED = 0.95, 2021
CITYSCAPES_FILE = re.compile(r"^(?P<seq>.+_\d+)_(?P<frame>\d+)_leftImg8bit\.(png|jpe?g)$", re.I)
KTH_FOLDER = re.compile(r"^person(?P<id>\d+)_", re.I)


def _cityscapes_root(root: Path) -> Path | None:
    for base in (root, root / "leftImg8bit_sequence"):
        train = base / "train"
        if train.is_dir() and any(
            CITYSCAPES_FILE.match(f.name)
            for city in train.iterdir()
            if city.is_dir()
            for f in city.iterdir()
        ):
            return base
    return None


def _kth_actions(root: Path) -> list[Path]:
    found = []
    for action in KTH_ACTIONS:
        for name in (f"{action}_no_empty", action):
            if (root / name).is_dir():
                found.append(root / name)
                break
    return found


def detect(root: Path, fmt: str) -> str:
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist; set data.root=<folder>")
    if fmt == "frames" and _cityscapes_root(root) is not None:
        return "cityscapes"
    if fmt == "frames" and _kth_actions(root):
        return "kth"
    if (root / "train").is_dir():
        return "split_folders"
    return "drives"


def split_by_ids(seqs: list[Path], split: str, ids: dict) -> list[Path]:
    """One split of ``seqs`` by index: ``ids = {"test": [...], "val": [...]}``, the rest train.
    Default: upstream's KITTI split (test = drives 10-13, val = the first two others) with more
    than 13 sequences, else the last one is test and the one before val."""
    n = len(seqs)
    if n < 3 and not ids:
        raise ValueError(
            f"only {n} sequence(s) found; a train/val/test split needs 3: add sequences, set "
            "data.split_ids={test: [..], val: [..]}, or make train/ val/ test/ folders"
        )
    test = list(ids.get("test", KITTI_TEST_IDS if n > 13 else [n - 1]))
    rest = [i for i in range(n) if i not in test]
    val = list(ids.get("val", rest[:2] if n > 13 else [rest[-1]]))
    bad = [i for i in test + val if not 0 <= i < n]
    if bad:
        raise ValueError(f"data.split_ids {bad} out of range for {n} sequences")
    chosen = {"test": test, "val": val}.get(split)
    if chosen is None:
        chosen = [i for i in rest if i not in val]
    return [seqs[i] for i in chosen]


def _split_folders(root: Path, split: str, fmt: str) -> list[Path]:
    folder = root / split
    if split != "test" and not (root / "val").is_dir():
        return _bair_split(list_sequences(root / "train", fmt), split)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is missing: data.root has train/ and must also contain {split}/ (val/ may "
            f"be left out: 5% of train then) of {fmt} sequences"
        )
    return list_sequences(folder, fmt)


def _bair_split(seqs: list[Path], split: str) -> list[Path]:
    n_train = int(len(seqs) * BAIR_TRAIN_FRACTION)
    if n_train == len(seqs) and split == "val":
        n_train -= 1
    order = torch.randperm(len(seqs), generator=torch.Generator().manual_seed(BAIR_SEED)).tolist()
    chosen = sorted(order[:n_train] if split == "train" else order[n_train:])
    if not chosen:
        raise ValueError(
            f"{len(seqs)} train sequence(s) cannot give both train and val (5%): add sequences "
            "or a val/ folder"
        )
    return [seqs[i] for i in chosen]


def cityscapes_runs(city: Path) -> list[FrameRun]:
    """The runs of consecutive frame numbers of each ``<city>_<seq>`` in one city folder."""
    named = sorted(
        (m["seq"], int(m["frame"]), f)
        for f in city.iterdir()
        if (m := CITYSCAPES_FILE.match(f.name))
    )
    runs = []
    for _, frames in groupby(named, key=lambda t: t[0]):
        frames = list(frames)
        for _, run in groupby(enumerate(frames), key=lambda it: it[1][1] - it[0]):
            runs.append(FrameRun(tuple(f for _, (_, _, f) in run)))
    return runs


def _cityscapes(root: Path, split: str) -> list[FrameRun]:
    base = _cityscapes_root(root)
    folder = base / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is missing: the Cityscapes layout needs train/ val/ test/ city folders of "
            "<city>_<seq>_<frame>_leftImg8bit.png frames"
        )
    runs = [r for city in sorted(folder.iterdir()) if city.is_dir() for r in cityscapes_runs(city)]
    if not runs:
        raise FileNotFoundError(f"no <city>_<seq>_<frame>_leftImg8bit frames in {folder}/<city>/")
    return runs


def _kth(root: Path, split: str, fmt: str) -> list[Path]:
    persons = KTH_PERSONS[split]
    seqs = []
    for action in _kth_actions(root):
        for folder in sorted(p for p in action.iterdir() if p.is_dir()):
            m = KTH_FOLDER.match(folder.name)
            if m and int(m["id"]) in persons and frame_files(folder, fmt):
                seqs.append(folder)
    if not seqs:
        raise FileNotFoundError(
            f"no KTH frame folders of persons {persons} ({split}) under {root}/<action>/ "
            "(expected personNN_<action>_dN folders of frames)"
        )
    return seqs


def split_sequences(
    root: Path, split: str, fmt: str, layout: str = "auto", split_ids: dict | None = None
) -> list[Path | FrameRun]:
    """The sequences of ``split`` (train/val/test) under ``root`` in ``layout`` (see module doc)."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is unknown; use one of {SPLITS}")
    if layout not in LAYOUTS:
        raise ValueError(f"data.layout={layout!r} is unknown; use one of {LAYOUTS}")
    if layout == "auto":
        layout = detect(root, fmt)
    if layout in ("cityscapes", "kth") and fmt != "frames":
        raise ValueError(f"the {layout} layout holds image frames: set data.format=frames")
    if layout == "cityscapes":
        if _cityscapes_root(root) is None:
            raise FileNotFoundError(
                f"data.layout=cityscapes but {root} has no train/<city>/*_leftImg8bit.png (nor "
                "under leftImg8bit_sequence/)"
            )
        return _cityscapes(root, split)
    if layout == "kth":
        return _kth(root, split, fmt)
    if layout == "split_folders":
        return _split_folders(root, split, fmt)
    return split_by_ids(find_sequences(root, fmt), split, split_ids or {})
