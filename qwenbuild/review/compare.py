"""Before/after: the image an output held before, for the review page's comparison.

In a git repository, "before" is the output as committed in `HEAD` (read with
`git show HEAD:<path>`; no shell, no checkout), which is what a reviewer compares a
pull request with. When HEAD holds the same bytes (or the file is not in git, or git holds
only a Git LFS pointer), it is the image the output held before the last build changed
it: the store keeps every image by key, and the page knows that key.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..store import Store

_KEY = re.compile(r"^[0-9a-f]{64}$")
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


@dataclass(frozen=True)
class Before:
    """The earlier image of an output, or why there is none (`data` None)."""

    data: bytes | None
    source: str  # "git HEAD", "the previous build", or why there is no earlier image


def before_image(out: Path, rel: str, key: str | None, store: Store) -> Before:
    """The image `rel` (relative to the output folder `out`) held before."""
    current = out / rel
    try:
        now = hashlib.sha256(current.read_bytes()).hexdigest()
    except OSError:
        now = ""
    committed = git_head(current)
    same_as_head = False
    if committed is not None and not committed.startswith(_LFS_POINTER):
        if hashlib.sha256(committed).hexdigest() != now:
            return Before(committed, "git HEAD")
        same_as_head = True
    if key and _KEY.match(key):
        found = store.load(key, rel.rsplit(".", 1)[-1])
        if found is not None:
            return Before(found[0], "the previous build")
    if same_as_head:
        return Before(None, "unchanged since the last commit (git HEAD), and no earlier "
                            "build of it in the cache")
    return Before(None, "no earlier image: not committed in git, and no earlier build of "
                        "it in the cache")


def git_head(path: Path) -> bytes | None:
    """The bytes of `path` as committed in HEAD of the repository holding it; None when
    it is not in a git repository or not committed."""
    folder = path.parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder,
                             capture_output=True, text=True, timeout=10, check=False)
        if top.returncode != 0 or not top.stdout.strip():
            return None
        root = Path(top.stdout.strip()).resolve()
        rel = path.resolve().relative_to(root).as_posix()
        shown = subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=root,
                               capture_output=True, timeout=30, check=False)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return shown.stdout if shown.returncode == 0 else None
