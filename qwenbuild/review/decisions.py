"""The review file: design decisions, committed beside the campaign.

`campaign.toml` has its review in `review.toml` (any other `NAME.toml`: `NAME.review.toml`).
One table per reviewed output, keyed by the output's path relative to the output folder
(as in the manifest); each holds a decision (`approved`, `rejected` or `picked`), who made
it and when, the sha256 of the image it was made on, and a comment thread:

    format = 1

    [outputs."1x1/draft/hero-v1.png"]
    decision = "approved"
    by = "Ana Lima"
    at = 2025-05-02T10:14:03Z
    sha256 = "9b1c...64 hex digits"

    [[outputs."1x1/draft/hero-v1.png".comments]]
    by = "Ben Ortiz"
    at = 2025-05-02T10:12:44Z
    sha256 = "9b1c..."
    text = "The footer sits too close to the edge."

Written sorted and stable (outputs by path, keys in a fixed order, comments in the order
they were made), so a review diffs line by line and merges like any text. A decision
counts only for the image it was made on: once the output holds other bytes the decision
is *outdated*, shown as such and never carried over. An approved or picked output whose
image is the one decided on is *locked*: a build keeps it (see plan/assess.py).

This module is a leaf (standard library, contracts, errors, fsutil, redact): `assess`,
the executor, exports and the CLI all read it without import cycles.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import fcntl
import fnmatch
import getpass
import os
import re
import subprocess
import threading
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..contracts import ManifestEntry
from ..errors import CampaignError, UsageError
from ..fsutil import atomic_write
from ..redact import redact

REVIEW_FORMAT = 1
APPROVED, REJECTED, PICKED = "approved", "rejected", "picked"
DECISIONS = (APPROVED, REJECTED, PICKED)
#: Review statuses of an output, as the page, `plan --json` and `build --json` show them.
UNREVIEWED, OUTDATED = "unreviewed", "outdated"
STATUSES = (UNREVIEWED, APPROVED, PICKED, REJECTED, OUTDATED)
#: Decisions that lock an output against rebuilds.
LOCKING = frozenset({APPROVED, PICKED})

_HEX = re.compile(r"^[0-9a-f]{64}$")
_OUTPUT_KEYS = ("decision", "by", "at", "sha256", "comments")
_COMMENT_KEYS = ("by", "at", "sha256", "text")
_HEADER = """\
# The design review of {campaign}, written by qwenbuild (approve, reject, pick and the
# review page) and safe to edit by hand. One table per output (its path in the output
# folder): decision = approved | rejected | picked, who, when, and the sha256 of the image
# it was made on. A decision on an image that has changed since is outdated. Commit it.
"""


#: The outputs that compete for one pick: the variants (seeds) of one asset, aspect,
#: provider and locale.
Group = tuple[str, str, str, str | None]


def variant_group(entry: ManifestEntry) -> Group:
    return (entry.asset, entry.aspect, entry.provider, entry.locale or None)


def picked_variants(review: ReviewFile, entries: Mapping[str, ManifestEntry]
                    ) -> dict[Group, int]:
    """The variant number of each group's pick (derived assets are made from the pick of
    their parent by default; plan/derived.py)."""
    found = {}
    for group, rel in review.picks(entries).items():
        match = re.search(r"-v(\d+)(?:\.candidate)?\.[^./]+$", rel)
        if match:
            found[group] = int(match.group(1))
    return found


def review_path(campaign_path: Path) -> Path:
    """The review file of a campaign file: `review.toml` beside `campaign.toml`, else
    `NAME.review.toml` beside `NAME.toml`."""
    name = "review.toml" if campaign_path.name == "campaign.toml" else \
        f"{campaign_path.stem}.review.toml"
    return campaign_path.with_name(name)


def now() -> dt.datetime:
    """The time a decision is recorded: UTC, to the second (what the file keeps)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Comment:
    by: str
    at: dt.datetime | None
    sha256: str
    text: str


@dataclass(frozen=True)
class OutputReview:
    """What the review file says about one output."""

    decision: str | None = None
    by: str = ""
    at: dt.datetime | None = None
    sha256: str = ""
    comments: tuple[Comment, ...] = ()

    def status(self, sha256: str | None) -> str:
        """The review status of the output when it holds the image `sha256`."""
        if self.decision is None:
            return UNREVIEWED
        if not sha256 or self.sha256 != sha256:
            return OUTDATED
        return self.decision

    @property
    def empty(self) -> bool:
        return self.decision is None and not self.comments


