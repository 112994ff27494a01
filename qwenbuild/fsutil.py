"""Small file-system helpers: atomic writes and hashing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A file handle whose contents replace `path` atomically when the block ends.

    The temporary file lives beside the target (same file system, so the rename is atomic)
    and starts with a dot, so a crash can only leave a hidden `.name.*.tmp` behind (swept
    by the next build); it is fsynced before the rename so a power cut cannot leave an
    empty file in its place. On any error the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
