"""motioncore.data.build_once: reuse by spec, atomic install, concurrent builders, crashes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from pathlib import Path

import pytest

from motioncore.data import build_once, is_built, source_fingerprint
from motioncore.data.cache import MARKER


def _write(folder: Path, value: int = 1, delay: float = 0.0) -> None:
    """A tiny generator: a few files, slow enough that two builders overlap."""
    (folder / "sub").mkdir()
    for i in range(3):
        (folder / "sub" / f"{i}.txt").write_text(f"{value}-{i}\n")
        time.sleep(delay)


def _build_in_process(root: str, value: int, delay: float, start, results) -> None:
    start.wait()
    build_once(root, {"value": value}, lambda f: _write(f, value, delay))
    results.put(sorted(p.name for p in Path(root, "sub").iterdir()))


def _contents(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_reuses_a_build_of_the_same_spec_and_rebuilds_another(tmp_path, caplog):
    root = tmp_path / "cache"
    calls = []

    def build(folder, value):
        calls.append(value)
        _write(folder, value)

    assert build_once(root, {"value": 1, "sizes": (2, 3)}, lambda f: build(f, 1)) == root
    assert build_once(root, {"value": 1, "sizes": [2, 3]}, lambda f: build(f, 1)) == root
    assert calls == [1]  # tuples and lists are the same JSON spec
    with caplog.at_level(logging.WARNING, logger="motioncore.data.cache"):
        build_once(root, {"value": 2, "sizes": [2, 3]}, lambda f: build(f, 2))
    assert calls == [1, 2] and (root / "sub/0.txt").read_text() == "2-0\n"
    assert "other settings" in caplog.text and "value: 1 -> 2" in caplog.text
    build_once(root, {"value": 2, "sizes": [2, 3]}, lambda f: build(f, 2), version=2)
    assert calls == [1, 2, 2]
    assert json.loads((root / MARKER).read_text()) == {
        "version": 2,
        "spec": {"value": 2, "sizes": [2, 3]},
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache.lock", "cache"]


def test_a_crashed_build_leaves_nothing_that_is_reused(tmp_path):
    root = tmp_path / "cache"

    def crash(folder):
        _write(folder)
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError, match="generator failed"):
        build_once(root, {"value": 1}, crash)
    assert not root.exists() and not is_built(root, {"value": 1})
    assert [p.name for p in tmp_path.iterdir()] == [".cache.lock"]
    # a stale build survives a failed rebuild untouched, and is not taken for the new spec
    build_once(root, {"value": 1}, _write)
    with pytest.raises(RuntimeError):
        build_once(root, {"value": 2}, crash)
    assert is_built(root, {"value": 1}) and not is_built(root, {"value": 2})
    # the temporary folder of a build killed outright is removed by the next build
    (tmp_path / ".cache.building-killed").mkdir()
    build_once(root, {"value": 3}, lambda f: _write(f, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache.lock", "cache"]


def test_two_processes_building_at_once_end_with_one_valid_cache(tmp_path):
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(2), ctx.Queue()
    root = tmp_path / "cache"
    procs = [
        ctx.Process(target=_build_in_process, args=(str(root), 7, 0.05, start, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert [results.get(timeout=5) for _ in procs] == [["0.txt", "1.txt", "2.txt"]] * 2
    assert is_built(root, {"value": 7})
    assert _contents(root) == {
        MARKER: (root / MARKER).read_text(),
        **{f"sub/{i}.txt": f"7-{i}\n" for i in range(3)},
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache.lock", "cache"]


def test_a_builder_that_lost_the_race_keeps_the_winners_folder(tmp_path, monkeypatch):
    """Without a lock (a filesystem lacking flock) the rename alone decides: the first wins."""
    import motioncore.data.cache as cache

    monkeypatch.setattr(cache, "fcntl", None)
    root = tmp_path / "cache"

    def build_while_another_finishes(folder):
        _write(folder, 5)
        build_once(root, {"value": 5}, lambda f: _write(f, 5))  # the other process wins

    build_once(root, {"value": 5}, build_while_another_finishes)
    assert is_built(root, {"value": 5}) and (root / "sub/2.txt").read_text() == "5-2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_a_folder_that_is_not_a_build_is_refused_not_deleted(tmp_path):
    users = tmp_path / "my_data"
    users.mkdir()
    (users / "clip.mp4").write_text("precious")
    with pytest.raises(FileExistsError, match="not written by this data generator"):
        build_once(users, {"value": 1}, _write)
    assert (users / "clip.mp4").read_text() == "precious"
    # the marker an older generator of this cache wrote makes it a stale build
    (users / ".complete").write_text("ok\n")
    build_once(users, {"value": 1}, _write, replaces=(".complete",))
    assert is_built(users, {"value": 1}) and not (users / "clip.mp4").exists()
    with pytest.raises(TypeError, match="JSON values"):
        build_once(tmp_path / "x", {"value": object()}, _write)


def test_source_fingerprint_changes_when_a_file_is_edited_added_or_removed(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"1")
    first = source_fingerprint(tmp_path, ["a.npz"])
    assert list(first) == ["a.npz"]
    (tmp_path / "a.npz").write_bytes(b"22")
    assert source_fingerprint(tmp_path, ["a.npz"]) != first
    (tmp_path / "b.npz").write_bytes(b"3")
    assert list(source_fingerprint(tmp_path, [tmp_path / "b.npz", "a.npz"])) == ["a.npz", "b.npz"]
    assert source_fingerprint(tmp_path, ["gone.npz"]) == {"gone.npz": None}


def test_datamodule_builds_in_prepare_data_and_setup_under_a_trainer_only_reads(tmp_path):
    from motioncore.data import BuiltinData
    from motioncore.train import BaseDataModule

    class Tiny(BaseDataModule):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def builtin_data(self):
            return BuiltinData(
                tmp_path / "c", {"value": self.value}, lambda f: _write(f, self.value)
            )

    assert Tiny(1).builtin_root() == tmp_path / "c"  # no Trainer: one process builds it here
    under_trainer = Tiny(2)
    under_trainer.trainer = object()
    with pytest.raises(RuntimeError, match="missing or was built by other settings"):
        under_trainer.builtin_root()
    assert (tmp_path / "c/sub/0.txt").read_text() == "1-0\n"  # setup wrote nothing
    under_trainer.prepare_data()
    assert under_trainer.builtin_root() == tmp_path / "c"
    assert (tmp_path / "c/sub/0.txt").read_text() == "2-0\n"
