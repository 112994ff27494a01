"""The store: the only code that knows paths under the cache folder.

Layout (format 1, unchanged since qwenbuild 0.1; a cache written by it is read as is):

    objects/<key[:2]>/<key>.<ext>      image bytes as the provider sent them (verified)
    objects/<key[:2]>/<key>.json       CacheRecord, written after the image: an entry
                                       exists once both are complete
    plans/<campaign tag>.json          KeyMemo: fingerprint -> key (machine-local)
    state/<out tag>.json               StatCache of an output folder (machine-local)
    state/<out tag>.review.json|.sig   the review page's last build (machine-local)
    textcheck/results/<d[:2]>/<d>.json a text check's result, by image and expected text
    textcheck/choices/<key>.json       which text reroll became a job's output
    locks/<out tag>.lock               one build per output folder at a time

Tags are `folder_tag(path)`: a hash of the absolute path of the campaign file or output
folder the record describes. `RECORD_KINDS` lists every kind with the rule `gc` applies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..contracts import CacheRecord
from ..fsutil import folder_tag, is_temporary
from ..images import VerifiedImage
from .backend import LocalBackend
from .locks import OutputLock, hold_all
from .records import JsonRecords, KeyMemo, LastBuildRecord, StatCache, read_json

log = logging.getLogger(__name__)

_HEX = frozenset("0123456789abcdef")
#: A temporary file of an atomic write older than this is a leftover of a killed process:
#: writes take milliseconds (seconds for a large image on a slow disk), never minutes.
STALE_TEMPORARY_S = 15 * 60


def _is_key(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX


@dataclass(frozen=True)
class StoredImage:
    """An image in the store: where its bytes are on this machine, and its record."""

    key: str
    ext: str
    path: Path
    record: CacheRecord


@dataclass(frozen=True)
class Liveness:
    """What is still in use, as `cache gc` found it: everything else may go."""

    #: Job keys that some manifest references (at any depth: reroll attempts too).
    keys: frozenset[str] = frozenset()
    #: sha256 of images that some manifest references (outputs as written).
    images: frozenset[str] = frozenset()
    #: Tags of the output folders and campaign files that still exist.
    out_tags: frozenset[str] = frozenset()
    campaign_tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RecordKind:
    """One kind of file in the store, and when `gc` keeps it."""

    folder: str
    description: str
    #: (name relative to the cache folder, what is live, the cache folder) -> keep it?
    live: Callable[[str, Liveness, Path], bool] = field(repr=False)


def _stem(name: str) -> str:
    return name.rsplit("/", 1)[-1].split(".", 1)[0]


def _result_live(name: str, live: Liveness, root: Path) -> bool:
    data = read_json(root / name)
    image = data.get("image") if isinstance(data, dict) else None
    # Results written before they named their image cannot be matched: they go (reading an
    # image again costs a second of OCR, never money).
    return isinstance(image, str) and image in live.images


RECORD_KINDS: tuple[RecordKind, ...] = (
    RecordKind("objects", "images and their records, by job key",
               lambda name, live, root: _stem(name) in live.keys),
    RecordKind("textcheck/choices", "which text reroll became a job's output, by job key",
               lambda name, live, root: _stem(name) in live.keys),
    RecordKind("textcheck/results", "text-check results, by image",
               _result_live),
    RecordKind("plans", "key memos, by campaign file",
               lambda name, live, root: _stem(name) in live.campaign_tags),
    RecordKind("state", "stat caches and review records, by output folder",
               lambda name, live, root: _stem(name) in live.out_tags),
    RecordKind("locks", "output locks, by output folder",
               lambda name, live, root: _stem(name) in live.out_tags),
)


class Store:
    """The cache of one repository: image objects and the records beside them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.local = LocalBackend(root)
        self.text_results = JsonRecords(root / "textcheck" / "results", nested=True)
        self.choices = JsonRecords(root / "textcheck" / "choices", nested=False)

    # -- image objects ------------------------------------------------------------------------

    @staticmethod
    def _names(key: str, ext: str) -> tuple[str, str]:
        folder = f"objects/{key[:2]}"
        return f"{folder}/{key}.{ext}", f"{folder}/{key}.json"

    def get(self, key: str, ext: str) -> StoredImage | None:
        """The image stored for `key`, or None. A half-written entry counts as absent."""
        image_name, record_name = self._names(key, ext)
        data = read_json(self.root / record_name)
        if not isinstance(data, dict):
            return None
        path = self.local.path(image_name)
        if not path.is_file():
            return None
        return StoredImage(key, ext, path, CacheRecord.from_json(data))

    def has(self, key: str, ext: str) -> bool:
        image_name, record_name = self._names(key, ext)
        return (self.root / record_name).is_file() and (self.root / image_name).is_file()

    def record(self, key: str, ext: str) -> CacheRecord | None:
        found = self.get(key, ext)
        return found.record if found else None

    def put(self, key: str, image: VerifiedImage, record: CacheRecord) -> StoredImage:
        """Store a verified image and its record (image first, record last)."""
        image_name, record_name = self._names(key, image.ext)
        record = replace(record, sha256=hashlib.sha256(image.data).hexdigest(),
                         bytes=len(image.data))
        self.local.write(image_name, image.data)
        self.local.write(record_name, _dumps(record.to_json()))
        return StoredImage(key, image.ext, self.local.path(image_name), record)

    def load(self, key: str, ext: str) -> tuple[bytes, CacheRecord] | None:
        """The bytes and record of `key`, only when the bytes hash to the sha256 the record
        holds; a damaged entry, or one whose record names no hash, is discarded (a miss)."""
        found = self.get(key, ext)
        if found is None:
            return None
        try:
            data = found.path.read_bytes()
        except OSError:
            return None
        expected = found.record.sha256
        if not expected or hashlib.sha256(data).hexdigest() != expected:
            why = "names no sha256" if not expected else "does not match its sha256"
            log.warning("cache entry %s %s; generating it again", key, why)
            self.discard(key, ext)
            return None
        return data, found.record

    def discard(self, key: str, ext: str) -> None:
        for name in self._names(key, ext):
            self.local.delete(name)

    # -- records ------------------------------------------------------------------------------

    def key_memo(self, campaign_file: Path) -> KeyMemo:
        return KeyMemo(self.root / "plans" / f"{folder_tag(campaign_file)}.json")

    def stat_cache(self, out: Path) -> StatCache:
        return StatCache(self.root / "state" / f"{folder_tag(out)}.json")

    def last_build(self, out: Path) -> LastBuildRecord:
        tag = folder_tag(out)
        return LastBuildRecord(self.root / "state" / f"{tag}.review.json",
                               self.root / "state" / f"{tag}.review.sig")

    def output_lock(self, out: Path) -> OutputLock:
        return OutputLock(self.root / "locks" / f"{folder_tag(out)}.lock", out)

    # -- housekeeping -------------------------------------------------------------------------

    def files(self) -> Iterator[tuple[RecordKind | None, str, int]]:
        """Every file in the store as (its kind, name, size); the kind is None for files
        the store does not know (temporary files of a killed build among them)."""
        for kind in RECORD_KINDS:
            folder = self.root / kind.folder
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*")):
                if not path.is_file():
                    continue
                name = path.relative_to(self.root).as_posix()
                nested = any(name.startswith(other.folder + "/") for other in RECORD_KINDS
                             if other is not kind and other.folder.startswith(kind.folder))
                if nested:
                    continue  # textcheck/ holds two kinds
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                yield (None if is_temporary(path.name) else kind), name, size

    def sweep_temporary(self, older_than: float = STALE_TEMPORARY_S) -> list[str]:
        """Remove the temporary files of atomic writes that a killed process left in the
        cache: only those older than `older_than` seconds, so that a file another process
        is writing right now (a build of another folder, a `plan` saving its key memo)
        is never touched. Returns the names removed."""
        removed = []
        oldest = time.time() - older_than
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if not is_temporary(name):
                    continue
                path = Path(dirpath) / name
                try:
                    if path.stat().st_mtime > oldest:
                        continue
                    path.unlink()
                except OSError:
                    continue  # gone meanwhile, or not ours to remove
                removed.append(path.relative_to(self.root).as_posix())
        return removed

    def gc(self, live: Liveness, dry_run: bool = False) -> list[tuple[str, int]]:
        """Remove every file of every record kind that `live` does not keep, and stray
        temporary files (those older than STALE_TEMPORARY_S: a younger one may be a write
        in progress). Holds every output lock meanwhile (a build running now may have
        stored images its manifest does not list yet). Returns (name, size) removed."""
        removed: list[tuple[str, int]] = []
        oldest = time.time() - STALE_TEMPORARY_S
        with hold_all(self.root / "locks", self.root):
            # The images of live keys, as the cache holds them (an output's bytes differ by
            # its provenance): their text-check results stay too.
            cached = {record.sha256 for key in live.keys for ext in ("png", "jpg", "webp")
                      if (record := self.record(key, ext)) is not None and record.sha256}
            live = replace(live, images=live.images | cached)
            for kind, name, size in list(self.files()):
                if kind is not None and kind.live(name, live, self.root):
                    continue
                if kind is None and _modified_after(self.root / name, oldest):
                    continue  # a temporary file being written now (plan, check, a build)
                if not dry_run:
                    self.local.delete(name)
                removed.append((name, size))
        return removed


def _modified_after(path: Path, when: float) -> bool:
    try:
        return path.stat().st_mtime > when
    except OSError:
        return True  # gone: nothing to remove


def _dumps(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
