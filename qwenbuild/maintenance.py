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
from .store import Liveness, Store, cache_root, find_repo_root

_KEY = re.compile(r"^[0-9a-f]{64}$")
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

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "bytes": self.bytes,
                "removed": [{"path": p, "bytes": b} for p, b in self.removed],
                "kept": [{"path": p, "reason": r} for p, r in self.kept]}


# -- clean ----------------------------------------------------------------------------------


def owned_outputs(campaign: Campaign, picks: Picks | None = None) -> set[str]:
    """Every output path the campaign makes (relative to its output root), computed from
    ids, aspects, providers and seeds alone: no template is rendered. `picks`: the
    review's picks (ReviewFile.export_picks), which decide the renditions."""
    providers = {name: provider_class(spec.kind)(spec)
                 for name, spec in campaign.providers.items()}
    outputs = {
        output_path(asset, aspect, name, providers[name].output_ext, variant)
        for asset in campaign.assets for aspect in asset.aspects for name in asset.providers
        for variant in range(1, len(asset.seeds) + 1)
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


def default_root(start: Path | None = None) -> Path:
    """The repository holding the current folder (else the folder itself)."""
    return find_repo_root((start or Path.cwd()).resolve())


def cache_gc(root: Path, dry_run: bool = False) -> Removal:
    """Remove what the store holds that no manifest under the repository of `root` needs:
    every record kind the store declares (`store.RECORD_KINDS`), and stray temporary
    files. Machine-local records of output folders and campaign files that no longer exist
    go too."""
    root = root.resolve()
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    # The cache belongs to the whole repository: every manifest in it must be seen, or
    # entries another project's outputs still use would go.
    root = find_repo_root(root)
    cache = cache_root(root)
    keys: set[str] = set()
    images: set[str] = set()
    outs: set[Path] = set()
    for path in _files_named(root, MANIFEST_NAME):
        data = _read_manifest(path)
        if data is not None:
            keys |= set(_keys_in(data))
            images |= set(_images_in(data))
            outs.add(path.parent.resolve())
    if not outs:
        raise InputError(f"{root}: no qwenbuild manifest.json found below it; every cache "
                         f"entry would go. Run cache gc from the repository whose outputs "
                         f"use {cache}, or delete that folder yourself to empty the cache")
    live = Liveness(
        keys=frozenset(keys), images=frozenset(images),
        out_tags=frozenset(folder_tag(out) for out in outs),
        campaign_tags=frozenset(folder_tag(p) for p in _files_named(root, suffix=".toml")))
    result = Removal(dry_run)
    result.removed = Store(cache).gc(live, dry_run)
    return result


def _files_named(root: Path, name: str | None = None, suffix: str | None = None
                 ) -> Iterator[Path]:
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for file in sorted(files):
            if file == name or (suffix and file.endswith(suffix)):
                yield Path(dirpath) / file


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
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
    if isinstance(value, dict):
        for key, item in value.items():
            if key == name and isinstance(item, str) and _KEY.match(item):
                yield item
            else:
                yield from _hashes_named(name, item)
    elif isinstance(value, list):
        for item in value:
            yield from _hashes_named(name, item)


def _shown(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)
