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
    quarantine/<key>.<ext>|.json       an image paid for but not used (wrong size, another
                                       variant than asked) and why, for inspection
    tasks/<key>.json                   a provider task submitted and not yet collected
                                       (asynchronous delivery), so a rerun resumes it
    locks/keys/<key[:2]>/<key>.lock    one payer per job key on this machine (while held)

With a team cache (`remote.py`), the objects (image and record, same names) are also in a
bucket: reads are local first, then remote (verified against the record's sha256, then
kept locally); a verified image is written through. Leases (`claim`) extend the per-key
lock across machines: `leases/<key>.json` in the bucket, created only if absent.

Tags are `folder_tag(path)`: a hash of the absolute path of the campaign file or output
folder the record describes. `RECORD_KINDS` lists every kind with the rule `gc` applies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..contracts import CacheRecord
from ..errors import RemoteCacheError
from ..fsutil import folder_tag, is_temporary
from ..images import VerifiedImage
from .backend import LocalBackend
from .locks import OutputLock, hold_all, release_key_lock, try_key_lock
from .records import JsonRecords, KeyMemo, LastBuildRecord, PendingTask, StatCache, read_json
from .remote import Remote, remote_config

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


def _task_live(name: str, live: Liveness, root: Path) -> bool:
    """A pending task stays while its provider may still hold it (its own retention)."""
    data = read_json(root / name)
    if not isinstance(data, dict):
        return False
    return not PendingTask.from_json(data).expired()


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
    RecordKind("noop", "the no-op fast path's records, by campaign file",
               lambda name, live, root: _stem(name) in live.campaign_tags),
    RecordKind("locks", "output locks, by output folder",
               lambda name, live, root: _stem(name) in live.out_tags),
    # Kept for inspection until the next `cache gc`: nothing refers to them.
    RecordKind("quarantine", "images paid for but not used (wrong size, other variant), "
               "by job key", lambda name, live, root: False),
    RecordKind("tasks", "provider tasks submitted and not yet collected, by job key",
               _task_live),
)


class ClaimState(StrEnum):
    MINE = "mine"  # this build holds the key: it may pay for the image
    HIT = "hit"  # the image is in the local store now (another build made it)
    BUSY = "busy"  # another build holds the key: wait, then claim again


@dataclass
class Claim:
    """The answer of `Store.claim`: who may pay for one job key."""

    key: str
    state: ClaimState
    #: Who holds the key (BUSY): `process 1234 on this machine`, `host-a pid 99`.
    holder: str = ""
    #: When the holder's lease ends, in epoch seconds (BUSY, remote holder); None for a
    #: process on this machine (its lock ends with it, however it ends).
    expires: float | None = None
    fd: int | None = field(default=None, repr=False)
    lease_token: str | None = field(default=None, repr=False)


def holder_name() -> str:
    """Who this process is, in a lease: host name and pid (no user name, no path)."""
    return f"{socket.gethostname()} pid {os.getpid()}"


