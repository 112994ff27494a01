"""Where the cache of a repository lives (the one place that decides it).

Standard library only: the no-op fast path (noop.py) reads it before anything else is
imported.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(repo_root: Path) -> Path:
    """The cache of the campaigns in a repository: QWENBUILD_CACHE_DIR, else
    `<repository>/.qwenbuild/cache`."""
    env = os.environ.get("QWENBUILD_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return repo_root / ".qwenbuild" / "cache"


def find_repo_root(start: Path) -> Path:
    """The nearest ancestor holding `.git`, else `start` itself."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start
