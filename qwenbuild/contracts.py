"""The contracts other parts rely on: statuses and reasons as enums, and the typed records
that qwenbuild writes to disk (manifest entries, export entries, cache records), each with
one (de)serialisation.

The enums are `StrEnum`s whose values are the words the JSON reports and the CLI have
always used, so `--json` output and the manifest stay as they were. The record classes
keep any key they do not know (written by a newer qwenbuild, or by hand) in `extra` and
write it back unchanged: reading and writing an entry never loses data, and an entry read
and written again is byte-identical once serialised with sorted keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar


class JobStatus(StrEnum):
    """What a build did with one job."""

    GENERATED = "generated"
    CACHED = "cached"  # restored from the cache, nothing paid
    UP_TO_DATE = "up_to_date"
    FAILED = "failed"
    #: Approved or picked in the review file: kept as it is though its inputs changed.
    LOCKED = "locked"


class Action(StrEnum):
    """What a build would do with one job (`plan`)."""

    GENERATE = "build"
    RESTORE = "cached"
    KEEP = "up_to_date"
    #: An export rendition to make again (free: cut from an output).
    RENDER = "render"
    #: Approved or picked (review file): the build keeps the image though its inputs
    #: changed; the reasons say what changed (`build --candidates` makes the new one beside).
    LOCKED = "locked"


class Reason(StrEnum):
    """Why a job is (or is not) built. Several may apply at once (`Assessment.reasons`)."""

    NEW = "new"
    FORCED = "forced"
    UP_TO_DATE = "up to date"
    RESTORED = "restored from cache"
    OUTPUT_MISSING = "output missing"
    OUTPUT_MODIFIED = "output modified"
    PROMPT = "prompt changed"
    NEGATIVE = "negative prompt changed"
    SIZE = "size changed"
    SEED = "seed changed"
    MODEL = "model changed"
    REFERENCES = "references changed"
    PROMPT_EXTEND = "prompt_extend changed"
    OPTIONS = "options changed"
    DESIGN = "copy or brand changed"
    RENDERER = "preview renderer changed"
    FONTS = "preview fonts changed"
    #: The output a job is edited from changed (derived assets, localised edits).
    PARENT = "parent changed"
    #: ...or will change in this build: the job is made once its parent is.
    PARENT_CHANGES = "parent changes"
    INPUTS = "inputs changed"
    TEXT_REROLL = "text reroll"
    #: `build --unlock ASSET` released the lock of an approved output.
    UNLOCKED = "unlocked"
    TEXT_REPAIR = "text repair"
    # Export renditions:
    SOURCE_CHANGES = "source changes"
    SOURCE_CHANGED = "source changed"
    SETTINGS_CHANGED = "settings changed"


def reason_text(reasons: tuple[Reason, ...]) -> str:
    """Reasons as the CLI and the JSON reports show them: `prompt changed, size changed`."""
    return ", ".join(r.value for r in reasons)


def locked_text(reasons: tuple[Reason, ...]) -> str:
    """Why a locked output is kept, as the CLI says it: `inputs changed: prompt changed`."""
    if reasons == (Reason.FORCED,):
        return "regenerate asked; the approved image is kept"
    if reasons and all(r in (Reason.OUTPUT_MISSING, Reason.OUTPUT_MODIFIED) for r in reasons):
        return f"{reason_text(reasons)}; the approved image is not in the cache to restore"
    return f"inputs changed: {reason_text(reasons)}"


_R = TypeVar("_R", bound="_Record")
#: The `extra` of the many records that hold nothing else: one shared, read-only.
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class _Record:
    """A JSON object with known fields and whatever else it held (`extra`)."""

    extra: Mapping[str, Any] = field(default_factory=lambda: _NO_EXTRA, kw_only=True)
    #: Fields written only when they hold something (absent from older files).
    _optional: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_json(cls: type[_R], data: Mapping[str, Any]) -> _R:
        names = {f.name for f in fields(cls) if f.name != "extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**known, extra=extra or _NO_EXTRA)

    @classmethod
    def wrong_types(cls, data: Mapping[str, Any]) -> list[str]:
        """The known fields of `data` whose JSON type is not the field's, as
        `"bytes" is a string, not a number` (empty when every one fits)."""
        found = []
        for f in fields(cls):
            if f.name == "extra" or f.name not in data:
                continue
            kinds = _JSON_KINDS[str(f.type)]
            value = data[f.name]
            if not any(_is(value, kind) for kind in kinds):
                found.append(f"{f.name!r} is {_kind_of(value)}, not "
                             f"{' or '.join(_NAMES[k] for k in kinds)}")
        return found

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name in self._optional and value in (None, False):
                continue
            data[f.name] = value
        return data

    def get(self, name: str, default: Any = None) -> Any:
        """A field by name, known or extra (for code reading older records)."""
        if name != "extra" and name in {f.name for f in fields(self)}:
            return getattr(self, name)
        return self.extra.get(name, default)


@dataclass(frozen=True, slots=True)
class ManifestEntry(_Record):
    """One output in `<out>/manifest.json` (`outputs["1x1/draft/hero.png"]`)."""

    asset: str = ""
    aspect: str = ""
    provider: str = ""
    kind: str = ""
    model: str = ""
    seed: int | None = None
    provider_seed: int | None = None
    #: The job key the output was made for (see keys.py).
    key: str = ""
    #: sha256 of the output file as written (provider bytes plus provenance).
    sha256: str = ""
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    cost_usd: float | None = None
    #: The text check's verdict (`qwenbuild check`, `build --verify-text`).
    text_check: Mapping[str, Any] | None = None
    #: The campaign no longer makes this output; kept until `qwenbuild clean`.
    stale: bool = False
    #: The locale of its copy (campaigns with locales only).
    locale: str | None = None
    #: The output it was edited from (derived assets, localised edits only).
    parent: str | None = None

    _optional: ClassVar[frozenset[str]] = frozenset({"text_check", "stale", "locale", "parent"})


@dataclass(frozen=True, slots=True)
class ExportEntry(_Record):
    """One export rendition in `<out>/manifest.json` (`exports["exports/og/..."]`)."""

    export: str = ""
    source: str = ""
    source_sha256: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    sha256: str = ""
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    stale: bool = False

    _optional: ClassVar[frozenset[str]] = frozenset({"stale"})


@dataclass(frozen=True, slots=True)
class CacheRecord(_Record):
    """The record beside an image in the cache: what made it and what it cost."""

    key: str = ""
    #: The key fields the image was made from (prompt, size, seed, ...), for `plan` reasons.
    inputs: Mapping[str, Any] | None = None
    provider: str = ""
    kind: str = ""
    model: str = ""
    seed: int | None = None
    provider_seed: int | None = None
    cost_usd: float | None = None
    response_ids: Mapping[str, str] = field(default_factory=dict)
    width: int | None = None
    height: int | None = None
    created: str = ""
    #: sha256 and size of the image bytes in the cache (set by the store on `put`).
    sha256: str | None = None
    bytes: int | None = None


#: The JSON types each annotation of a record field accepts.
_JSON_KINDS: dict[str, tuple[str, ...]] = {
    "str": ("str",),
    "str | None": ("str", "null"),
    "int | None": ("int", "null"),
    "float | None": ("number", "null"),
    "bool": ("bool",),
    "Mapping[str, Any]": ("object",),
    "Mapping[str, Any] | None": ("object", "null"),
    "Mapping[str, str]": ("object",),
}
_NAMES = {"str": "a string", "null": "null", "int": "an integer", "number": "a number",
          "bool": "true or false", "object": "an object"}


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, {"str": str, "int": int, "number": int | float,
                              "object": dict}[kind])


def _kind_of(value: Any) -> str:
    return next((_NAMES[k] for k in ("null", "bool", "int", "number", "str", "object")
                 if _is(value, k)), "a list" if isinstance(value, list) else "something else")
