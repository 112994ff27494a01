"""Housekeeping: `qwenbuild clean` (outputs the campaign no longer makes) and
`qwenbuild cache gc` (cache entries no manifest needs).

Both remove only what qwenbuild can prove it made: `clean` files listed in the manifest
(and only while they still hold the bytes qwenbuild wrote), `cache gc` entries of the
cache's own layout. Both take the output locks, so they never race a build, and both have a
dry run that lists the same things without touching them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .campaign import Campaign
from .errors import InputError
from .exports import Picks, export_jobs
from .fsutil import file_sha256, folder_tag
from .manifest import MANIFEST_NAME, Manifest
from .plan import candidate_of, output_path
from .providers import provider_class
from .review.decisions import ReviewFile, review_path
from .store import Liveness, Store, cache_root, find_repo_root, open_store

_KEY = re.compile(r"[0-9a-f]{64}")
#: Folders never searched for manifests or campaign files.
_SKIP_DIRS = {".git", ".qwenbuild", ".venv", "venv", "node_modules", "__pycache__", ".hg"}


@dataclass
class Removal:
    """What a clean or a gc removed (or, in a dry run, would remove)."""

    dry_run: bool
    #: (path as shown, bytes)
    removed: list[tuple[str, int]] = field(default_factory=list)
    #: (path as shown, why it stays)
    kept: list[tuple[str, str]] = field(default_factory=list)
    #: What the user should know about how it decided (cache gc: the history kept).
    notes: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "bytes": self.bytes,
                "removed": [{"path": p, "bytes": b} for p, b in self.removed],
                "kept": [{"path": p, "reason": r} for p, r in self.kept],
                "notes": self.notes}


# -- clean ----------------------------------------------------------------------------------


def owned_outputs(campaign: Campaign, picks: Picks | None = None) -> set[str]:
    """Every output path the campaign makes (relative to its output root), computed from
    ids, aspects, providers and seeds alone: no template is rendered. `picks`: the
    review's picks (ReviewFile.export_picks), which decide the renditions."""
    providers = {name: provider_class(spec.kind)(spec)
                 for name, spec in campaign.providers.items()}
    outputs = {
        output_path(asset, aspect, name, providers[name].output_ext, variant, locale)
        for asset in campaign.assets for aspect in asset.aspects for name in asset.providers
        for variant in range(1, len(asset.seeds) + 1) for locale in campaign.locales or (None,)
    }
    return outputs | {job.output for job in export_jobs(campaign, outputs, picks)}


def clean(campaign: Campaign, dry_run: bool = False) -> Removal:
    """Remove the outputs and renditions in the manifest that the campaign no longer
    makes, their manifest entries, and the folders that removing them empties. A file
    whose bytes are not the ones the manifest records (edited or replaced by someone)
    stays; only its entry goes, and it is reported as kept."""
    out = campaign.out
    result = Removal(dry_run)
    store = Store(campaign.cache_dir)
    with store.output_lock(out):
        manifest = Manifest.load(out, campaign.name)
        stats = store.stat_cache(out)
        review = ReviewFile.load(review_path(campaign.path))
        owned = owned_outputs(campaign, review.export_picks(manifest.entries))
        emptied: set[Path] = set()
        for section, forget in ((manifest.entries, manifest.remove),
                                (manifest.exports, manifest.remove_export),
                                (manifest.candidates, manifest.remove_candidate)):
            # A candidate goes with the output it stands beside.
            for rel in sorted(rel for rel in section
                              if (candidate_of(rel) or rel) not in owned):
                shown = _shown(out / rel, campaign.root)
                target = out / rel
                verdict = _removable(target, out, section[rel].sha256)
                if verdict is None:
                    size = target.stat().st_size
                    if not dry_run:
                        target.unlink()
                        emptied.add(target.parent)
                    result.removed.append((shown, size))
                elif verdict != "missing":
                    result.kept.append((shown, verdict))
                if not dry_run:
                    forget(rel)
                    stats.forget(rel)
        if not dry_run:
            manifest.save()
            stats.save()
            _remove_empty_folders(emptied, out)
    return result


def _removable(target: Path, out: Path, sha: str | None) -> str | None:
    """None when `target` is a file qwenbuild wrote and may remove; else why it stays."""
    if not target.is_file() and not target.is_symlink():
        return "missing"
    if target.is_symlink() or not target.parent.resolve().is_relative_to(out.resolve()):
        return "not a plain file inside the output folder"
    if sha is None or file_sha256(target) != sha:
        return "changed since qwenbuild wrote it; no longer tracked"
    return None


