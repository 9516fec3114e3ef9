"""Build-once dataset caches: a generated folder is reused only if it was built by the same spec.

``build_once(root, spec, build_fn, version)`` writes the data into a temporary sibling of
``root``, puts a marker (``.build.json``: version + spec) inside it last, and renames the folder
into place, so a half-written folder is never at ``root`` and never reused. Concurrent builders
(DDP nodes, parallel sweep trials, two shells) take an ``fcntl`` lock beside ``root``; the
rename keeps the result correct without it (on filesystems without locks both build, the first
rename wins and the loser keeps the winner's folder when its marker matches). A folder built by
other settings or another generator version is rebuilt, and the log names the keys that differ.
A folder without a marker is somebody's data and is refused, never deleted, unless it holds one
of ``replaces`` (the marker a previous generator of this cache wrote).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: the atomic rename alone keeps the cache consistent
    fcntl = None

log = logging.getLogger(__name__)
MARKER = ".build.json"
_BUILDING = ".building-"
_STALE = ".stale-"


def _marker_text(spec: Mapping[str, Any], version: int | str) -> str:
    try:
        return json.dumps({"version": version, "spec": dict(spec)}, sort_keys=True, indent=1)
    except TypeError as err:
        raise TypeError(
            f"a cache spec must hold JSON values (numbers, strings, lists, dicts): {err}"
        ) from None


def _read_marker(root: Path) -> dict | None:
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_built(root: str | Path, spec: Mapping[str, Any], version: int | str = 1) -> bool:
    """Does ``root`` hold a finished build of exactly this ``spec`` and ``version``?"""
    found = _read_marker(Path(root))
    return found is not None and found == json.loads(_marker_text(spec, version))


def _difference(old: dict | None, spec: Mapping[str, Any], version: int | str) -> str:
    new = json.loads(_marker_text(spec, version))
    if old is None:
        return "it was written by an older generator (no build marker)"
    if old.get("version") != new["version"]:
        return f"generator version {old.get('version')} != {new['version']}"
    before, after = old.get("spec", {}), new["spec"]
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return ", ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in keys)


@contextmanager
def _locked(root: Path):
    """Hold an exclusive lock beside ``root`` (released by the kernel if the process dies)."""
    if fcntl is None:
        yield False
        return
    with open(root.parent / f".{root.name}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # a filesystem without flock (some network mounts): rely on the rename
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_replaceable(root: Path, replaces: Iterable[str]) -> None:
    if not root.exists() or (root / MARKER).is_file():
        return
    if root.is_dir() and (not any(root.iterdir()) or any((root / m).exists() for m in replaces)):
        return
    raise FileExistsError(
        f"{root} exists but was not written by this data generator (no {MARKER} marker), so it "
        "is not overwritten: point the data root at another folder to generate the built-in "
        "data there, or delete it to regenerate, or configure it as real data (no generator)"
    )


def build_once(
    root: str | Path,
    spec: Mapping[str, Any],
    build_fn: Callable[[Path], None],
    version: int | str = 1,
    replaces: Iterable[str] = (),
) -> Path:
    """Return ``root`` holding the output of ``build_fn`` for ``spec``, building it at most once.

    Args:
        root: the cache folder.
        spec: every setting the generator output depends on (JSON values): any change rebuilds.
        build_fn: writes the data into the (empty, temporary) folder it is given.
        version: bump when the generator's code changes its output.
        replaces: marker files of an older generator of this cache; a folder holding one is
            rebuilt, any other folder without a marker is refused.
    """
    root = Path(root)
    if is_built(root, spec, version):
        return root
    marker = _marker_text(spec, version)
    root.parent.mkdir(parents=True, exist_ok=True)
    replaces = tuple(replaces)
    with _locked(root) as exclusive:
        if is_built(root, spec, version):  # another process finished while we waited
            return root
        _check_replaceable(root, replaces)
        if exclusive:  # every builder holds the lock: leftovers are from killed builds
            for leftover in root.parent.glob(f".{root.name}{_BUILDING}*"):
                shutil.rmtree(leftover, ignore_errors=True)
        if root.exists():
            log.warning(
                "rebuilding %s: it was built by other settings (%s)",
                root,
                _difference(_read_marker(root), spec, version),
            )
        else:
            log.info("building %s (once)", root)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}{_BUILDING}", dir=root.parent))
        try:
            build_fn(tmp)
            (tmp / MARKER).write_text(marker + "\n")
            _install(tmp, root, spec, version, replaces)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return root


def _install(
    tmp: Path, root: Path, spec: Mapping[str, Any], version: int | str, replaces: tuple[str, ...]
) -> None:
    """Rename the finished ``tmp`` to ``root``; a stale ``root`` is moved aside first."""
    for _ in range(3):
        if root.exists():
            if is_built(root, spec, version):  # a builder without the lock finished first
                return
            _check_replaceable(root, replaces)
            stale = Path(tempfile.mkdtemp(prefix=f".{root.name}{_STALE}", dir=root.parent))
            try:
                os.rename(root, stale / "old")
            except FileNotFoundError:  # another builder moved it away first
                pass
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, root)
        except OSError:
            if not root.exists():
                raise
            continue  # another builder's folder appeared at root in between
        _fsync_dir(root.parent)
        return
    if not is_built(root, spec, version):
        raise RuntimeError(
            f"could not install the built data at {root}: other processes keep replacing it "
            "with builds of other settings; give concurrent runs different data folders"
        )


def source_fingerprint(
    root: str | Path, files: Iterable[str | Path]
) -> dict[str, list[int] | None]:
    """``{path: [size, mtime_ns]}`` of ``files`` (relative to ``root`` when inside it; None for a
    missing file): a cache keyed by it goes stale when a source is edited, added or removed."""
    root = Path(root).resolve()
    out = {}
    for f in files:
        path = (root / f).resolve()
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            out[name] = None
            continue
        out[name] = [st.st_size, st.st_mtime_ns]
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class BuiltinData:
    """What a DataModule generates: ``prepare_data`` builds it, ``setup`` reads ``root``."""

    root: Path
    spec: Mapping[str, Any]
    build_fn: Callable[[Path], None] = field(compare=False)
    version: int | str = 1
    replaces: tuple[str, ...] = ()

    def build(self) -> Path:
        return build_once(self.root, self.spec, self.build_fn, self.version, self.replaces)

    def is_built(self) -> bool:
        return is_built(self.root, self.spec, self.version)
