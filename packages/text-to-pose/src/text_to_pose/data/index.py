"""The index of a pose corpus: one row per recording with its ``.pose`` file, HamNoSys text,
split and optional fps, as CSV (header row) or JSON lines."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")
REQUIRED = ("pose", "text", "split")
INDEX_NAMES = ("index.jsonl", "index.csv")


@dataclass(frozen=True)
class Record:
    pose: Path
    text: str
    split: str
    fps: float | None


def find_index(root: str | Path, index: str | None = None) -> Path:
    """``root/index`` or the first of ``index.jsonl`` / ``index.csv`` in ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data.root={root} is not a folder")
    candidates = [root / index] if index else [root / n for n in INDEX_NAMES]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no index file in {root} (looked for {[c.name for c in candidates]}); write a CSV or "
        f"JSONL with columns {REQUIRED} (+ optional fps) or pass data.index=<file name>"
    )


def read_index(path: str | Path) -> list[Record]:
    """Parse and validate an index; pose paths are relative to the index's folder."""
    path = Path(path)
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    elif path.suffix in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{number}: not valid JSON ({e})") from e
    else:
        raise ValueError(f"index {path} must be .csv or .jsonl")
    if not rows:
        raise ValueError(f"index {path} has no rows")
    records = []
    for number, row in enumerate(rows, 1):
        missing = [k for k in REQUIRED if k not in row or row[k] is None]
        if missing:
            raise ValueError(f"{path} row {number}: missing columns {missing} (need {REQUIRED})")
        if row["split"] not in SPLITS:
            raise ValueError(f"{path} row {number}: split {row['split']!r} is not one of {SPLITS}")
        fps = row.get("fps")
        records.append(
            Record(
                path.parent / row["pose"],
                row["text"],
                row["split"],
                float(fps) if fps not in (None, "") else None,
            )  # fmt: skip
        )
    return records