class Store:
    """The cache of one repository: image objects and the records beside them, on this
    machine and (optionally) in the team cache."""

    def __init__(self, root: Path, remote: Remote | None = None) -> None:
        self.root = root
        self.local = LocalBackend(root)
        self.remote = remote
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
        record_bytes = _dumps(record.to_json())
        self.local.write(image_name, image.data)
        self.local.write(record_name, record_bytes)
        if self.remote is not None:
            # Write-through, image first and record last (an entry exists once both do).
            # Only verified images reach `put`; a failing remote is a warning, once.
            data = image.data
            self.remote.call(lambda b: (b.write(image_name, data),
                                        b.write(record_name, record_bytes)),
                             None, write=True)
        return StoredImage(key, image.ext, self.local.path(image_name), record)

    def load(self, key: str, ext: str) -> tuple[bytes, CacheRecord] | None:
        """The bytes and record of `key`, only when the bytes hash to the sha256 the record
        holds; a damaged entry, or one whose record names no hash, is discarded (a miss).
        A local miss is looked for in the team cache."""
        found = self.get(key, ext)
        if found is None and self.fetch(key, ext):
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

    def quarantine(self, key: str, image: VerifiedImage, record: CacheRecord,
                   reason: str) -> Path:
        """Keep an image that was paid for but must not be used (its job failed) aside,
        with its record and the reason, never where `get` or `load` would find it.
        Returns where its bytes are; `cache gc` removes it."""
        image_name = f"quarantine/{key}.{image.ext}"
        record = replace(record, sha256=hashlib.sha256(image.data).hexdigest(),
                         bytes=len(image.data))
        self.local.write(image_name, image.data)
        self.local.write(f"quarantine/{key}.json",
                         _dumps({**record.to_json(), "quarantined": reason}))
        return self.local.path(image_name)

    # -- provider tasks in flight ------------------------------------------------------------

    def pending_task(self, key: str) -> PendingTask | None:
        """The provider task recorded for `key` (submitted, not yet collected), or None."""
        data = read_json(self.root / f"tasks/{key}.json")
        return PendingTask.from_json(data) if isinstance(data, dict) else None

    def record_task(self, key: str, task: PendingTask) -> None:
        """Record a submitted task before waiting for it: a build killed meanwhile resumes
        it instead of paying for a new one."""
        self.local.write(f"tasks/{key}.json", _dumps(task.to_json()))

    def forget_task(self, key: str) -> None:
        self.local.delete(f"tasks/{key}.json")
    # -- the team cache -----------------------------------------------------------------------

    def remote_ready(self) -> bool:
        """Check the team cache once (see `Remote.check`): whether it can be used. Raises
        RemoteCacheError for a bad configuration. False without a team cache."""
        return self.remote is not None and self.remote.check()

    def fetch(self, key: str, ext: str) -> bool:
        """Copy `key`'s entry from the team cache into the local store; whether it did.
        The image must hash to the sha256 its record holds: an entry that does not is a
        miss (with a warning), never used."""
        remote = self.remote
        if remote is None or remote.down:
            return False
        image_name, record_name = self._names(key, ext)
        raw = remote.call(lambda b: b.read(record_name), None)
        if raw is None:
            return False
        try:
            data = json.loads(raw)
            record = CacheRecord.from_json(data) if isinstance(data, dict) else None
        except (ValueError, TypeError):
            record = None
        if record is None or record.key != key or not record.sha256:
            log.warning("team cache entry %s: its record is unreadable or names no sha256; "
                        "not used", key)
            return False
        image = remote.call(lambda b: b.read(image_name), None)
        if image is None:
            return False
        if hashlib.sha256(image).hexdigest() != record.sha256:
            log.warning("team cache entry %s: its image does not match the sha256 of its "
                        "record; not used", key)
            return False
        self.local.write(image_name, image)
        self.local.write(record_name, raw)
        return True

    def fetch_many(self, items: Iterable[tuple[str, str]], workers: int = 16) -> set[str]:
        """`fetch` each (key, ext) not in the local store, several at once; the keys now
        in the local store."""
        wanted = [(k, e) for k, e in dict.fromkeys(items) if not self.has(k, e)]
        if self.remote is None or not wanted or not self.remote.check():
            return set()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(lambda item: self.fetch(*item), wanted))
        return {key for (key, _), ok in zip(wanted, done, strict=True) if ok}

    def remote_has(self, items: Iterable[tuple[str, str]], workers: int = 16) -> set[str]:
        """The keys among `items` whose record the team cache holds (nothing is
        downloaded or written: for `plan`)."""
        wanted = list(dict.fromkeys(items))
        remote = self.remote
        if remote is None or not wanted or not remote.check():
            return set()

        def look(item: tuple[str, str]) -> bool:
            record_name = self._names(*item)[1]
            return bool(remote.call(lambda b: b.exists(record_name), False))

        with ThreadPoolExecutor(max_workers=workers) as pool:
            found = list(pool.map(look, wanted))
        return {key for (key, _), ok in zip(wanted, found, strict=True) if ok}

    def push(self, keys: Iterable[str] | None = None,
             dry_run: bool = False) -> tuple[list[str], list[str]]:
        """Upload to the team cache the local entries it lacks (of `keys`, else all): an
        image that no longer hashes to its record's sha256 is never uploaded. Returns the
        keys (uploaded or, with `dry_run`, to upload) and the keys left out with why.
        Raises RemoteCacheError when there is no writable team cache."""
        remote = self.remote
        if remote is None:
            raise RemoteCacheError("no team cache is configured: set [cache] remote in "
                                   "qwenbuild.toml at the repository root, or "
                                   "QWENBUILD_REMOTE_CACHE")
        if not remote.check() or not remote.writable:
            raise RemoteCacheError(f"the team cache {remote.config.url} cannot be written "
                                   "(read-only mode, or unreachable)")
        wanted = set(keys) if keys is not None else None
        entries: dict[str, str] = {}
        for name, _size in self.local.list("objects"):
            stem, _, ext = name.rsplit("/", 1)[-1].partition(".")
            if ext != "json" and (wanted is None or stem in wanted):
                entries[stem] = ext
        pushed: list[str] = []
        skipped: list[str] = []
        for key, ext in sorted(entries.items()):
            image_name, record_name = self._names(key, ext)

            def there(backend: Any, name: str = record_name) -> bool:
                return bool(backend.exists(name))

            if remote.call(there, True):
                continue  # there already (or the remote is off: nothing more to do)
            found = self.get(key, ext)
            data = found.path.read_bytes() if found is not None else None
            if found is None or data is None or not found.record.sha256 or \
                    hashlib.sha256(data).hexdigest() != found.record.sha256:
                skipped.append(f"{key}: damaged or incomplete in the local cache")
                continue
            if not dry_run:
                record_bytes = _dumps(found.record.to_json())

                def upload(backend: Any, image: bytes = data, record: bytes = record_bytes,
                           names: tuple[str, str] = (image_name, record_name)) -> bool:
                    backend.write(names[0], image)  # the image first, its record last
                    backend.write(names[1], record)
                    return True

                if not remote.call(upload, False, write=True):
                    skipped.append(f"{key}: the team cache refused it")
                    continue
            pushed.append(key)
        return pushed, skipped

    # -- who pays: per-key locks and leases -------------------------------------------------

    def claim(self, key: str, ext: str, ttl: float, force: bool = False) -> Claim:
        """Ask to pay for `key`'s image. On this machine a per-key lock (flock: released
        however its holder ends); with a writable team cache, also a lease object in the
        bucket, created only if absent, ending `ttl` seconds from now (taken over, with a
        conditional replace, once it has ended). Before answering MINE, the local store and
        the team cache (after taking the lease) are looked at once more: the image may have been
        made meanwhile (HIT). `force` (--regenerate) skips those looks. Release a MINE
        claim with `release` once the image is in the store (or has failed)."""
        got = try_key_lock(self._key_lock(key))
        if isinstance(got, str):
            return Claim(key, ClaimState.BUSY, holder=f"process {got} on this machine")
        claim = Claim(key, ClaimState.MINE, fd=got)
        try:
            if not force and self.has(key, ext):
                self.release(claim)
                return Claim(key, ClaimState.HIT)
            remote = self.remote
            if remote is None or remote.down or not remote.writable:
                if not force and self.fetch(key, ext):
                    self.release(claim)
                    return Claim(key, ClaimState.HIT)
                return claim
            # The team cache is looked at once the lease is held (`_lease`).
            return self._lease(claim, ext, ttl, force)
        except BaseException:
            self.release(claim)
            raise

    def _lease(self, claim: Claim, ext: str, ttl: float, force: bool) -> Claim:
        remote = self.remote
        assert remote is not None
        key = claim.key
        name = f"leases/{key}.json"
        token = secrets.token_hex(12)
        body = _dumps({"key": key, "holder": holder_name(), "token": token,
                       "expires": round(time.time() + ttl, 3)})
        for _ in range(3):
            created = remote.call(lambda b: b.create(name, body), None, write=True)
            if created is None:  # the remote failed or refused: this machine's lock only
                return claim
            if not created:
                answered, found = remote.call(lambda b: (True, b.read_tagged(name)),
                                              (False, None))
                if not answered:
                    return claim
                if found is None:  # released meanwhile: its image may be there now
                    if not force and self.fetch(key, ext):
                        self.release(claim)
                        return Claim(key, ClaimState.HIT)
                    continue
                data, tag = found
                lease = _lease_data(data)
                expires = float(lease.get("expires", 0))
                if expires > time.time():
                    self.release(claim)
                    return Claim(key, ClaimState.BUSY, holder=str(lease.get("holder", "")),
                                 expires=expires)
                # Ended: its holder died or overran. Take it over, if nobody did first.
                taken = remote.call(lambda b, tag=tag: bool(b.replace(name, body, tag)),
                                    None, write=True)
                if taken is None:
                    return claim
                if not taken:
                    continue
                log.info("lease of %s taken over from %s (it ended)", key,
                         lease.get("holder", "an unknown holder"))
            claim.lease_token = token
            # A maker uploads before it releases: what was made meanwhile is there now.
            if not force and self.fetch(key, ext):
                self.release(claim)
                return Claim(key, ClaimState.HIT)
            return claim
        self.release(claim)
        return Claim(key, ClaimState.BUSY, holder="another build", expires=time.time() + 1)

    def release(self, claim: Claim) -> None:
        """Give a claim up: the remote lease (only while it is still this build's), then
        the lock on this machine."""
        token, claim.lease_token = claim.lease_token, None
        remote = self.remote
        if token and remote is not None:
            name = f"leases/{claim.key}.json"
            found = remote.call(lambda b: b.read_tagged(name), None)
            if found is not None and _lease_data(found[0]).get("token") == token:
                remote.call(lambda b: b.delete(name), None, write=True)
        fd, claim.fd = claim.fd, None
        if fd is not None:
            release_key_lock(self._key_lock(claim.key), fd)

    def _key_lock(self, key: str) -> Path:
        return self.root / "locks" / "keys" / key[:2] / f"{key}.lock"

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


def open_store(cache_dir: Path, repo_root: Path, remote: str | None = None) -> Store:
    """The store of a repository: its cache folder, and its team cache when one is
    configured (`remote.py`; `remote` is the command line's --remote). Raises
    RemoteCacheError (exit 2) for a bad configuration; makes no request."""
    config = remote_config(repo_root, remote)
    return Store(cache_dir, Remote(config) if config is not None else None)


def _lease_data(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _modified_after(path: Path, when: float) -> bool:
    try:
        return path.stat().st_mtime > when
    except OSError:
        return True  # gone: nothing to remove


def _dumps(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