def _remove_empty_folders(folders: set[Path], out: Path) -> None:
    """Remove each folder that is now empty, and its parents up to (not including) out."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        while folder != out and folder.is_relative_to(out):
            try:
                folder.rmdir()  # only succeeds on an empty folder
            except OSError:
                break
            folder = folder.parent


# -- cache gc -------------------------------------------------------------------------------


#: `cache gc` keeps what the manifests of this many recent commits use (see `History`).
DEFAULT_KEEP_COMMITS = 20


@dataclass(frozen=True)
class History:
    """Which commits' manifests `cache gc` keeps the images of: the last `commits` of HEAD
    (0: none, only the working tree's), or every commit of every branch and tag (`all`)."""

    commits: int = DEFAULT_KEEP_COMMITS
    all: bool = False


def default_root(start: Path | None = None) -> Path:
    """The folder `cache gc` works on when none is named: the git repository holding the
    current folder, else the nearest folder holding a `.qwenbuild/` cache (campaigns kept
    outside git have theirs beside them). Anything else is refused at once, instead of
    searching everything below the current folder (a home folder: many seconds)."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    for folder in (start, *start.parents):
        if (folder / ".qwenbuild").is_dir():
            return folder
    shared = ("; with a cache shared through QWENBUILD_CACHE_DIR, name the folder above "
              "every repository that uses it" if os.environ.get("QWENBUILD_CACHE_DIR")
              else "")
    raise InputError(f"{start} is not inside a git repository and has no .qwenbuild/ "
                     "folder in it or above it, so there is no cache of campaigns here to "
                     "collect; run cache gc in the repository (or folder) holding your "
                     f"campaigns, or name it: qwenbuild cache gc ROOT{shared}")


def cache_gc(root: Path, dry_run: bool = False, history: History | None = None) -> Removal:
    """Remove what the store holds that no manifest under the repository of `root` needs:
    every record kind the store declares (`store.RECORD_KINDS`), and stray temporary
    files. In a git repository the manifests of earlier commits count too (`history`):
    checking out an older campaign restores its images instead of paying again.
    Machine-local records of output folders and campaign files that no longer exist go
    too."""
    root = root.resolve()
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    # The cache belongs to the whole repository: every manifest in it must be seen, or
    # entries another project's outputs still use would go.
    root = find_repo_root(root)
    cache = cache_root(root)
    result = Removal(dry_run)
    if not cache.is_dir():
        result.notes.append(f"no cache to collect: {cache} does not exist")
        return result
    keys: set[str] = set()
    images: set[str] = set()
    outs: set[Path] = set()
    for path in _files_named(root, MANIFEST_NAME):
        data = _read_manifest(path)
        if data is not None:
            keys |= set(_keys_in(data))
            images |= set(_images_in(data))
            outs.add(path.parent.resolve())
    history = history or History()
    kept = _history(root, history)
    if kept is not None:
        commits, total, manifests = kept
        for data in manifests:
            keys |= set(_keys_in(data))
            images |= set(_images_in(data))
        if history.all:
            result.notes.append(f"kept what the manifests of all {commits} commits use "
                                f"(--all-history)")
        elif history.commits:
            result.notes.append(
                f"kept what the manifests of the last {commits} of {total} commits use "
                f"(--keep-commits N to change it, --all-history for every commit)")
        else:
            result.notes.append("kept only what the working tree's manifests use "
                                "(--no-history)")
    if not outs and not keys:
        raise InputError(f"{root}: no manifest.json of qwenbuild below it (nothing was built "
                         f"here){' nor in its git history' if kept else ''}, so every "
                         f"entry of the cache {cache} would go; nothing was removed. Run "
                         "cache gc in the repository whose builds use this cache (with a "
                         "cache shared through QWENBUILD_CACHE_DIR: a folder above all of "
                         f"them), or delete {cache} yourself to empty it")
    live = Liveness(
        keys=frozenset(keys), images=frozenset(images),
        out_tags=frozenset(folder_tag(out) for out in outs),
        campaign_tags=frozenset(folder_tag(p) for p in _files_named(root, suffix=".toml")))
    result.removed = Store(cache).gc(live, dry_run)
    return result


@dataclass
class Push:
    """What `cache push` uploaded (or, in a dry run, would upload) and what it left out."""

    dry_run: bool
    pushed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "pushed": self.pushed, "skipped": self.skipped}


def cache_push(root: Path, dry_run: bool = False, remote: str | None = None) -> Push:
    """Upload to the team cache every image in the local cache that a manifest of the
    repository uses and the team cache lacks (images paid for before the team cache was
    set up, or while it was down). Raises InputError (exit 2) when there is no writable
    team cache, or no manifest."""
    root = find_repo_root(root.resolve())
    keys: set[str] = set()
    manifests = 0
    for path in _files_named(root, MANIFEST_NAME):
        data = _read_manifest(path)
        if data is not None:
            manifests += 1
            keys |= set(_keys_in(data))
    if not manifests:
        raise InputError(f"{root}: no qwenbuild manifest.json found below it: nothing to "
                         "push (the images a manifest uses are pushed)")
    store = open_store(cache_root(root), root, remote)
    pushed, skipped = store.push(keys, dry_run)
    return Push(dry_run, pushed, skipped)


def _history(root: Path, history: History) -> tuple[int, int, list[dict[str, Any]]] | None:
    """(commits read, commits in all, their manifests) of the git repository at `root`;
    None outside git. Raises InputError when git is needed but missing."""
    if not (root / ".git").exists():
        return None
    if not history.all and history.commits == 0:
        return 0, 0, []
    git = shutil.which("git")
    if git is None:
        raise InputError("git is not installed, so cache gc cannot see which images earlier "
                         "commits use; install git, or pass --no-history to keep only what "
                         "the working tree's manifests use")

    def run(*args: str, data: bytes | None = None) -> bytes | None:
        done = subprocess.run([git, "-C", str(root), *args], input=data,
                              capture_output=True, check=False)
        return done.stdout if done.returncode == 0 else None

    refs = ["--all"] if history.all else ["HEAD"]
    total = run("rev-list", "--count", *refs)
    if total is None:
        return 0, 0, []  # no commit yet
    limit = [] if history.all else [f"--max-count={history.commits}"]
    listed = run("rev-list", "--objects", *limit, *refs) or b""
    commits = int(run("rev-list", "--count", *limit, *refs) or b"0")
    blobs = []
    for line in listed.decode("utf-8", "replace").splitlines():
        sha, _, path = line.partition(" ")
        if path.rsplit("/", 1)[-1] == MANIFEST_NAME:
            blobs.append(sha)
    manifests = []
    if blobs:
        out = run("cat-file", "--batch", data="".join(f"{b}\n" for b in blobs).encode()) or b""
        position = 0
        while position < len(out):
            end = out.index(b"\n", position)
            header = out[position:end].split()
            position = end + 1
            if len(header) < 3 or header[1] != b"blob":
                continue
            size = int(header[2])
            data = _parse_manifest(out[position:position + size])
            position += size + 1
            if data is not None:
                manifests.append(data)
    return commits, int(total), manifests


def _files_named(root: Path, name: str | None = None, suffix: str | None = None
                 ) -> Iterator[Path]:
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for file in sorted(files):
            if file == name or (suffix and file.endswith(suffix)):
                yield Path(dirpath) / file


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return _parse_manifest(path.read_bytes())
    except OSError:
        return None


def _parse_manifest(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict) and isinstance(data.get("outputs"), dict):
        return data
    return None  # some other tool's manifest.json


def _keys_in(value: Any) -> Iterator[str]:
    """Every cache key in a manifest: any `key` field holding 64 hex digits, at any depth
    (entries, and lists of attempts that other features record inside them)."""
    yield from _hashes_named("key", value)


def _images_in(data: dict[str, Any]) -> Iterator[str]:
    """The sha256 of every output and rendition a manifest lists."""
    for section in ("outputs", "exports"):
        entries = data.get(section)
        if isinstance(entries, dict):
            for entry in entries.values():
                if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
                    yield entry["sha256"]


def _hashes_named(name: str, value: Any) -> Iterator[str]:
    # Iterative: a manifest nested deeper than Python's recursion limit is still read.
    stack = [value]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if key == name and isinstance(item, str) and _KEY.fullmatch(item):
                    yield item
                else:
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)


def _shown(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)
