"""Reading the text back from images and comparing it with the copy.

For each image: the expected lines (an asset's `expect_text`, rendered like its prompt,
else the copy's headline and subtitle), OCR through an engine (`engines.py`), and a score
per line (`score.py`). An image's score is its worst line's. Results are cached per image
sha256, expected text, languages and engine version under `<cache>/textcheck/results/`, so
checking an image a second time costs a file read.

OCR preprocessing, deterministic: flatten transparency onto white, grayscale, scale so
the short side is at least 1000 px (small text reads badly) and the long side at most
3000 px, stretch the contrast; read it, and while a line does not read perfectly, read
more (`_readings`: inverted, CJK data alone, own size) and keep each line's best. Each
reading is scored in three orders of its lines (the engine's, top to bottom, and column by
column) because sparse-text OCR loses the order of a headline wrapped beside other panels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..campaign import Asset, Campaign
from ..errors import TemplateError
from ..keys import canonical_json
from ..plan import Job, Plan, job_context
from ..prompts import Prompts, collapse
from ..store import Store
from .engines import OcrEngine, OcrFailed, OcrWord
from .score import Words, is_cjk, match_line, normalise

#: Bump when preprocessing or scoring changes: every cached result is then read again.
CHECK_VERSION = 1
#: Default threshold: an image whose worst line scores under it fails (`--min-score`).
DEFAULT_MIN_SCORE = 0.8
#: Green from here (or from the threshold, when that is higher); amber in between.
GREEN_AT = 0.95
GREEN, AMBER, RED, NONE, ERROR = "green", "amber", "red", "none", "error"

_SHORT_SIDE_MIN = 1000
_LONG_SIDE_MAX = 3000
_MAX_UPSCALE = 4.0


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineResult:
    expected: str
    read: str
    score: float


@dataclass(frozen=True)
class TextResult:
    """What the check found in one image (independent of any threshold)."""

    lines: tuple[LineResult, ...]
    #: Lines not scored, with the reason (CJK without language data, punctuation only).
    skipped: tuple[tuple[str, str], ...] = ()
    engine: str = ""
    languages: tuple[str, ...] = ()
    error: str | None = None
    #: True when it came from the result cache (the engine was not called).
    cached: bool = field(default=False, compare=False)

    @property
    def worst(self) -> LineResult | None:
        return min(self.lines, key=lambda line: line.score) if self.lines else None

    @property
    def score(self) -> float | None:
        worst = self.worst
        return None if worst is None else worst.score

    def status(self, min_score: float) -> str:
        """green, amber or red by the worst line; `none` with nothing to score; `error`."""
        if self.error is not None:
            return ERROR
        score = self.score
        if score is None:
            return NONE
        if score >= max(GREEN_AT, min_score):
            return GREEN
        return AMBER if score >= min_score else RED

    def to_manifest(self, min_score: float) -> dict[str, Any]:
        """The `text_check` object of a manifest entry."""
        worst = self.worst
        data: dict[str, Any] = {
            "status": self.status(min_score),
            "score": self.score,
            "min_score": min_score,
            "worst_line": worst.expected if worst else None,
            "read": worst.read if worst else None,
            "lines": [{"expected": x.expected, "read": x.read, "score": x.score}
                      for x in self.lines],
            "engine": self.engine,
        }
        if self.skipped:
            data["skipped"] = [{"expected": e, "reason": r} for e, r in self.skipped]
        if self.error is not None:
            data["error"] = self.error
        return data

    def to_json(self) -> dict[str, Any]:
        return {"lines": [[x.expected, x.read, x.score] for x in self.lines],
                "skipped": [list(s) for s in self.skipped], "engine": self.engine,
                "languages": list(self.languages)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TextResult:
        return cls(tuple(LineResult(e, r, float(s)) for e, r, s in data["lines"]),
                   tuple((e, r) for e, r in data["skipped"]), str(data["engine"]),
                   tuple(data["languages"]), cached=True)


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

_LANGUAGE_NAMES = {"chi_sim": "Chinese (simplified)", "chi_tra": "Chinese (traditional)",
                   "jpn": "Japanese", "kor": "Korean"}


def plan_languages(lines: Sequence[str],
                   installed: frozenset[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """Tesseract languages to read `lines` with, and the lines to skip with the reason.

    Latin lines read with `eng`; a line with CJK characters needs `jpn` (kana), `kor`
    (Hangul) or, for Han characters alone, `chi_sim`, `chi_tra` or `jpn`, whichever is
    installed. A line whose language data is missing is skipped, not failed.
    """
    langs = ["eng"]
    skipped: dict[str, str] = {}
    for line in lines:
        if not normalise(line):
            skipped[line] = "no letters or digits to read"
            continue
        cjk = [ch for ch in line if is_cjk(ch)]
        if not cjk:
            continue
        if any(0x3040 <= ord(ch) <= 0x30FF for ch in cjk):
            wanted = ["jpn"]
        elif any(0xAC00 <= ord(ch) <= 0xD7AF or 0x1100 <= ord(ch) <= 0x11FF for ch in cjk):
            wanted = ["kor"]
        else:
            wanted = ["chi_sim", "chi_tra", "jpn"]
        have = [lang for lang in wanted if lang in langs] or [
            lang for lang in wanted if lang in installed]
        if have:
            if have[0] not in langs:
                langs.append(have[0])
        else:
            package = "tesseract-ocr-" + wanted[0].replace("_", "-")
            skipped[line] = (f"no Tesseract language data for {_LANGUAGE_NAMES[wanted[0]]} "
                             f"({wanted[0]}); install {package} to check it")
    return tuple(langs), skipped


# -- reading and scoring --------------------------------------------------------------------


def _prepared(path: Path) -> tuple[Any, Any]:
    """The image flattened onto white, grayscale, contrast stretched: sized for OCR, and
    at its own size (None when that is the same)."""
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        img: Image.Image = opened.convert("RGBA") if (
            opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info) else \
            opened.convert("RGB")
    if img.mode == "RGBA":  # transparent pixels read as white paper, not black
        flat = Image.new("RGBA", img.size, (255, 255, 255, 255))
        flat.alpha_composite(img)
        img = flat.convert("RGB")
    gray = ImageOps.autocontrast(ImageOps.grayscale(img))
    short, long = min(gray.size), max(gray.size)
    scale = 1.0
    if short < _SHORT_SIDE_MIN:
        scale = min(_MAX_UPSCALE, _SHORT_SIDE_MIN / short)
    if long * scale > _LONG_SIDE_MAX:
        scale = _LONG_SIDE_MAX / long
    if scale == 1.0:
        return gray, None
    size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
    return gray.resize(size, Image.Resampling.LANCZOS), gray


def _readings(path: Path, languages: Sequence[str]) -> Iterator[tuple[Any, Sequence[str]]]:
    """What to read, in order, until every line reads perfectly: the image sized for OCR;
    inverted (light text on dark panels); with CJK copy, with the CJK data alone (mixed
    with `eng`, Tesseract tends to read big Han characters as Latin letters); at the
    image's own size (upscaling that helps small text can break up big glyphs)."""
    from PIL import ImageOps

    sized, own = _prepared(path)
    yield sized, languages
    yield ImageOps.invert(sized), languages
    cjk = [lang for lang in languages if lang != "eng"]
    if cjk:
        yield sized, cjk
    if own is not None:
        yield own, cjk or languages