@dataclass(frozen=True)
class Locks:
    """The outputs a build must keep: approved or picked, on the image they hold now.

    `unlock` (build --unlock ASSET, globs) releases the locks of those assets for a build.
    """

    held: Mapping[str, str] = field(default_factory=dict)  # output -> sha256 decided on
    unlock: tuple[str, ...] = ()

    def locked(self, output: str, asset: str, sha256: str) -> bool:
        return self._holds(output, sha256) and not self._unlocked(asset)

    def released(self, output: str, asset: str, sha256: str) -> bool:
        return self._holds(output, sha256) and self._unlocked(asset)

    def _holds(self, output: str, sha256: str) -> bool:
        return bool(sha256) and self.held.get(output) == sha256

    def _unlocked(self, asset: str) -> bool:
        return any(fnmatch.fnmatchcase(asset, pattern) for pattern in self.unlock)

    def __bool__(self) -> bool:
        return bool(self.held)


class ReviewFile:
    """The review file of one campaign: decisions and comments by output path."""

    def __init__(self, path: Path, outputs: dict[str, OutputReview] | None = None,
                 raw: bytes | None = None, campaign: str = "") -> None:
        self.path = path
        self.outputs: dict[str, OutputReview] = outputs or {}
        self.campaign = campaign or _campaign_name(path)
        self._raw = raw  # the bytes read; None: no file
        self._lines: dict[str, int] = {}

    @property
    def exists(self) -> bool:
        return self._raw is not None

    # -- reading ----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> ReviewFile:
        """The review file at `path` (empty when there is none). Raises CampaignError,
        located and listing every problem, when it is not a valid review file."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise CampaignError(f"{path}: cannot read the review file: "
                                f"{exc.strerror or exc}") from None
        shown = _shown(path)
        try:
            text = raw.decode("utf-8")
            data = tomllib.loads(text)
        except UnicodeDecodeError:
            raise CampaignError(f"{shown}: the review file is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise CampaignError(f"{shown}: TOML syntax error: {exc}") from None
        lines = _table_lines(text)
        problems: list[str] = []
        outputs = _parse(data, shown, lines, problems)
        if problems:
            raise CampaignError(problems)
        review = cls(path, outputs, raw)
        review._lines = lines
        return review

    def get(self, output: str) -> OutputReview | None:
        return self.outputs.get(output)

    def status(self, output: str, sha256: str | None) -> str:
        found = self.outputs.get(output)
        return found.status(sha256) if found is not None else UNREVIEWED

    def locks(self, unlock: Iterable[str] = ()) -> Locks:
        return Locks({rel: r.sha256 for rel, r in self.outputs.items()
                      if r.decision in LOCKING and r.sha256}, tuple(unlock))

    def picks(self, entries: Mapping[str, ManifestEntry]) -> dict[Group, str]:
        """The picked output of each group (asset, aspect, provider, locale) whose pick is
        on the image the output holds. Raises CampaignError when one group has two picks."""
        found: dict[Group, str] = {}
        problems = []
        for rel in sorted(self.outputs):
            review = self.outputs[rel]
            entry = entries.get(rel)
            if entry is None or review.status(entry.sha256) != PICKED:
                continue
            group = variant_group(entry)
            if group in found:
                problems.append(f"{self._where(rel)}: {rel} and {found[group]} are both "
                                f"picked for {' '.join(filter(None, group))}; "
                                "one variant is the pick (set the other to approved)")
                continue
            found[group] = rel
        if problems:
            raise CampaignError(problems)
        return found

    def export_picks(self, entries: Mapping[str, ManifestEntry]) -> dict[str, str | None]:
        """For exports: every output of a group with a pick, mapped to the name its
        renditions take (the asset id, without `-vN`: a stable path whichever variant is
        picked) or None for the variants not picked (they get no renditions)."""
        picks = self.picks(entries)
        if not picks:
            return {}
        result: dict[str, str | None] = {}
        for rel, entry in entries.items():
            picked = picks.get(variant_group(entry))
            if picked is not None:
                result[rel] = entry.asset if rel == picked else None
        return result

    def _where(self, output: str) -> str:
        line = self._lines.get(output)
        return f"{_shown(self.path)}:{line}" if line else _shown(self.path)

    # -- editing ----------------------------------------------------------------------------

    def decide(self, output: str, decision: str | None, sha256: str, by: str,
               at: dt.datetime | None = None, comment: str | None = None) -> None:
        """Record `decision` (None clears it) on `output`'s image `sha256`, with an
        optional comment."""
        if decision is not None and decision not in DECISIONS:
            raise UsageError(f"unknown decision {decision!r} (one of {', '.join(DECISIONS)})")
        at = at or now()
        current = self.outputs.get(output, OutputReview())
        if decision is None:
            current = replace(current, decision=None, by="", at=None, sha256="")
        else:
            current = replace(current, decision=decision, by=by, at=at, sha256=sha256)
        self.outputs[output] = current
        if comment:
            self.comment(output, sha256, by, comment, at)
        self._tidy(output)

    def comment(self, output: str, sha256: str, by: str, text: str,
                at: dt.datetime | None = None) -> None:
        text = redact(text.strip())  # a pasted key must never land in a committed file
        if not text:
            raise UsageError("a comment needs some text")
        current = self.outputs.get(output, OutputReview())
        self.outputs[output] = replace(current, comments=(
            *current.comments, Comment(by, at or now(), sha256, text)))

    def unpick(self, output: str) -> None:
        """Take the pick away from `output` (another variant was picked): it falls back to
        unreviewed, its comments stay."""
        current = self.outputs.get(output)
        if current is not None and current.decision == PICKED:
            self.outputs[output] = replace(current, decision=None, by="", at=None, sha256="")
            self._tidy(output)

    def move(self, source: str, target: str) -> None:
        """Move what was said about `source` to `target` (a promoted candidate): its
        comments join the target's thread; its decision is dropped (the caller decides)."""
        moved = self.outputs.pop(source, None)
        if moved is not None and moved.comments:
            current = self.outputs.get(target, OutputReview())
            self.outputs[target] = replace(current, comments=(*current.comments,
                                                              *moved.comments))

    def _tidy(self, output: str) -> None:
        if output in self.outputs and self.outputs[output].empty:
            del self.outputs[output]

    # -- writing ----------------------------------------------------------------------------

    def dumps(self) -> bytes:
        """The file's bytes: sorted, stable, comments in the order they were made."""
        parts = [_HEADER.format(campaign=self.campaign), f"format = {REVIEW_FORMAT}\n"]
        for rel in sorted(self.outputs):
            review = self.outputs[rel]
            key = f"outputs.{_string(rel)}"
            if review.decision is not None:
                parts.append(f"\n[{key}]\n")
                parts.append(f"decision = {_string(review.decision)}\n")
                if review.by:
                    parts.append(f"by = {_string(review.by)}\n")
                if review.at is not None:
                    parts.append(f"at = {_iso(review.at)}\n")
                parts.append(f"sha256 = {_string(review.sha256)}\n")
            for comment in review.comments:
                parts.append(f"\n[[{key}.comments]]\n")
                if comment.by:
                    parts.append(f"by = {_string(comment.by)}\n")
                if comment.at is not None:
                    parts.append(f"at = {_iso(comment.at)}\n")
                if comment.sha256:
                    parts.append(f"sha256 = {_string(comment.sha256)}\n")
                parts.append(f"text = {_string(comment.text)}\n")
        return "".join(parts).encode("utf-8")

    def save(self) -> bool:
        """Write the file if its contents changed (atomically). An empty review removes
        a file qwenbuild would write again identically, never writes an empty one."""
        if not self.outputs and self._raw is None:
            return False
        data = self.dumps()
        if data == self._raw:
            return False
        atomic_write(self.path, data)
        self._raw = data
        return True


