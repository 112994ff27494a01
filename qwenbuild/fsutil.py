"""Small file-system helpers: atomic writes and hashing."""

from __future__ import annotations

import contextlib
import errno
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

    A failure is an OSError naming `path` (`filename`), never the temporary file: callers
    report it as "cannot write PATH: CAUSE" (`write_fault`).
    """
    make_folder(path.parent, path)
    tmp = path.parent / f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     file_mode())
    except OSError as exc:
        raise _about(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if path.is_dir() and not path.is_symlink():
            raise IsADirectoryError(errno.EISDIR, "a folder is in its place", str(path))
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename != str(path):
            raise _about(exc, path) from exc
        raise


def make_folder(folder: Path, for_file: Path | None = None) -> None:
    """`mkdir -p folder`; a failure is an OSError naming `for_file` (or the folder), and a
    file standing where a folder must be is said as such."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:  # a file where a folder must be
        blocker = next((p for p in (*reversed(folder.parents), folder)
                        if (p.exists() or p.is_symlink()) and not p.is_dir()), folder)
        raise NotADirectoryError(
            errno.ENOTDIR, f"{blocker} is a file, not a folder",
            str(for_file or folder)) from exc
    except OSError as exc:
        if for_file is None:
            raise
        where = exc.filename if exc.filename else str(folder)
        raise _about(exc, for_file, f"{_cause(exc)} (creating {where})") from exc


def _about(exc: OSError, path: Path, cause: str | None = None) -> OSError:
    """The same fault, said of `path`."""
    return OSError(exc.errno, cause or _cause(exc), str(path))


def _cause(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def write_fault(exc: OSError, base: Path | None = None, verb: str = "write") -> str:
    """"cannot write PATH: CAUSE" for a file-system fault (disk full, read-only, a folder
    where a file must be, permissions), PATH relative to `base` when inside it."""
    cause = _cause(exc)
    if exc.filename is None:
        return f"cannot {verb}: {cause}"
    return f"cannot {verb} {shown_path(Path(os.fsdecode(exc.filename)), base)}: {cause}"


def shown_path(path: Path, base: Path | None = None) -> str:
    """A path as messages show it: relative to `base` when inside it, else absolute."""
    if base is not None:
        try:
            return Path(os.path.relpath(path, base)).as_posix() \
                if path.resolve().is_relative_to(base.resolve()) else str(path)
        except (OSError, ValueError):
            pass
    return str(path)


def check_writable(folder: Path) -> None:
    """Make `folder` if needed and prove a file can be created in it (an empty temporary
    file, removed at once). Raises OSError naming the folder: read-only, no permission, a
    file in the way, or a place where no folder can exist (`/proc/...`)."""
    make_folder(folder)
    probe = folder / f"{TEMP_PREFIX}probe.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode())
    except OSError as exc:
        raise _about(exc, folder) from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


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
