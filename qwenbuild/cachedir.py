"""Where the cache of a repository lives (the one place that decides it).

On strings, with nothing but `os`: the no-op fast path (noop.py) reads it before anything
else is imported. `store/location.py` gives the same on paths.
"""

import os


def cache_folder(repo_root: str) -> str:
    """The cache of the campaigns in a repository: QWENBUILD_CACHE_DIR, else
    `<repository>/.qwenbuild/cache`."""
    env = os.environ.get("QWENBUILD_CACHE_DIR")
    if env:
        return os.path.realpath(os.path.expanduser(env))
    return os.path.join(repo_root, ".qwenbuild", "cache")


def repo_folder(start: str) -> str:
    """The nearest ancestor of `start` holding `.git`, else `start` itself (the
    ancestors of a relative path end at ".", as `Path.parents` do)."""
    folder = start
    while True:
        if os.path.exists(os.path.join(folder, ".git")):
            return folder
        parent = os.path.dirname(folder) or "."
        if parent == folder:
            return start
        folder = parent

