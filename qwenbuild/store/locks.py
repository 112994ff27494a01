"""Locks in the cache folder: one build per output folder at a time.

`flock` on a file named by the output folder's tag: the kernel releases it when the
process ends, however it ends, so a killed build never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import LockError
from ..fsutil import file_mode


def try_lock(fd: int) -> str | None:
    """Take an exclusive lock on `fd` without waiting. None when taken; otherwise the pid
    the holder wrote in the file, and `fd` is closed."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        except OSError:
            return "unknown"
        finally:
            os.close(fd)
    return None


class OutputLock:
    """One build per output folder at a time (a watch and a manual build, say)."""

    def __init__(self, path: Path, out: Path) -> None:
        self.path = path
        self.out = out
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, file_mode())
        holder = try_lock(fd)
        if holder is not None:
            raise LockError(f"another qwenbuild (pid {holder}) is building into {self.out}; "
                            "wait for it to finish and run again")
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


@contextlib.contextmanager
def hold_all(folder: Path, cache: Path) -> Iterator[None]:
    """Hold every output lock in `folder`: a build running now may have put entries its
    manifest does not list yet, so `cache gc` refuses to run beside one."""
    held: list[int] = []
    try:
        for path in sorted(folder.glob("*.lock")):
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            holder = try_lock(fd)
            if holder is not None:
                raise LockError(f"a build is running (pid {holder}) with the cache {cache}; "
                                "run cache gc when it has finished")
            held.append(fd)
        yield
    finally:
        for fd in held:
            os.close(fd)


def try_key_lock(path: Path) -> int | str:
    """Take the lock of one job key without waiting: its fd, or the pid of the process on
    this machine that holds it. The file exists only while held (`release_key_lock`
    removes it): a lock taken on a file another process has just removed is dropped and
    taken again on the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        holder = try_lock(fd)
        if holder is not None:
            return holder
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            # The pid in the file only names the holder in messages: a full disk that
            # refuses it leaves the lock held all the same (and the fd owned by the caller).
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
            return fd
        os.close(fd)  # released and removed meanwhile: take the lock of the new file


def release_key_lock(path: Path, fd: int) -> None:
    """Remove the lock file, then release the lock (in that order: a process waiting on
    the old file sees it gone and starts again)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.close(fd)
