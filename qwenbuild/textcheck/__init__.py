"""Reading the text back from images and comparing it with the copy.

For each image: the expected lines (an asset's `expect_text`, rendered like its prompt,
else the copy's headline and subtitle), read with two OCR engines (`engines.py`: RapidOCR
and Tesseract; Tesseract alone when RapidOCR is not installed), as many readings as the
verdict needs (`read.py`), and a verdict per line (`verdict.py`):

- **right**: a confident reading matches the line exactly (case, white space and
  punctuation aside, `score.normalise`), and no confident reading says otherwise;
- **wrong**: confident readings agree that it differs, by even one letter, whatever the
  line's length;
- **unreadable**: the readings are not confident either way (or the image's time ran out).

The image is **red** when a line is wrong, else **unreadable** when a line is
unreadable, else **green** (`none` when there is nothing to check, `error` when the image
cannot be opened). `--min-score S` (default 1.0: every letter must be right) tolerates
small differences: a wrong line whose score (`1 - edits / letters`) is at least S makes
the image **amber** instead of red (passing, shown).

Results are cached per image sha256, expected lines, languages, engines and
CHECK_VERSION under `<cache>/textcheck/results/`; each file names its image (`image`), so a
cache collection can drop the results of images no longer referenced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..campaign import Asset, Campaign
from ..errors import TemplateError
from ..keys import canonical_json
from ..plan import Job, Plan, job_context
from ..prompts import Prompts, collapse
from ..store import Store
from .engines import Engines, OcrEngine, OcrFailed, OcrWord
from .locales import ReadingPlan, plan_reading
from .score import Words, match_line, match_places, normalise
from .verdict import RIGHT, UNDECIDED, UNREADABLE, WRONG, Evidence, decide

#: Bump when reading, matching or the verdict changes: every cached result is then read again.
CHECK_VERSION = 4
#: Default threshold: 1.0, a line that differs by one letter fails (`--min-score`).
DEFAULT_MIN_SCORE = 1.0
GREEN, AMBER, RED, UNREADABLE_STATUS, NONE, ERROR = (
    "green", "amber", "red", "unreadable", "none", "error")
#: Statuses from best to worst (the order `--verify-text` keeps the best attempt by).
STATUS_ORDER = (GREEN, NONE, AMBER, UNREADABLE_STATUS, RED, ERROR)


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineResult:
    expected: str
    #: What the reading the verdict rests on read there ("" when nothing was found).
    read: str
    #: 1 - edits / letters of that reading (1.0: read exactly as expected).
    score: float
    #: right, wrong or unreadable.
    verdict: str = RIGHT
    #: The reading it rests on (rapid, tess-lines, ...) and its confidence (0..1) in the
    #: characters that decided (the differing ones for a wrong line).
    source: str = ""
    conf: float = 0.0
    #: Where the reading found the line in the image (x0, y0, x1, y1, the file's pixels),
    #: when it found it: what a repair by inpainting repaints.
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class TextResult:
    """What the check found in one image (independent of any threshold)."""

    lines: tuple[LineResult, ...]
    #: Lines not scored, with the reason (CJK without language data, punctuation only).
    skipped: tuple[tuple[str, str], ...] = ()
    engine: str = ""
    languages: tuple[str, ...] = ()
    error: str | None = None
    #: Why the image is unreadable as a whole (its time ran out), when it is.
    unreadable: str | None = None
    #: The readings made, in order.
    readings: tuple[str, ...] = ()
    #: What the reading went without (language data not installed), and what to install.
    notes: tuple[str, ...] = ()
    #: True when it came from the result cache (the engine was not called).
    cached: bool = field(default=False, compare=False)

    @property
    def worst(self) -> LineResult | None:
        """The line to report: a wrong one (lowest score first), else an unreadable one,
        else the lowest score."""
        if not self.lines:
            return None
        rank = {WRONG: 0, UNREADABLE: 1, RIGHT: 2}
        return min(self.lines, key=lambda line: (rank.get(line.verdict, 1), line.score))

    @property
    def score(self) -> float | None:
        """The lowest line score (informative: the verdict is by line, not by score)."""
        return min((line.score for line in self.lines), default=None)

    def status(self, min_score: float = DEFAULT_MIN_SCORE) -> str:
        """green, amber (wrong lines all scoring at least `min_score`), red, unreadable;
        `none` with nothing to check; `error` when the image cannot be read."""
        if self.error is not None:
            return ERROR
        if self.unreadable is not None:
            return UNREADABLE_STATUS
        if not self.lines:
            return NONE
        wrong = [line for line in self.lines if line.verdict == WRONG]
        if any(line.score < min_score for line in wrong):
            return RED
        if any(line.verdict == UNREADABLE for line in self.lines):
            return UNREADABLE_STATUS
        return AMBER if wrong else GREEN

    def rank(self, min_score: float = DEFAULT_MIN_SCORE) -> tuple[int, float]:
        """Larger is better: by status (green > amber > unreadable > red > error), then by
        score. `--verify-text` keeps the attempt with the highest rank."""
        status = self.status(min_score)
        return (len(STATUS_ORDER) - STATUS_ORDER.index(status),
                -1.0 if self.score is None else self.score)

    @property
    def wrong(self) -> tuple[LineResult, ...]:
        """The lines read wrong."""
        return tuple(line for line in self.lines if line.verdict == WRONG)

    def to_manifest(self, min_score: float = DEFAULT_MIN_SCORE) -> dict[str, Any]:
        """The `text_check` object of a manifest entry."""
        worst = self.worst
        data: dict[str, Any] = {
            "status": self.status(min_score),
            "score": self.score,
            "min_score": min_score,
            "worst_line": worst.expected if worst else None,
            "read": worst.read if worst else None,
            "lines": [{"expected": x.expected, "read": x.read, "score": x.score,
                       "verdict": x.verdict, "source": x.source, "conf": x.conf,
                       **({"box": list(x.box)} if x.box and x.verdict == WRONG else {})}
                      for x in self.lines],
            "engine": self.engine,
            "readings": list(self.readings),
        }
        if self.languages and tuple(self.languages) != ("eng",):
            data["languages"] = list(self.languages)  # Tesseract's, when not English alone
        if self.notes:
            data["notes"] = list(self.notes)
        if self.skipped:
            data["skipped"] = [{"expected": e, "reason": r} for e, r in self.skipped]
        if self.unreadable is not None:
            data["unreadable"] = self.unreadable
        if self.error is not None:
            data["error"] = self.error
        return data

    def to_json(self) -> dict[str, Any]:
        return {"lines": [[x.expected, x.read, x.score, x.verdict, x.source, x.conf,
                           list(x.box) if x.box else None] for x in self.lines],
                "skipped": [list(s) for s in self.skipped], "engine": self.engine,
                "languages": list(self.languages), "readings": list(self.readings),
                "notes": list(self.notes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TextResult:
        lines = []
        for e, r, s, v, src, c, *rest in data["lines"]:
            box = rest[0] if rest else None
            lines.append(LineResult(e, r, float(s), str(v), str(src), float(c),
                                    _box(box)))
        return cls(tuple(lines), tuple((e, r) for e, r in data["skipped"]),
                   str(data["engine"]), tuple(data["languages"]),
                   readings=tuple(data.get("readings", ())),
                   notes=tuple(str(n) for n in data.get("notes", ())), cached=True)


def _box(value: Any) -> tuple[int, int, int, int] | None:
    if isinstance(value, list | tuple) and len(value) == 4:
        x0, y0, x1, y1 = (int(v) for v in value)
        return x0, y0, x1, y1
    return None


# -- what each image must say ---------------------------------------------------------------


def expected_lines(campaign: Campaign, asset: Asset, job: Job, prompts: Prompts) -> tuple[str, ...]:
    """The lines `job`'s image must show. Raises TemplateError for a broken expect_text."""
    if asset.expect_text is None:
        lines: list[str] = []
        copy = asset.copy_for(job.locale)
        for key in ("headline", "subtitle"):
            value = copy.get(key)
            values = value if isinstance(value, list | tuple) else [value]
            lines.extend(collapse(str(v)) for v in values
                         if isinstance(v, str | int | float) and not isinstance(v, bool))
        return tuple(line for line in lines if line)
    spec = campaign.providers[job.provider]
    context = job_context(campaign, asset, job.aspect, spec, job.width, job.height, job.seed,
                          job.variant, job.locale)
    rendered = (prompts.render_string(text, context, f"asset {asset.id}: expect_text[{i}]")
                for i, text in enumerate(asset.expect_text))
    return tuple(line for line in rendered if line)


