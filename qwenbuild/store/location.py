"""Where the cache of a repository lives: decided in `qwenbuild/cachedir.py` (standard
library only, so that the no-op fast path can use it before the store is imported)."""

from ..cachedir import cache_root, find_repo_root

__all__ = ["cache_root", "find_repo_root"]
