"""`<out>/manifest.json`: the lockfile of a campaign's outputs, stable and sorted.

It holds no timestamps and no absolute paths, so a no-op build leaves it byte-identical
and a git diff shows exactly which outputs changed. The size and mtime of each output
(to skip re-hashing unchanged files) are machine-local and live in the store.

Format 1:

    {"campaign": NAME, "format": 1,
     "outputs": {"<W>x<H>/<provider>/<asset>[-vN].<ext>": ManifestEntry, ...},
     "exports": {"exports/<name>/<provider>/<file>": ExportEntry, ...},   (only if any)
     "candidates": {"<W>x<H>/<provider>/<asset>[-vN].candidate.<ext>": ManifestEntry}}
                                                                           (only if any)

A candidate is the image the current inputs make for an output that the review file
locks (approved or picked): `build --candidates` writes it beside the approved one.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from .contracts import ExportEntry, ManifestEntry
from .errors import CampaignError, FileSystemError
from .fsutil import atomic_write

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


def dumps(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


class Manifest:
    """Entries by output path (relative to the output root, POSIX separators)."""

    def __init__(self, out: Path, campaign: str, entries: dict[str, ManifestEntry],
                 exports: dict[str, ExportEntry] | None = None,
                 candidates: dict[str, ManifestEntry] | None = None) -> None:
        self.out = out
        self.campaign = campaign
        self.entries = entries
        #: Export renditions by path (see exports.py), kept apart from the generated outputs
        #: so that everything reading `entries` sees only images a provider made.
        self.exports: dict[str, ExportEntry] = exports if exports is not None else {}
        #: Candidates beside locked outputs (`build --candidates`), apart for the same
        #: reason: they are not what the campaign ships until approved.
        self.candidates: dict[str, ManifestEntry] = candidates if candidates is not None \
            else {}
        self._original: bytes | None = None  # bytes on disk; None: no file yet
        self._dirty = False
        # Outputs are written (and recorded) from worker threads during a build.
        self._lock = threading.Lock()

    def set(self, rel: str, entry: ManifestEntry) -> None:
        with self._lock:
            if self.entries.get(rel) != entry:
                self.entries[rel] = entry
                self._dirty = True

    def remove(self, rel: str) -> None:
        if self.entries.pop(rel, None) is not None:
            self._dirty = True

    def set_export(self, rel: str, entry: ExportEntry) -> None:
        if self.exports.get(rel) != entry:
            self.exports[rel] = entry
            self._dirty = True

    def remove_export(self, rel: str) -> None:
        if self.exports.pop(rel, None) is not None:
            self._dirty = True

    def set_candidate(self, rel: str, entry: ManifestEntry) -> None:
        with self._lock:
            if self.candidates.get(rel) != entry:
                self.candidates[rel] = entry
                self._dirty = True

    def remove_candidate(self, rel: str) -> None:
        with self._lock:
            if self.candidates.pop(rel, None) is not None:
                self._dirty = True

    @classmethod
    def load(cls, out: Path, campaign: str) -> Manifest:
        path = out / MANIFEST_NAME
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):  # no manifest (nor folder) yet
            return cls(out, campaign, {})
        except OSError as exc:  # a folder in its place, no permission
            raise FileSystemError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            outputs = data["outputs"]
            if not isinstance(outputs, dict):
                raise TypeError("outputs is not an object")
            exports = data.get("exports", {})
            if not isinstance(exports, dict):
                raise TypeError("exports is not an object")
            candidates = data.get("candidates", {})
            if not isinstance(candidates, dict):
                raise TypeError("candidates is not an object")
            for section, kind, items in (("outputs", ManifestEntry, outputs),
                                         ("exports", ExportEntry, exports),
                                         ("candidates", ManifestEntry, candidates)):
                for rel, value in items.items():
                    if not isinstance(value, dict):
                        raise TypeError(f"{section}[{rel!r}] is not an object")
                    wrong = kind.wrong_types(value)
                    if wrong:
                        raise TypeError(f"{section}[{rel!r}]: {'; '.join(wrong)}")
            entries = {rel: ManifestEntry.from_json(v) for rel, v in outputs.items()}
            renditions = {rel: ExportEntry.from_json(v) for rel, v in exports.items()}
            beside = {rel: ManifestEntry.from_json(v) for rel, v in candidates.items()}
        except RecursionError:
            raise CampaignError(f"{path}: not a qwenbuild manifest (nested too deeply); move "
                                "it away to rebuild it") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CampaignError(
                f"{path}: not a qwenbuild manifest ({exc}); move it away to rebuild it"
            ) from None
        manifest = cls(out, campaign, entries, renditions, beside)
        manifest._original = raw
        return manifest

    def same_on_disk(self) -> bool:
        """Whether the file still holds what was loaded (absent then, absent now)."""
        try:
            return (self.out / MANIFEST_NAME).read_bytes() == self._original
        except FileNotFoundError:
            return self._original is None
        except OSError:
            return False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "campaign": self.campaign,
            "format": MANIFEST_FORMAT,
            "outputs": {rel: e.to_json() for rel, e in sorted(self.entries.items())},
        }
        if self.exports:  # absent when there are none: older manifests stay byte-identical
            data["exports"] = {rel: e.to_json() for rel, e in sorted(self.exports.items())}
        if self.candidates:  # the same: only once a build made a candidate
            data["candidates"] = {rel: e.to_json()
                                  for rel, e in sorted(self.candidates.items())}
        return data

    def save(self) -> bool:
        """Write the manifest if it changed (atomically). Returns whether it wrote."""
        if self._original is None and not self.entries:
            return False  # nothing built and no manifest yet: write nothing
        if not self._dirty and self._original is not None:
            return False  # a no-op build: not even serialised
        with self._lock:  # an output written in a thread may be recording itself
            data = dumps(self.to_json())
        if data == self._original:
            return False
        atomic_write(self.out / MANIFEST_NAME, data)
        self._original = data
        self._dirty = False
        return True
