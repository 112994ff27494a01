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

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .contracts import ExportEntry, ManifestEntry
from .errors import CampaignError, FileSystemError
from .fsutil import write_chunks_if_changed

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


def dumps(data: Any) -> bytes:
    return b"".join(chunks(data))


def chunks(data: Any) -> Iterator[bytes]:
    """`data` as the manifest's JSON (sorted keys, indent 2, UTF-8), piece by piece: an
    entry (ManifestEntry, ExportEntry) is turned into its JSON object only when it is
    reached, so 20,000 of them are never all in memory as dicts, nor the text whole."""
    encoder = json.JSONEncoder(indent=2, sort_keys=True, ensure_ascii=False,
                               default=_entry_json)
    for piece in encoder.iterencode(data):
        yield piece.encode()
    yield b"\n"


def _entry_json(value: Any) -> Any:
    if isinstance(value, ManifestEntry | ExportEntry):
        return value.to_json()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


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
        #: sha256 of the bytes on disk; None: no file yet.
        self._digest: str | None = None
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
        manifest._digest = hashlib.sha256(raw).hexdigest()
        return manifest

    def same_on_disk(self) -> bool:
        """Whether the file still holds what was loaded (absent then, absent now)."""
        try:
            raw = (self.out / MANIFEST_NAME).read_bytes()
        except FileNotFoundError:
            return self._digest is None
        except OSError:
            return False
        return hashlib.sha256(raw).hexdigest() == self._digest

    def to_json(self) -> dict[str, Any]:
        data = self._data()
        for name in ("outputs", "exports", "candidates"):
            if name in data:
                data[name] = {rel: e.to_json() for rel, e in sorted(data[name].items())}
        return data

    def _data(self) -> dict[str, Any]:
        """The manifest as JSON data, with entries as they are (see `chunks`)."""
        data: dict[str, Any] = {
            "campaign": self.campaign,
            "format": MANIFEST_FORMAT,
            "outputs": dict(self.entries),
        }
        if self.exports:  # absent when there are none: older manifests stay byte-identical
            data["exports"] = dict(self.exports)
        if self.candidates:  # the same: only once a build made a candidate
            data["candidates"] = dict(self.candidates)
        return data

    def save(self) -> bool:
        """Write the manifest if it changed (atomically). Returns whether it wrote."""
        if self._digest is None and not self.entries:
            return False  # nothing built and no manifest yet: write nothing
        if not self._dirty and self._digest is not None:
            return False  # a no-op build: not even serialised
        with self._lock:  # an output written in a thread may be recording itself
            data = self._data()  # (copies of the dicts: written outside the lock)
        digest = write_chunks_if_changed(self.out / MANIFEST_NAME, chunks(data),
                                         self._digest)
        self._dirty = False
        if digest is None:
            return False
        self._digest = digest
        return True
