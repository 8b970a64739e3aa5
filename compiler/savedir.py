"""A checksummed directory: how a saved Program (and a saved function) sits on disk.

Every file of the directory is a plain file name (no separators, no leading dot, no
symlinks) listed in ``checksums.json`` with its sha256; the listing is the only way a
reader learns which files exist, so nothing outside the directory is ever opened.

    checksums.json   {"format": "theta-checksums", "version": 1, "sha256": {name: hex}}
                     written last, in one canonical form (sorted keys, no spaces): any byte
                     changed in it, even one that keeps the JSON's meaning, is refused too

``write`` builds the whole directory next to its destination and renames it into place;
``replace`` rewrites some files of an existing directory (a function's state) and then its
``checksums.json``, each with an atomic rename; ``read`` returns every listed file's bytes
after checking them, or raises ArtifactError naming the file that does not match.
Imports only the standard library (a loaded program needs no compiler).
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
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
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for name, data in files.items():
            _write_file(tmp / name, data)
        # last: a directory with a checksums file is complete
        _write_file(tmp / CHECKSUMS, _canonical({n: sha256(d) for n, d in files.items()}))
        if path.exists():
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "program")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


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
    ok = (isinstance(doc, dict) and doc.get("format") == FORMAT and doc.get("version") == VERSION
          and isinstance(doc.get("sha256"), dict))
    if not ok:
        raise ArtifactError(f"{where} is corrupt or of an unknown version (want {FORMAT} version {VERSION})")
    digests = doc["sha256"]
    for name, digest in digests.items():
        check_name(name, str(where))
        if not isinstance(digest, str) or not _HEX_RE.fullmatch(digest):
            raise ArtifactError(f"{where} is corrupt: the checksum of {name!r} is not a sha256 hex digest")
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
    """Rewrite ``files`` of the saved directory ``path`` and their checksums. Each file and then
    ``checksums.json`` is replaced by an atomic rename; a crash between those renames leaves a
    directory that is refused at load (never one that loads a mix silently)."""
    path = pathlib.Path(path)
    digests = dict(_read_checksums(path))
    staged = []
    try:
        for name, data in files.items():
            check_name(name, f"saving into {path}")
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=path)
            os.close(fd)
            staged.append((pathlib.Path(tmp), path / name))
            _write_file(pathlib.Path(tmp), data)
            digests[name] = sha256(data)
        fd, tmp = tempfile.mkstemp(prefix=f".{CHECKSUMS}.", dir=path)
        os.close(fd)
        staged.append((pathlib.Path(tmp), path / CHECKSUMS))
        _write_file(pathlib.Path(tmp), _canonical(digests))
        for tmp_file, final in staged:
            os.replace(tmp_file, final)
    finally:
        for tmp_file, _ in staged:
            tmp_file.unlink(missing_ok=True)
