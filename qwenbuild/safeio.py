"""Reading input files safely: only regular files of a bounded size, never a FIFO, a device,
a socket or anything under /proc, /sys or /dev, and never blocking on open.

Every file qwenbuild reads because a campaign names it (the campaign file itself, prompt
templates, reference images) goes through `read_regular`, so a hostile or mistaken path
gives a clear error instead of a hang (a FIFO, /dev/zero), memory exhaustion (a huge file)
or a leak (/proc/self/environ holds the API keys).
"""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from pathlib import Path

#: Folders whose files are never read, whatever a campaign allows: kernel interfaces and
#: devices, not files (/proc/self/environ holds the environment, API keys included).
SPECIAL_ROOTS = ("/proc", "/sys", "/dev")

#: Size limits of the files a campaign names.
MAX_CAMPAIGN_BYTES = 8 * 1024 * 1024
MAX_TEMPLATE_BYTES = 128 * 1024
MAX_REFERENCE_BYTES = 64 * 1024 * 1024


class UnsafeFileError(OSError):
    """A file that qwenbuild refuses to read; `reason` says why, in words for a message."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


@lru_cache(maxsize=1)
def _special_devices() -> frozenset[int]:
    """The device numbers of /proc and /sys (a bind mount of them elsewhere is refused too)."""
    devices = set()
    for root in ("/proc", "/sys"):
        try:
            devices.add(os.stat(root).st_dev)
        except OSError:
            pass
    return frozenset(devices)


def special_root(path: Path | str) -> str | None:
    """The special folder (/proc, /sys, /dev) that `path` (resolved) is in, else None."""
    text = os.path.normpath(os.fspath(path))
    for root in SPECIAL_ROOTS:
        if text == root or text.startswith(root + os.sep):
            return root
    return None


def check_folder(path: Path) -> str | None:
    """Why `path` (resolved) cannot be a folder qwenbuild reads from, or None if it can."""
    root = special_root(path)
    if root is not None:
        return f"it is under {root}, which holds kernel interfaces or devices, not files"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such folder"
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if not stat.S_ISDIR(st.st_mode):
        return "not a folder"
    if st.st_dev in _special_devices():
        return "it is on a kernel file system (/proc or /sys), not a folder of files"
    return None


def check_regular(path: Path, max_bytes: int, resolved: bool = False) -> str | None:
    """Why the file at `path` (following symbolic links) would be refused by
    `read_regular`, or None when it would be read. Does not open it. `resolved`: `path` has
    no symbolic link left in it already."""
    resolved_path = path if resolved else Path(os.path.realpath(path))
    root = special_root(resolved_path)
    if root is not None:
        return f"it is under {root}, which holds kernel interfaces or devices, not files"
    try:
        st = os.stat(resolved_path)
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    return _check_stat(st, max_bytes)


def _check_stat(st: os.stat_result, max_bytes: int) -> str | None:
    if not stat.S_ISREG(st.st_mode):
        return f"it is {_kind(st.st_mode)}; only regular files are read"
    if st.st_dev in _special_devices():
        return "it is on a kernel file system (/proc or /sys), not a file"
    if st.st_size > max_bytes:
        return f"it is {_size(st.st_size)}; the limit is {_size(max_bytes)}"
    return None


def read_regular(path: Path | str, max_bytes: int) -> bytes:
    """The bytes of the regular file at `path`, at most `max_bytes` of them.

    Raises UnsafeFileError for anything else (a folder, FIFO, device, socket, a file under
    /proc, /sys or /dev, a file over the limit), FileNotFoundError and other OSErrors as
    usual. Opening never blocks: a FIFO is opened non-blocking and refused after fstat.
    """
    resolved = Path(os.path.realpath(path))
    root = special_root(resolved)
    if root is not None:
        raise UnsafeFileError(path, f"it is under {root}, which holds kernel interfaces or "
                                    "devices, not files")
    # The path is resolved: a symbolic link in its place now was put there since, and is
    # not followed (O_NOFOLLOW).
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(resolved, flags)
    try:
        st = os.fstat(fd)
        problem = _check_stat(st, max_bytes)
        if problem is not None:
            raise UnsafeFileError(path, problem)
        chunks = []
        total = 0
        while True:
            # A file may grow between fstat and read (or lie about its size): read at most
            # one byte past the limit and refuse what is over it.
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise UnsafeFileError(path, f"it is over the limit of {_size(max_bytes)}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB".replace(".0 MiB", " MiB")
    if n >= 1024:
        return f"{n / 1024:.1f} KiB".replace(".0 KiB", " KiB")
    return f"{n} bytes"


def inside(path: Path, root: Path) -> bool:
    """Whether `path` (resolved) is `root` or below it."""
    return path == root or path.is_relative_to(root)
