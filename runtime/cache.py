"""On-disk cache of built artifacts: emu shared libraries now, cubins for the cuda backend.

An entry is one artifact file named by a content key (sha256 over everything that went
into the build: source, flags, compiler version, arch ...) plus a JSON sidecar holding
the artifact's sha256 and length, so a truncated or corrupted entry is detected and
rebuilt instead of being loaded.

Concurrency: a process that misses takes a per-entry file lock (filelock) before
building, and looks again once it holds it, so N processes that want the same entry
build it once. Publishing is atomic: the artifact is built in a private temporary
directory next to the entry, fsync'ed, then os.replace'd into place (sidecar last).
Readers never lock: an entry whose sidecar does not match is simply "not there yet". A
process killed mid-build (SIGKILL, a crash) releases its lock with its life and leaves at
most a build directory, which the next builder of that key deletes, and never a sidecar
that matches a partial artifact (tests/test_faults.py kills compiles at each step).

Layout: <root>/<key[:2]>/<key><suffix>, <...>.meta.json, <...>.lock
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

import filelock
import platformdirs

__all__ = ["KernelCache", "CacheError", "default_cache"]

_LOCK_TIMEOUT_S = 900.0  # a build that holds the lock longer than this is presumed stuck
_KEY_RE = re.compile(r"^[0-9A-Za-z_-]{8,128}$")
_SUFFIX_RE = re.compile(r"^(\.[0-9A-Za-z_-]+)*$")
_FORMAT = 1  # sidecar format version


class CacheError(RuntimeError):
    """The cache itself failed (not the build): a bad key, a build that wrote nothing."""


class KernelCache:
    """A directory of built artifacts, addressed by content keys.

    Counters (for this instance only): `hits` (a valid entry was found, possibly after
    waiting for another process to build it), `misses` (built because absent),
    `rebuilds` (built because the entry was corrupt or truncated).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        if root is None:
            root = os.environ.get("THETA_CACHE_DIR") or platformdirs.user_cache_dir("theta")
        self.root: Path = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        self.rebuilds = 0

    def __repr__(self) -> str:
        return f"KernelCache({str(self.root)!r}, hits={self.hits}, misses={self.misses}, rebuilds={self.rebuilds})"

    def key(self, **parts: str) -> str:
        """sha256 (hex) over the named parts, in sorted name order, each length-prefixed."""
        digest = hashlib.sha256()
        for name in sorted(parts):
            value = parts[name]
            if not isinstance(value, str):
                raise TypeError(f"cache key part {name!r} must be a str, got {type(value).__name__}")
            for piece in (name.encode(), value.encode()):
                digest.update(len(piece).to_bytes(8, "little"))
                digest.update(piece)
        return digest.hexdigest()

    def path(self, key: str, suffix: str = "") -> Path:
        """Where the entry for `key` lives (whether or not it exists)."""
        if not _KEY_RE.match(key):
            raise CacheError(f"invalid cache key {key!r}")
        if not _SUFFIX_RE.match(suffix):
            raise CacheError(f"invalid cache suffix {suffix!r}")
        return self.root / key[:2] / f"{key}{suffix}"

    def get_or_build(self, key: str, build: Callable[[Path], None], suffix: str = "") -> Path:
        """Path of a valid entry for `key`, building it first if needed.

        `build(tmp_path)` must write the artifact to `tmp_path` (a file in a private
        temporary directory; it may write scratch files next to it). If it raises, the
        exception propagates and no entry is left behind.
        """
        path = self.path(key, suffix)
        if _is_valid(path):
            self.hits += 1
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(path) + ".lock", timeout=_LOCK_TIMEOUT_S):
            if _is_valid(path):  # another process built it while we waited
                self.hits += 1
                return path
            corrupt = path.exists() or _meta_path(path).exists()
            if corrupt:  # never leave a known-bad entry behind, even if the rebuild fails
                path.unlink(missing_ok=True)
                _meta_path(path).unlink(missing_ok=True)
            _remove_stale_builds(path, key)
            _build_and_publish(path, key, suffix, build)
        if corrupt:
            self.rebuilds += 1
        else:
            self.misses += 1
        return path

    def clear(self) -> None:
        """Deletes every entry (and stray temporary directories) under the root."""
        for child in self.root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _is_valid(path: Path) -> bool:
    """True if the artifact exists and matches its sidecar's length and sha256."""
    try:
        meta = json.loads(_meta_path(path).read_text())
        if path.stat().st_size != meta["size"]:
            return False
        return _digest(path) == (meta["sha256"], meta["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _remove_stale_builds(path: Path, key: str) -> None:
    """Delete the build directories of ``key`` left by processes killed while building it. Only
    the holder of the entry's lock builds it, and we hold it: any such directory is a dead one."""
    for stale in path.parent.glob(f".build-{key[:16]}-*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _build_and_publish(path: Path, key: str, suffix: str, build: Callable[[Path], None]) -> None:
    tmpdir = Path(tempfile.mkdtemp(prefix=f".build-{key[:16]}-", dir=path.parent))
    try:
        artifact = tmpdir / f"artifact{suffix}"
        build(artifact)
        if not artifact.is_file():
            raise CacheError(f"build for cache key {key} wrote nothing to {artifact}")
        sha256, size = _digest(artifact)
        meta = tmpdir / "meta.json"
        meta.write_text(json.dumps({"format": _FORMAT, "key": key, "sha256": sha256, "size": size}))
        _fsync(artifact)
        _fsync(meta)
        # Artifact first, sidecar last: a reader that sees the new artifact before its
        # sidecar finds them mismatched, takes the lock and waits for us.
        os.replace(artifact, path)
        os.replace(meta, _meta_path(path))
        _fsync(path.parent)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


_default: KernelCache | None = None
_default_lock = threading.Lock()


def default_cache() -> KernelCache:
    """The process-wide cache (created on first use; honours THETA_CACHE_DIR then)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = KernelCache()
        return _default
