"""`<out>/manifest.json`: the lockfile of a campaign's outputs, stable and sorted.

It holds no timestamps and no absolute paths, so a no-op build leaves it byte-identical
and a git diff shows exactly which outputs changed. The size and mtime of each output
(to skip re-hashing unchanged files) are machine-local and live in the cache folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import CampaignError
from .fsutil import atomic_write, folder_tag

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


def dumps(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


class Manifest:
    """Entries by output path (relative to the output root, POSIX separators)."""

    def __init__(self, out: Path, campaign: str, entries: dict[str, dict[str, Any]],
                 exports: dict[str, dict[str, Any]] | None = None) -> None:
        self.out = out
        self.campaign = campaign
        self.entries = entries
        #: Export renditions by path (see exports.py), kept apart from the generated outputs
        #: so that everything reading `entries` sees only images a provider made.
        self.exports: dict[str, dict[str, Any]] = exports if exports is not None else {}
        self._original: bytes | None = None  # bytes on disk; None: no file yet
        self._dirty = False

    def set(self, rel: str, entry: dict[str, Any]) -> None:
        if self.entries.get(rel) != entry:
            self.entries[rel] = entry
            self._dirty = True

    def remove(self, rel: str) -> None:
        if self.entries.pop(rel, None) is not None:
            self._dirty = True

    def set_export(self, rel: str, entry: dict[str, Any]) -> None:
        if self.exports.get(rel) != entry:
            self.exports[rel] = entry
            self._dirty = True

    def remove_export(self, rel: str) -> None:
        if self.exports.pop(rel, None) is not None:
            self._dirty = True

    @classmethod
    def load(cls, out: Path, campaign: str) -> Manifest:
        path = out / MANIFEST_NAME
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(out, campaign, {})
        try:
            data = json.loads(raw)
            entries = data["outputs"]
            if not isinstance(entries, dict):
                raise TypeError("outputs is not an object")
            bad = next((k for k, v in entries.items() if not isinstance(v, dict)), None)
            if bad is not None:
                raise TypeError(f"outputs[{bad!r}] is not an object")
            exports = data.get("exports", {})
            if not isinstance(exports, dict):
                raise TypeError("exports is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise CampaignError(
                f"{path}: not a qwenbuild manifest ({exc}); move it away to rebuild it"
            ) from None
        manifest = cls(out, campaign, entries, exports)
        manifest._original = raw
        return manifest

    def _data(self) -> dict[str, Any]:
        data = {
            "campaign": self.campaign,
            "format": MANIFEST_FORMAT,
            "outputs": dict(sorted(self.entries.items())),
        }
        if self.exports:  # absent when there are none: older manifests stay byte-identical
            data["exports"] = dict(sorted(self.exports.items()))
        return data

    def save(self) -> bool:
        """Write the manifest if it changed (atomically). Returns whether it wrote."""
        if self._original is None and not self.entries:
            return False  # nothing built and no manifest yet: write nothing
        if not self._dirty and self._original is not None:
            return False  # a no-op build: not even serialised
        data = dumps(self._data())
        if data == self._original:
            return False
        atomic_write(self.out / MANIFEST_NAME, data)
        self._original = data
        self._dirty = False
        return True


class StatCache:
    """Size, mtime and sha256 of each output as last written or checked, per machine."""

    def __init__(self, cache_root: Path, out: Path) -> None:
        tag = folder_tag(out)
        self.path = cache_root / "state" / f"{tag}.json"
        try:
            self.entries: dict[str, list[Any]] = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            self.entries = {}
        self._dirty = False

    def matches(self, rel: str, file: Path, sha256: str) -> bool | None:
        """True: file unchanged since it had `sha256`; None: unknown (must hash); False: gone."""
        try:
            st = file.stat()
        except OSError:
            return False
        known = self.entries.get(rel)
        if known and known[0] == st.st_size and known[1] == st.st_mtime_ns and known[2] == sha256:
            return True
        return None

    def problem(self, rel: str, file: Path, sha256: str) -> str | None:
        """Why `file` no longer holds the bytes hashing to `sha256` ("output missing",
        "output modified"), or None when it does. Hashes only when size or mtime moved."""
        known = self.matches(rel, file, sha256)
        if known is False:
            return "output missing"
        if known is None:
            from .fsutil import file_sha256

            if file_sha256(file) != sha256:
                return "output modified"
            self.remember(rel, file, sha256)
        return None

    def remember(self, rel: str, file: Path, sha256: str) -> None:
        st = file.stat()
        value = [st.st_size, st.st_mtime_ns, sha256]
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