def reading_orders(words: Sequence[OcrWord]) -> list[list[str]]:
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
    orders: list[list[str]] = []
    seen: set[tuple[int, ...]] = set()
    for order in (engine_order, by_top, by_column):
        if tuple(order) not in seen:
            seen.add(tuple(order))
            orders.append([w.text for k in order for w in lines[k]])
    return orders


def read_image(engine: OcrEngine, path: Path, lines: Sequence[str],
               languages: Sequence[str]) -> list[LineResult]:
    """OCR `path` and score each line, keeping each line's best over the readings; stops
    once every line reads perfectly."""
    best = [LineResult(line, "", 0.0) for line in lines]
    for image, langs in _readings(path, languages):
        for order in reading_orders(engine.read(image, langs)):
            words = Words.of(order)
            for i, line in enumerate(lines):
                if best[i].score < 1.0:
                    found = match_line(line, words)
                    if found.score > best[i].score:
                        best[i] = LineResult(line, found.read, found.score)
        if all(result.score >= 1.0 for result in best):
            break
    return best


class TextChecker:
    """Checks images with one engine, caching each result in the store by image."""

    def __init__(self, engine: OcrEngine, store: Store) -> None:
        self.engine = engine
        self.results = store.text_results

    def _digest(self, sha256: str, lines: Sequence[str], languages: Sequence[str]) -> str:
        return hashlib.sha256(canonical_json({
            "v": CHECK_VERSION, "image": sha256, "lines": list(lines),
            "languages": list(languages), "engine": self.engine.identity(),
        }).encode()).hexdigest()

    def cached(self, sha256: str, lines: Sequence[str]) -> TextResult | None:
        """The cached result for this image and text, or None (never calls the engine)."""
        languages, _ = plan_languages(lines, self.engine.languages())
        data = self.results.get(self._digest(sha256, lines, languages))
        try:
            return TextResult.from_json(data) if data is not None else None
        except (ValueError, KeyError, TypeError):
            return None

    def check(self, path: Path, sha256: str, lines: Sequence[str]) -> TextResult:
        """Check the image at `path` (whose bytes hash to `sha256`) against `lines`."""
        found = self.cached(sha256, lines)
        if found is not None:
            return found
        languages, skipped = plan_languages(lines, self.engine.languages())
        scored = [line for line in lines if line not in skipped]
        try:
            results = read_image(self.engine, path, scored, languages) if scored else []
        except OcrFailed as exc:  # reported for this image, never cached
            return TextResult((), (), self.engine.identity(), languages, error=str(exc))
        except (OSError, ValueError, SyntaxError) as exc:
            # A damaged output file fails its own check only, not the whole command.
            return TextResult((), (), self.engine.identity(), languages,
                              error=f"cannot read the image: {exc}")
        result = TextResult(tuple(results), tuple(skipped.items()), self.engine.identity(),
                            languages)
        self.remember(sha256, lines, result)
        return result

    def remember(self, sha256: str, lines: Sequence[str], result: TextResult) -> None:
        """File `result` under another image hash too: an output holds the cached image's
        pixels with provenance added, so its bytes (and hash) differ, not its text."""
        if result.error is not None:
            return  # a failed read is never cached
        languages, _ = plan_languages(lines, self.engine.languages())
        digest = self._digest(sha256, lines, languages)
        if self.results.get(digest) is None:
            # `image` names the image the result is about, for `cache gc`.
            self.results.put(digest, {**result.to_json(), "image": sha256})


__all__ = ["AMBER", "CHECK_VERSION", "DEFAULT_MIN_SCORE", "ERROR", "GREEN", "GREEN_AT",
           "LineResult", "NONE", "RED", "TextChecker", "TextResult", "expectations",
           "expected_lines", "plan_languages", "read_image", "reading_orders"]
