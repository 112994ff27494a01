"""The small records the store keeps beside the images, one class per kind.

Machine-local records (the key memo, the stat cache, the review page's last build) are
named by a hash of the campaign file or output folder they describe (`folder_tag`);
shared records (text-check results, reroll choices) by content. Each class owns the
format of its files; the store owns where they live and when `cache gc` removes them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write, file_sha256, write_if_changed


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or unreadable (a record is a cache:
    a damaged one is as good as none)."""
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


class KeyMemo:
    """fingerprint -> key of the jobs planned before, for one campaign file, per machine.

    Lets a no-op build skip rendering prompts: equal fingerprints give equal keys."""

    def __init__(self, path: Path) -> None:
        self.path = path
        found = read_json(path)
        self.entries: dict[str, str] = found if isinstance(found, dict) else {}
        self._new: dict[str, str] = {}
        self._keep: set[str] = set()

    def get(self, fingerprint: str) -> str | None:
        key = self.entries.get(fingerprint)
        if key is not None:
            self._keep.add(fingerprint)
        return key

    def put(self, fingerprint: str, key: str) -> None:
        self._new[fingerprint] = key
        self._keep.add(fingerprint)

    def save(self) -> None:
        if not self._new:
            return
        # Keep what this run used or added, and older entries only while the memo is small
        # (they serve other selections of the same campaign, e.g. --only).
        merged = {**self.entries, **self._new}
        if len(merged) > 4 * max(1, len(self._keep)):
            merged = {k: v for k, v in merged.items() if k in self._keep}
        atomic_write(self.path, json.dumps(merged, separators=(",", ":")).encode())
        self.entries, self._new = merged, {}


class StatCache:
    """Size, mtime, sha256, ctime and inode of each output as last written or checked, per
    machine.

    Lets an up-to-date check hash an output only when its stat moved. The ctime and inode
    catch an edit that kept the size and put the mtime back (ctime cannot be set back);
    entries written before they held them have three fields and are hashed once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        found = read_json(path)
        self.entries: dict[str, list[Any]] = found if isinstance(found, dict) else {}
        self._dirty = False

    def matches(self, rel: str, file: Path, sha256: str) -> bool | None:
        """True: file unchanged since it had `sha256`; None: unknown (must hash); False: gone."""
        try:
            st = file.stat()
        except OSError:
            return False
        known = self.entries.get(rel)
        if known == [st.st_size, st.st_mtime_ns, sha256, st.st_ctime_ns, st.st_ino]:
            return True
        return None

    def problem(self, rel: str, file: Path, sha256: str) -> str | None:
        """Why `file` no longer holds the bytes hashing to `sha256` ("output missing",
        "output modified"), or None when it does. Hashes only when size or mtime moved."""
        known = self.matches(rel, file, sha256)
        if known is False:
            return "output missing"
        if known is None:
            if file_sha256(file) != sha256:
                return "output modified"
            self.remember(rel, file, sha256)
        return None

    def remember(self, rel: str, file: Path, sha256: str) -> None:
        st = file.stat()
        value = [st.st_size, st.st_mtime_ns, sha256, st.st_ctime_ns, st.st_ino]
        if self.entries.get(rel) != value:
            self.entries[rel] = value
            self._dirty = True

    def forget(self, rel: str) -> None:
        if self.entries.pop(rel, None) is not None:
            self._dirty = True

    def save(self) -> None:
        if self._dirty:
            atomic_write(self.path, json.dumps(self.entries, sort_keys=True).encode())
            self._dirty = False


class LastBuildRecord:
    """What the review page showed after the last build that changed something, per output
    folder and machine, and a signature of what the page is made from (kept apart, so a
    no-op build compares it without reading the large record)."""

    def __init__(self, path: Path, signature_path: Path) -> None:
        self.path = path
        self.signature_path = signature_path

    def signature(self) -> str | None:
        try:
            return self.signature_path.read_text("utf-8")
        except OSError:
            return None

    def load(self) -> dict[str, Any] | None:
        found = read_json(self.path)
        return found if isinstance(found, dict) else None

    def save(self, record: dict[str, Any], signature: str) -> None:
        write_if_changed(self.path, json.dumps(record, sort_keys=True,
                                               separators=(",", ":")).encode())
        write_if_changed(self.signature_path, signature.encode())


class JsonRecords:
    """JSON records named by a hex digest, in `<folder>/<digest[:2]>/<digest>.json`
    (`nested`) or `<folder>/<digest>.json`: text-check results, reroll choices."""

    def __init__(self, folder: Path, nested: bool) -> None:
        self.folder = folder
        self.nested = nested

    def path(self, digest: str) -> Path:
        if self.nested:
            return self.folder / digest[:2] / f"{digest}.json"
        return self.folder / f"{digest}.json"

    def get(self, digest: str) -> dict[str, Any] | None:
        found = read_json(self.path(digest))
        return found if isinstance(found, dict) else None

    def put(self, digest: str, data: dict[str, Any]) -> None:
        atomic_write(self.path(digest), json.dumps(data, ensure_ascii=False, indent=2,
                                                   sort_keys=True).encode("utf-8"))

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)


@dataclass(frozen=True)
class PendingTask:
    """A task a provider accepted (and may be charging for) that the build has not collected
    yet: enough to ask for its result again after a kill (`tasks/<job key>.json`)."""

    #: Provider kind that holds the task (runware, empiriolabs).
    kind: str
    #: The provider's ids of the task (Runware taskUUID, EmpirioLabs job_id), by name.
    ids: Mapping[str, str]
    #: When it was submitted (Unix seconds).
    submitted: float
    #: How long the provider keeps the task's result (seconds): after that, asking again
    #: is pointless and the job is generated again.
    retention: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) > self.submitted + self.retention

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ids": dict(self.ids), "submitted": self.submitted,
                "retention": self.retention, **({"extra": dict(self.extra)}
                                                if self.extra else {})}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PendingTask:
        ids = data.get("ids")
        submitted, retention = data.get("submitted"), data.get("retention")
        extra = data.get("extra")
        return cls(
            kind=str(data.get("kind", "")),
            ids={str(k): str(v) for k, v in ids.items()} if isinstance(ids, Mapping) else {},
            submitted=float(submitted) if isinstance(submitted, int | float) else 0.0,
            retention=float(retention) if isinstance(retention, int | float) else 0.0,
            extra=dict(extra) if isinstance(extra, Mapping) else {},
        )
