"""Where the store keeps bytes: a small interface with one implementation per medium.

Names are relative POSIX paths (`objects/ab/<key>.png`). The local backend is a folder; an
object-storage backend (the team cache) implements the same five operations, so the store
above them reads local-first and writes through without knowing which medium it talks to.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ..fsutil import atomic_write, file_mode, is_temporary


class Backend(Protocol):
    """The operations the store needs from a medium."""

    def read(self, name: str) -> bytes | None:
        """The bytes stored under `name`, or None when there are none."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Store `data` under `name`, replacing what was there, atomically."""
        ...

    def create(self, name: str, data: bytes) -> bool:
        """Store `data` under `name` only if nothing is there yet; whether it did."""
        ...

    def delete(self, name: str) -> None:
        """Remove `name` (nothing happens when it is absent)."""
        ...

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(name, size) of everything under the folder `prefix`, in name order."""
        ...


class LocalBackend:
    """A folder on this machine (the cache folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def read(self, name: str) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def write(self, name: str, data: bytes) -> None:
        atomic_write(self.path(name), data)

    def create(self, name: str, data: bytes) -> bool:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode())
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(name).unlink()

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        folder = self.path(prefix)
        if not folder.is_dir():
            return
        for dirpath, dirs, files in os.walk(folder):
            dirs.sort()
            for file in sorted(files):
                if is_temporary(file):
                    continue
                path = Path(dirpath) / file
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                yield path.relative_to(self.root).as_posix(), size
