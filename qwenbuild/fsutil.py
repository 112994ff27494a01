"""Small file-system helpers: atomic writes and hashing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20
#: Every temporary file qwenbuild makes starts with this, so a sweep after a killed build
#: removes those and nothing else (a user's own `.notes.tmp` is never touched).
TEMP_PREFIX = ".qwenbuild-"
TEMP_SUFFIX = ".tmp"

_umask_lock = threading.Lock()
_umask: int | None = None


def file_mode() -> int:
    """The mode a normal file gets under the process's umask (0644 under umask 022):
    what atomic writes give their files, so teammates and web servers can read them."""
    global _umask
    with _umask_lock:
        if _umask is None:
            # Reading the umask means setting it; done once, under a lock.
            _umask = os.umask(0o022)
            os.umask(_umask)
        return 0o666 & ~_umask


def is_temporary(name: str) -> bool:
    """Whether a file name is one of qwenbuild's temporary files."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A file handle whose contents replace `path` atomically when the block ends.

    The temporary file lives beside the target (same file system, so the rename is atomic)
    and is named `.qwenbuild-<name>.<random>.tmp`, so a crash can only leave such a hidden
    file behind (swept by the next build); it is fsynced before the rename so a power cut
    cannot leave an empty file in its place. On any error the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                 file_mode())
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a part."""
    with _replacing(path) as fh:
        fh.write(data)


class _Unchanged(Exception):
    pass


def write_chunks_if_changed(path: Path, chunks: Iterable[bytes],
                            digest: str | None) -> str | None:
    """Write `chunks` one after the other to `path` atomically, unless together they hash
    (sha256) to `digest`: the bytes already there, as last read or written. Returns the
    new bytes' digest, or None when they were the same (and nothing was replaced). The
    whole text is never in memory."""
    hasher = hashlib.sha256()
    try:
        with _replacing(path) as fh:
            for chunk in chunks:
                hasher.update(chunk)
                fh.write(chunk)
            if hasher.hexdigest() == digest:
                raise _Unchanged
    except _Unchanged:
        return None
    return hasher.hexdigest()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` atomically unless the file already holds exactly these bytes."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write(path, data)
    return True


def sweep_temporary_files(folder: Path) -> list[Path]:
    """Remove qwenbuild's temporary files left below `folder` by a killed process; returns
    what was removed. Only names made by `atomic_write` are touched."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if is_temporary(name):
                path = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_tag(path: Path) -> str:
    """The name of a machine-local record about a folder or file (stat cache, key memo,
    review record, lock): a hash of its absolute path. `cache gc` relies on it too."""
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:20]