_edit_lock = threading.Lock()


@contextlib.contextmanager
def editing(path: Path) -> Iterator[ReviewFile]:
    """The review file, loaded under a lock and saved when the block ends without error:
    two reviewers (a page and a terminal, two tabs) never lose each other's decisions.

    The lock is `flock` on the folder holding the file (the file itself is replaced on
    every write), taken by threads of this process one at a time."""
    with _edit_lock:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            review = ReviewFile.load(path)
            yield review
            review.save()
        finally:
            os.close(fd)  # releases the flock


def reviewer(folder: Path, given: str | None = None) -> str:
    """Who is deciding: `given` (--by), else QWENBUILD_REVIEWER, else `git config
    user.name` in `folder`, else the login name."""
    for name in (given, os.environ.get("QWENBUILD_REVIEWER")):
        if name and name.strip():
            return name.strip()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        found = subprocess.run(["git", "config", "user.name"], cwd=folder,
                               capture_output=True, text=True, timeout=10, check=False)
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "unknown"


# -- parsing ------------------------------------------------------------------------------------


def _parse(data: dict[str, Any], shown: str, lines: dict[str, int],
           problems: list[str]) -> dict[str, OutputReview]:
    def where(output: str | None = None) -> str:
        line = lines.get(output) if output is not None else None
        return f"{shown}:{line}" if line else shown

    for key in data:
        if key not in ("format", "outputs"):
            problems.append(f"{shown}: {key}: unknown key"
                            + _did_you_mean(key, ["format", "outputs"]))
    version = data.get("format", REVIEW_FORMAT)
    if version != REVIEW_FORMAT:
        problems.append(f"{shown}: format: {version!r} is not a review format this qwenbuild "
                        f"reads (it reads format {REVIEW_FORMAT}); upgrade qwenbuild")
    outputs = data.get("outputs", {})
    if not isinstance(outputs, dict):
        problems.append(f"{shown}: outputs: must be a table of outputs")
        return {}
    result = {}
    for rel, table in outputs.items():
        at = where(rel)
        name = f"outputs.{_string(rel)}"
        if not _valid_output(rel):
            problems.append(f"{at}: {name}: not an output path (relative to the output folder, "
                            "like 1x1/draft/hero.png)")
            continue
        if not isinstance(table, dict):
            problems.append(f"{at}: {name}: must be a table")
            continue
        for key in table:
            if key not in _OUTPUT_KEYS:
                problems.append(f"{at}: {name}.{key}: unknown key"
                                + _did_you_mean(key, list(_OUTPUT_KEYS)))
        decision = table.get("decision")
        if decision is not None and decision not in DECISIONS:
            problems.append(f"{at}: {name}.decision: {decision!r} is not a decision (one of "
                            f"{', '.join(DECISIONS)})" + _did_you_mean(str(decision),
                                                                        list(DECISIONS)))
            decision = None
        sha = table.get("sha256", "")
        if decision is not None and not sha:
            problems.append(f"{at}: {name}.sha256: missing; a decision is about one image "
                            "(qwenbuild approve writes its sha256)")
        elif sha and not (isinstance(sha, str) and _HEX.match(sha)):
            problems.append(f"{at}: {name}.sha256: must be 64 lowercase hex digits")
        comments = []
        raw_comments = table.get("comments", [])
        if not isinstance(raw_comments, list):
            problems.append(f"{at}: {name}.comments: must be an array of tables "
                            f"([[{name}.comments]])")
            raw_comments = []
        for i, item in enumerate(raw_comments):
            label = f"{name}.comments[{i}]"
            if not isinstance(item, dict):
                problems.append(f"{at}: {label}: must be a table")
                continue
            for key in item:
                if key not in _COMMENT_KEYS:
                    problems.append(f"{at}: {label}.{key}: unknown key"
                                    + _did_you_mean(key, list(_COMMENT_KEYS)))
            text = item.get("text")
            if not isinstance(text, str) or not text.strip():
                problems.append(f"{at}: {label}.text: missing (the comment itself)")
                continue
            csha = item.get("sha256", "")
            if csha and not (isinstance(csha, str) and _HEX.match(csha)):
                problems.append(f"{at}: {label}.sha256: must be 64 lowercase hex digits")
            comments.append(Comment(_text(item.get("by"), f"{at}: {label}.by", problems),
                                    _time(item.get("at"), f"{at}: {label}.at", problems),
                                    csha if isinstance(csha, str) else "", text))
        result[rel] = OutputReview(
            decision=decision,
            by=_text(table.get("by"), f"{at}: {name}.by", problems),
            at=_time(table.get("at"), f"{at}: {name}.at", problems),
            sha256=sha if isinstance(sha, str) else "",
            comments=tuple(comments))
    return {rel: r for rel, r in result.items() if not r.empty}