def expectations(the_plan: Plan) -> dict[str, tuple[str, ...]]:
    """Expected lines of every job of a plan, by output path. Every template problem is
    reported at once (TemplateError, exit code 2) before anything is read or generated."""
    campaign = the_plan.campaign
    prompts = Prompts(campaign.template_dirs, campaign.template_root)
    assets = {a.id: a for a in campaign.assets}
    out: dict[str, tuple[str, ...]] = {}
    problems: list[str] = []
    for job in the_plan.jobs:
        try:
            out[job.output] = expected_lines(campaign, assets[job.asset], job, prompts)
        except TemplateError as exc:
            problems.extend(p for p in exc.problems if p not in problems)
    if problems:
        raise TemplateError(problems)
    return out


# -- languages ------------------------------------------------------------------------------


def plan_languages(lines: Sequence[str],
                   installed: frozenset[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """Tesseract languages to read `lines` with (no locale, Tesseract alone), and the lines
    to skip with the reason (`locales.plan_reading`).

    Latin lines read with `eng`; a line with CJK characters needs `jpn` (kana), `kor`
    (Hangul) or, for Han characters alone, `chi_sim`, `chi_tra` or `jpn`, whichever is
    installed. A line whose language data is missing is skipped, not failed.
    """
    found = plan_reading(lines, installed)
    return found.languages, found.skipped


# -- reading and scoring --------------------------------------------------------------------


def word_orders(words: Sequence[OcrWord]) -> list[list[OcrWord]]:
    """The words in the engine's order, top to bottom by line, and column by column
    (lines grouped by left edge, left to right): distinct orders only."""
    lines: dict[int, list[OcrWord]] = {}
    for word in words:
        lines.setdefault(word.line, []).append(word)
    boxes = {k: (min(w.left for w in ws), min(w.top for w in ws)) for k, ws in lines.items()}
    engine_order = list(lines)
    by_top = sorted(lines, key=lambda k: (boxes[k][1], boxes[k][0]))
    width = max((w.left + w.width for w in words), default=1)
    tolerance = max(8, width // 40)  # left edges this close are one column
    columns: list[list[int]] = []
    for k in sorted(lines, key=lambda k: boxes[k][0]):
        if columns and boxes[k][0] - boxes[columns[-1][0]][0] <= tolerance:
            columns[-1].append(k)
        else:
            columns.append([k])
    by_column = [k for col in columns for k in sorted(col, key=lambda k: boxes[k][1])]
    orders: list[list[OcrWord]] = []
    seen: set[tuple[int, ...]] = set()
    for order in (engine_order, by_top, by_column):
        if tuple(order) not in seen:
            seen.add(tuple(order))
            orders.append([w for k in order for w in lines[k]])
    return orders


def reading_orders(words: Sequence[OcrWord]) -> list[list[str]]:
    """`word_orders`, as the words' texts."""
    return [[w.text for w in order] for order in word_orders(words)]


def _confidences(word: OcrWord) -> Sequence[float] | float:
    if word.char_conf:
        return word.char_conf
    return 1.0 if word.conf < 0 else max(0.0, min(1.0, word.conf / 100))


def _window_box(order: Sequence[OcrWord], words: Words, start: int, end: int,
                scale: float) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1, in the file's pixels) of the words holding normalised
    characters start..end of `words` (made from `order`)."""
    if end <= start or not words.owner:
        return None
    held = order[words.owner[start]:words.owner[end - 1] + 1]
    if not held:
        return None
    bounds = [w.bounds for w in held]
    return (int(min(b[0] for b in bounds) * scale), int(min(b[1] for b in bounds) * scale),
            int(round(max(b[2] for b in bounds) * scale)),
            int(round(max(b[3] for b in bounds) * scale)))


def _line_ranges(order: Sequence[OcrWord], words: Words) -> list[tuple[int, int]]:
    """Each OCR line's normalised characters start..end in `words` (made from `order`)."""
    ranges: list[tuple[int, int]] = []
    line = None
    for k, owner in enumerate(words.owner):
        if ranges and order[owner].line == line:
            ranges[-1] = (ranges[-1][0], k + 1)
        else:
            line = order[owner].line
            ranges.append((k, k + 1))
    return ranges


def evidence_of(reading: Any, lines: Sequence[str]) -> list[list[Evidence]]:
    """Each line's places in one reading (over its reading orders): its best window first
    (fewest differences, then the most confident), then every other place that reads as
    the line or as a near miss of it (`score.match_places`), one per OCR line."""
    best: list[Evidence | None] = [None] * len(lines)
    others: list[dict[frozenset[int], Evidence]] = [{} for _ in lines]
    keys: list[frozenset[int]] = [frozenset()] * len(lines)
    scale = float(getattr(reading, "scale", 1.0))

    def rank(e: Evidence) -> tuple[int, float, float]:
        return e.match.distance, -e.match.diff_conf, -e.match.conf

    for order in word_orders(reading.words):
        words = Words.of([w.text for w in order], [_confidences(w) for w in order])
        ranges = _line_ranges(order, words)
        for i, line in enumerate(lines):
            rest = [other for other in lines if other != line]
            length = len(normalise(line))
            for k, found in enumerate(match_places(line, words, ranges, rest)):
                e = Evidence(reading.source, reading.engine, found, length,
                             _window_box(order, words, found.start, found.end, scale))
                key = frozenset(order[words.owner[x]].line
                                for x in range(found.start, found.end))
                if k == 0:
                    current = best[i]
                    if current is None or rank(e) < rank(current):
                        best[i], keys[i] = e, key
                if key not in others[i] or rank(e) < rank(others[i][key]):
                    others[i][key] = e
    nothing = Words.of([])  # a reading without words: no opinion on any line
    out: list[list[Evidence]] = []
    for i, line in enumerate(lines):
        first = best[i] or Evidence(reading.source, reading.engine, match_line(line, nothing),
                                    len(normalise(line)))
        places, used = [first], set(keys[i])
        for key, e in sorted(others[i].items(), key=lambda item: rank(item[1])):
            if key and not key & used:  # one per place, never the best window's
                places.append(e)
                used |= key
        out.append(places)
    return out


def read_image(engine: Engines | OcrEngine, path: Path, lines: Sequence[str],
               languages: Sequence[str], time_limit: float | None = None,
               tesseract_only: Collection[str] = ()
               ) -> tuple[list[LineResult], tuple[str, ...], str | None]:
    """Read `path` as many times as the lines' verdicts need. Returns the line results,
    the readings made, and why the image is unreadable as a whole (out of time) or None.
    Lines in `tesseract_only` (characters RapidOCR does not know) take no RapidOCR
    reading as evidence, and their objections need no second engine."""
    from .read import TIME_LIMIT, Clock, OutOfTime, readings

    both = isinstance(engine, Engines) and len(engine.names) > 1
    charsets = None
    if both:
        assert isinstance(engine, Engines) and engine.tesseract is not None
        installed = engine.tesseract.languages()
        charsets = engine.charsets(tuple(lang for lang in languages if lang in installed)
                                   or ("eng",))
    across = [both and line not in tesseract_only for line in lines]
    ignored = [line in tesseract_only for line in lines]
    evidence: list[list[Evidence]] = [[] for _ in lines]
    verdicts: list[tuple[str, Evidence | None]] = [(UNDECIDED, None)] * len(lines)
    made: list[str] = []
    out_of_time: str | None = None
    limit = TIME_LIMIT if time_limit is None else time_limit
    try:
        for reading in readings(engine, path, languages, Clock(limit)):
            made.append(reading.source)
            for i, found in enumerate(evidence_of(reading, lines)):
                if ignored[i] and reading.engine == "rapidocr":
                    continue
                if verdicts[i][0] == UNDECIDED:
                    evidence[i].extend(found)
                    verdicts[i] = decide(evidence[i], False, across[i], charsets)
            if all(v != UNDECIDED for v, _ in verdicts):
                break
    except OutOfTime:
        out_of_time = f"not read within {limit:g}s"
    results = []
    for i, line in enumerate(lines):
        verdict, chosen = verdicts[i]
        if verdict == UNDECIDED:
            verdict, chosen = decide(evidence[i], out_of_time is None, across[i], charsets)
            if verdict == UNDECIDED:
                verdict = UNREADABLE
        if chosen is None:
            results.append(LineResult(line, "", 0.0, verdict))
            continue
        m = chosen.match
        conf = m.diff_conf if verdict == WRONG else m.conf
        results.append(LineResult(line, m.read, m.score, verdict, chosen.source,
                                  round(conf, 4), chosen.box))
    return results, tuple(made), out_of_time


def _tesseract_languages(engine: Engines | OcrEngine) -> frozenset[str]:
    if isinstance(engine, Engines):
        if engine.tesseract is None:
            return frozenset({"eng"})
        return engine.tesseract.languages()
    return engine.languages()


class TextChecker:
    """Checks images with the engines given (`engines.default_engine()`: RapidOCR and
    Tesseract), caching each result in the store by image (`store.text_results`)."""

    def __init__(self, engine: Engines | OcrEngine, store: Store,
                 time_limit: float | None = None) -> None:
        self.engine = engine
        self.results = store.text_results
        self.time_limit = time_limit

    def plan(self, lines: Sequence[str], locale: str | None = None,
             languages_only: bool = False) -> ReadingPlan:
        """How `lines` (of a job in `locale`) are read: Tesseract's languages, the lines
        no installed engine reads (skipped), the locale's language data missing (noted).
        `languages_only`: what the result cache needs (the languages), without loading
        RapidOCR's models to learn its characters."""
        installed = _tesseract_languages(self.engine)
        rapid = self.engine.rapid if isinstance(self.engine, Engines) else None
        if languages_only:
            return plan_reading(lines, installed, locale)
        found = plan_reading(lines, installed, locale,
                             rapid.characters() if rapid is not None else None)
        if isinstance(self.engine, Engines) and self.engine.tesseract is None:
            for line in found.tesseract_only:  # RapidOCR alone, and it cannot read these
                found.skipped[line] = ("characters RapidOCR does not read and no Tesseract "
                                       "to read them: install Tesseract OCR")
        return found

    def _digest(self, sha256: str, lines: Sequence[str], languages: Sequence[str],
                locale: str | None = None) -> str:
        return hashlib.sha256(canonical_json({
            "v": CHECK_VERSION, "image": sha256, "lines": list(lines),
            "languages": list(languages), "engine": self.engine.identity(),
            "locale": locale,
        }).encode()).hexdigest()

    def cached(self, sha256: str, lines: Sequence[str],
               locale: str | None = None) -> TextResult | None:
        """The cached result for this image and text, or None (never calls the engine)."""
        languages = self.plan(lines, locale, languages_only=True).languages
        data = self.results.get(self._digest(sha256, lines, languages, locale))
        try:
            if data is None or data.get("image") != sha256:
                return None
            return TextResult.from_json(data)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def check(self, path: Path, sha256: str, lines: Sequence[str],
              locale: str | None = None) -> TextResult:
        """Check the image at `path` (whose bytes hash to `sha256`) against `lines`, the
        copy of a job in `locale` (None: a campaign without locales)."""
        found = self.cached(sha256, lines, locale)
        if found is not None:
            return found
        how = self.plan(lines, locale)
        languages, skipped = how.languages, how.skipped
        scored = [line for line in lines if line not in skipped]
        identity = self.engine.identity()
        try:
            results, made, out_of_time = read_image(
                self.engine, path, scored, languages, self.time_limit,
                how.tesseract_only) if scored else ([], (), None)
        except OcrFailed as exc:  # reported for this image, never cached
            return TextResult((), (), identity, languages, error=str(exc), notes=how.notes)
        except (OSError, ValueError, SyntaxError) as exc:
            # A damaged output file fails its own check only, not the whole command.
            return TextResult((), (), identity, languages,
                              error=f"cannot read the image: {exc}", notes=how.notes)
        result = TextResult(tuple(results), tuple(skipped.items()), identity, languages,
                            unreadable=out_of_time, readings=made, notes=how.notes)
        if out_of_time is None:  # out of time depends on the machine: never cached
            self.remember(sha256, lines, result, locale)
        return result

    def remember(self, sha256: str, lines: Sequence[str], result: TextResult,
                 locale: str | None = None) -> None:
        """File `result` under another image hash too: an output holds the cached image's
        pixels with provenance added, so its bytes (and hash) differ, not its text."""
        if result.error is not None or result.unreadable is not None:
            return  # a failed or timed-out read is never cached
        languages = self.plan(lines, locale, languages_only=True).languages
        digest = self._digest(sha256, lines, languages, locale)
        if self.results.get(digest) is None:
            # `image` names the image the result is about, for `cache gc`.
            self.results.put(digest, {**result.to_json(), "image": sha256, "v": CHECK_VERSION})


__all__ = ["AMBER", "CHECK_VERSION", "DEFAULT_MIN_SCORE", "ERROR", "GREEN", "LineResult",
           "NONE", "RED", "ReadingPlan", "STATUS_ORDER", "TextChecker", "TextResult",
           "UNREADABLE_STATUS",
           "expectations", "expected_lines", "plan_languages", "read_image",
           "reading_orders", "word_orders"]
