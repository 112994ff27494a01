"""Where the cache of a repository lives: decided in `qwenbuild/cachedir.py` (on strings,
standard library only, so that the no-op fast path can use it before the store is
imported); here on paths."""

from pathlib import Path

from ..cachedir import cache_folder, repo_folder

__all__ = ["cache_root", "find_repo_root"]


def cache_root(repo_root: Path) -> Path:
    """The cache of the campaigns in a repository: QWENBUILD_CACHE_DIR, else
    `<repository>/.qwenbuild/cache`."""
    return Path(cache_folder(str(repo_root)))


def find_repo_root(start: Path) -> Path:
    """The nearest ancestor holding `.git`, else `start` itself."""
    return Path(repo_folder(str(start)))