def _valid_output(rel: str) -> bool:
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and "\\" not in rel and all(
        p not in ("", ".", "..") for p in parts)


def _text(value: Any, where: str, problems: list[str]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(f"{where}: must be a string")
        return ""
    return value


def _time(value: Any, where: str, problems: list[str]) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment: dt.datetime = value if value.tzinfo is not None else \
            value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    problems.append(f"{where}: must be a date and time, like 2025-05-02T10:14:03Z")
    return None


_TABLE = re.compile(r'^\s*\[\[?\s*outputs\s*\.\s*("(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+)')


def _table_lines(text: str) -> dict[str, int]:
    """The line of the first table of each output, for messages."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _TABLE.match(line)
        if not match:
            continue
        token = match.group(1)
        try:
            key = next(iter(tomllib.loads(f"{token} = 0")))
        except (tomllib.TOMLDecodeError, StopIteration):
            continue
        lines.setdefault(key, number)
    return lines


def _did_you_mean(value: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path).replace(os.sep, "/")
    except ValueError:
        return str(path)


def _campaign_name(path: Path) -> str:
    if path.name == "review.toml":
        return "campaign.toml"
    return path.name.removesuffix(".review.toml") + ".toml"


# -- writing ------------------------------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def _string(value: str) -> str:
    """A TOML basic string."""
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _iso(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
