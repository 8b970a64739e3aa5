"""A checksummed directory: how a saved Program (and a saved function) sits on disk.

Every file of the directory is a plain file name (no separators, no leading dot, no
symlinks) listed in ``checksums.json`` with its sha256; the listing is the only way a
reader learns which files exist, so nothing outside the directory is ever opened.

    checksums.json   {"format": "theta-checksums", "version": 1, "sha256": {name: hex}}
                     written last, in one canonical form (sorted keys, no spaces): any byte
                     changed in it, even one that keeps the JSON's meaning, is refused too

``write`` builds the whole directory next to its destination and swaps it into place;
``replace`` rewrites some files of an existing directory (a function's state, a checkpoint)
the same way, its other files hard-linked from the old directory; ``read`` returns every
listed file's bytes after checking them, or raises ArtifactError naming the file that does
not match. A process killed at any point of a write leaves the previous directory intact:
the swap is one rename(2) (RENAME_EXCHANGE on Linux); where the file system cannot exchange
two directories it is two renames, and a reader or writer that finds the directory missing
puts back the previous one (``_recover``). A killed write can leave a hidden temporary
sibling (``.<name>.*``) behind, never a half-written directory under the name itself.
Imports only the standard library (a loaded program needs no compiler).
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import ctypes
import errno
import shutil
import stat
import tempfile

from .errors import ArtifactError

CHECKSUMS = "checksums.json"
FORMAT = "theta-checksums"
VERSION = 1
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}")
_HEX_RE = re.compile(r"[0-9a-f]{64}")


def check_name(name: object, where: str) -> str:
    """``name`` if it is a plain file name inside the directory, else ArtifactError. Checked on
    every name a reader gets from a file (manifest, checksums), so none can leave the directory."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name == CHECKSUMS:
        shown = name if isinstance(name, str) else f"a {type(name).__name__}"
        raise ArtifactError(f"{where}: {shown!r} is not a plain file name of the program directory "
                            "(no path separators, no leading dot); refusing to open it")
    return name


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(digests: dict[str, str]) -> bytes:
    doc = {"format": FORMAT, "version": VERSION, "sha256": digests}
    return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _write_file(path: pathlib.Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write(path: str | os.PathLike, files: dict[str, bytes]) -> pathlib.Path:
    """Write ``files`` (name -> bytes) and their checksums as directory ``path``, atomically: a
    temporary sibling directory is filled and renamed into place. An existing ``path`` is
    replaced only if it is empty or itself a saved program (never some other directory)."""
    path = pathlib.Path(path)
    for name in files:
        check_name(name, f"saving {path}")
    if path.exists() and not (path.is_dir() and (not any(path.iterdir()) or (path / CHECKSUMS).exists()
                                                 or (path / "manifest.json").exists())):
        raise ArtifactError(f"{path} exists and is not a saved theta program; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    _recover(path)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for name, data in files.items():
            _write_file(tmp / name, data)
        # last: a directory with a checksums file is complete
        _write_file(tmp / CHECKSUMS, _canonical({n: sha256(d) for n, d in files.items()}))
        _publish(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _publish(tmp: pathlib.Path, path: pathlib.Path) -> None:
    """Put the complete directory ``tmp`` at ``path``, atomically: a reader (or a process killed
    meanwhile) sees the old directory or the new one, never neither or a mix."""
    if not path.exists():
        os.replace(tmp, path)
    elif _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)   # now the old directory
    else:   # two renames; _recover puts the old one back if we die between them
        old = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
        os.replace(path, old / _PREVIOUS)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(path.parent)


_PREVIOUS = "program"   # the old directory's name inside its .<name>.old.* holder
_RENAME_EXCHANGE = 2    # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: pathlib.Path, b: pathlib.Path) -> bool:
    """Swap the paths ``a`` and ``b`` in one step (renameat2 with RENAME_EXCHANGE); False where
    the C library, the kernel or the file system cannot, so the caller falls back."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, f"cannot swap {a} and {b} into place: {os.strerror(err)}")


def _recover(path: pathlib.Path) -> None:
    """A save killed between the two renames of the fallback swap leaves ``path`` missing and
    the previous directory in a ``.<name>.old.*`` holder: move it back."""
    if path.exists() or not path.parent.is_dir():
        return
    for holder in sorted(path.parent.glob(f".{path.name}.old.*")):
        previous = holder / _PREVIOUS
        if (previous / CHECKSUMS).is_file():
            try:
                os.replace(previous, path)
            except OSError:   # another process got there first
                pass
            shutil.rmtree(holder, ignore_errors=True)
            return


def _fsync_dir(directory: pathlib.Path) -> None:
    """Make the renames in ``directory`` durable (best effort: not every system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_checksums(path: pathlib.Path) -> dict[str, str]:
    where = path / CHECKSUMS
    try:
        raw = _read_plain(where)
    except (FileNotFoundError, NotADirectoryError) as e:
        if (path / "manifest.json").is_file():
            raise ArtifactError(f"{path} has no {CHECKSUMS}: it was saved by an older theta (program format 1) "
                                "or its save was interrupted; save it again with this version") from e
        raise ArtifactError(f"{path} is not a saved theta program (cannot read {where}: {e.strerror or e})") from e
    except OSError as e:
        raise ArtifactError(f"{path} is not a saved theta program (cannot read {where}: {e.strerror or e})") from e
    try:
        doc = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{where} is corrupt: {e}") from e
    if not isinstance(doc, dict):
        raise ArtifactError(f"{where} is corrupt: it holds a {type(doc).__name__}, not an object")
    # each field named when wrong: (type, the value it must have or None, in words)
    for field, kind, value, want in (("format", str, FORMAT, repr(FORMAT)), ("version", int, VERSION, repr(VERSION)),
                                     ("sha256", dict, None, "an object of file name -> sha256")):
        if field not in doc:
            raise ArtifactError(f"{where} is corrupt: field {field!r} is missing")
        if type(doc[field]) is not kind or (value is not None and doc[field] != value):
            raise ArtifactError(f"{where} is corrupt or of an unknown version: field {field!r} is "
                                f"{repr(doc[field])[:60]}, want {want}")
    digests = doc["sha256"]
    for name, digest in digests.items():
        check_name(name, str(where))
        if not isinstance(digest, str) or not _HEX_RE.fullmatch(digest):
            raise ArtifactError(f"{where} is corrupt: field 'sha256.{name}' (the checksum of {name!r}) is not a "
                                "sha256 hex digest")
    if raw != _canonical(digests):  # e.g. whitespace or escapes changed: same meaning, other bytes
        raise ArtifactError(f"{where} was modified after it was saved (not in the form theta writes)")
    return digests


def _read_plain(file: pathlib.Path) -> bytes:
    """The bytes of a regular file, not following a symlink (which could point anywhere)."""
    fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise IsADirectoryError(f"{file} is not a regular file")
        return fh.read()


def read(path: str | os.PathLike) -> dict[str, bytes]:
    """Every file listed in ``path/checksums.json``, checked against its sha256. Files not listed
    are never read. ArtifactError names the first file that is missing or does not match."""
    path = pathlib.Path(path)
    _recover(path)
    files = {}
    for name, digest in _read_checksums(path).items():
        try:
            data = _read_plain(path / name)
        except OSError as e:
            raise ArtifactError(f"{path}/{name} is listed in {CHECKSUMS} but cannot be read "
                                f"({e.strerror or e}): the program is incomplete") from e
        if sha256(data) != digest:
            raise ArtifactError(f"{path}/{name} does not match its checksum in {CHECKSUMS}: the program is "
                                "corrupt or was modified after it was saved")
        files[name] = data
    return files


def replace(path: str | os.PathLike, files: dict[str, bytes]) -> None:
    """Rewrite ``files`` of the saved directory ``path`` and their checksums: a new directory
    holding them (the other listed files hard-linked from the old one, as files are never
    modified in place) is swapped in as ``write`` does, so a process killed at any point leaves
    the previous checkpoint loadable, never a mix of old and new files."""
    path = pathlib.Path(path)
    _recover(path)
    digests = dict(_read_checksums(path))
    for name in files:
        check_name(name, f"saving into {path}")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for name in digests:
            if name not in files:
                _link_or_copy(path / name, tmp / name)
        for name, data in files.items():
            _write_file(tmp / name, data)
            digests[name] = sha256(data)
        _write_file(tmp / CHECKSUMS, _canonical(digests))
        _publish(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _link_or_copy(src: pathlib.Path, dst: pathlib.Path) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise ArtifactError(f"{src} is listed in {CHECKSUMS} but missing: the program is incomplete") from e
        shutil.copyfile(src, dst, follow_symlinks=False)
