"""`qwenbuild check CAMPAIGN`: read the text of every built output back and score it.

Checks each output of the campaign's current plan that the manifest lists, prints a line
per image (green, red or unreadable; amber with a --min-score under 1; the worst line and
what was read there), writes the results into the manifest entries (`text_check`) under
the build's output lock, and exits 1 when an image is red (a line reads wrong) or cannot
be opened, else 3 when an image is unreadable (EXIT_UNREADABLE), else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import InputError
from . import (
    AMBER,
    DEFAULT_MIN_SCORE,
    ERROR,
    GREEN,
    NONE,
    RED,
    UNREADABLE_STATUS,
    TextChecker,
    TextResult,
)
from . import engines as _engines

if TYPE_CHECKING:
    from ..campaign import Campaign
    from ..plan import Job, Plan, Selection

#: Keys of a manifest entry's `text_check` that `build --verify-text` owns: a later
#: `check` of the same image keeps them.
_REROLL_KEYS = ("attempts", "chosen")
#: Exit code of `check` when no image is red but some are unreadable.
EXIT_UNREADABLE = 3


@dataclass
class ImageCheck:
    """One output: its expected lines and what the check found (or why it was not read)."""

    job: Job
    lines: tuple[str, ...]
    result: TextResult | None = None
    sha256: str | None = None
    #: Why the output was not checked ("not built yet"), or a remark about it.
    note: str | None = None


@dataclass
class CheckReport:
    campaign: Campaign
    min_score: float
    images: list[ImageCheck] = field(default_factory=list)
    #: Whether the manifest was written (False when nothing changed in it).
    saved: bool = False
    #: Why the scores could not be written (another build holds the output folder).
    unsaved: str | None = None

    def status(self, item: ImageCheck) -> str:
        return "missing" if item.result is None else item.result.status(self.min_score)

    def count(self, status: str) -> int:
        return sum(1 for item in self.images if self.status(item) == status)

    @property
    def failed(self) -> bool:
        """Whether any image reads wrong (red) or could not be opened."""
        return any(self.status(item) in (RED, ERROR) for item in self.images)

    @property
    def unreadable(self) -> bool:
        """Whether any image could not be read with confidence."""
        return any(self.status(item) == UNREADABLE_STATUS for item in self.images)

    def output(self, item: ImageCheck) -> str:
        path = self.campaign.out / item.job.output
        return os.path.relpath(path, self.campaign.root).replace(os.sep, "/")

    def to_json(self) -> dict[str, Any]:
        images = []
        for item in self.images:
            data: dict[str, Any] = {
                "output": self.output(item), "asset": item.job.asset,
                "aspect": item.job.aspect, "provider": item.job.provider,
                "seed": item.job.seed, "status": self.status(item), "note": item.note,
            }
            if item.result is not None:
                data.update(item.result.to_manifest(self.min_score))
                data["cached"] = item.result.cached
            images.append(data)
        return {
            "min_score": self.min_score,
            **{s: self.count(s) for s in (GREEN, AMBER, RED, UNREADABLE_STATUS, NONE, ERROR,
                                          "missing")},
            "read": sum(1 for i in self.images if i.result is not None and not i.result.cached),
            "cached": sum(1 for i in self.images if i.result is not None and i.result.cached),
            "images": images,
        }


def check_campaign(campaign: Campaign, selection: Selection | None = None,
                   min_score: float = DEFAULT_MIN_SCORE, engine: _engines.OcrEngine | None = None,
                   workers: int | None = None, save: bool = True) -> CheckReport:
    """Check the built outputs of a campaign. Raises InputError (exit 2) when nothing is
    built yet, a template of expect_text is broken or no OCR engine is installed."""
    from ..fsutil import file_sha256
    from ..manifest import MANIFEST_NAME, Manifest
    from ..plan import Selection, plan
    from . import expectations

    the_plan = plan(campaign, selection or Selection())
    manifest_file = campaign.out / MANIFEST_NAME
    out_shown = os.path.relpath(campaign.out, campaign.root).replace(os.sep, "/")
    if not manifest_file.is_file():
        raise InputError(f"{campaign.shown}: nothing to check: {out_shown}/{MANIFEST_NAME} "
                         f"does not exist yet; run `qwenbuild build {campaign.shown}` first")
    manifest = Manifest.load(campaign.out, campaign.name)
    expected = expectations(the_plan)
    report = CheckReport(campaign, min_score)
    todo: list[tuple[ImageCheck, Path]] = []
    for job in the_plan.jobs:
        item = ImageCheck(job, expected[job.output])
        report.images.append(item)
        entry = manifest.entries.get(job.output)
        file = campaign.out / job.output
        if entry is None or not file.is_file():
            item.note = "not built yet" if entry is None else "output file missing"
            continue
        item.sha256 = file_sha256(file)
        if item.sha256 != entry.get("sha256"):
            item.note = "changed since the build: checked as it is, not recorded"
        todo.append((item, file))
    if not todo:
        raise InputError(f"{campaign.shown}: nothing to check: no output of the selection is "
                         f"built yet; run `qwenbuild build {campaign.shown}` first")
    checker = TextChecker(engine or _engines.default_engine(), campaign.cache_dir)

    def run(pair: tuple[ImageCheck, Path]) -> None:
        item, file = pair
        assert item.sha256 is not None
        item.result = checker.check(file, item.sha256, item.lines)

    # One Tesseract process per image at a time, several images at once.
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 2)) as pool:
        list(pool.map(run, todo))
    if save:
        from ..errors import LockError

        try:
            report.saved = _save(the_plan, report)
        except LockError as exc:  # the scores are still reported, and cached
            report.unsaved = str(exc)
    return report


def _save(the_plan: Plan, report: CheckReport) -> bool:
    """Write each result into its manifest entry and the review page, under the output lock
    (a build running meanwhile would otherwise overwrite the manifest or be overwritten)."""
    from ..build import OutputLock
    from ..cache import Cache
    from ..manifest import Manifest
    from ..review import refresh_review

    campaign = the_plan.campaign
    with OutputLock(campaign.cache_dir, campaign.out):
        manifest = Manifest.load(campaign.out, campaign.name)
        for item in report.images:
            entry = manifest.entries.get(item.job.output)
            if item.result is None or entry is None or entry.get("sha256") != item.sha256:
                continue  # only a result about the very image the entry describes
            old = entry.get("text_check") or {}
            text_check = item.result.to_manifest(report.min_score)
            text_check.update({k: old[k] for k in _REROLL_KEYS if k in old})
            manifest.set(item.job.output, {**entry, "text_check": text_check})
        saved = manifest.save()
        if saved:
            refresh_review(the_plan, manifest, Cache(campaign.cache_dir))
        return saved


# -- the command ----------------------------------------------------------------------------


def min_score_arg(value: float) -> float:
    """Validate --min-score. Raises UsageError."""
    from ..errors import UsageError

    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--min-score must be between 0 and 1 (got {value:g})")
    return value


def command(args: argparse.Namespace, selection: Selection) -> int:
    """Run `qwenbuild check`; returns the exit code: 1 when an image is red or cannot be
    opened, else 3 when one is unreadable, else 0."""
    from ..campaign import load_campaign

    min_score = min_score_arg(args.min_score)
    campaign = load_campaign(args.campaign)
    report = check_campaign(campaign, selection, min_score)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print_report(report, sys.stdout)
    if report.unsaved:
        print(f"WARNING: scores not written to manifest.json: {report.unsaved}",
              file=sys.stderr)
    return 1 if report.failed else EXIT_UNREADABLE if report.unreadable else 0


_COLOURS = {GREEN: "32", AMBER: "33", RED: "31;1", UNREADABLE_STATUS: "36", ERROR: "31;1",
            NONE: "2", "missing": "35"}


def print_report(report: CheckReport, out: TextIO) -> None:
    """One line per image, the skipped lines under it, and a summary."""
    from ..progress import colour_enabled

    colour = colour_enabled(out)

    def paint(text: str, status: str) -> str:
        return f"\033[{_COLOURS[status]}m{text}\033[0m" if colour else text

    for item in report.images:
        status = report.status(item)
        mark = paint(f"{status:>10}", status)
        result = item.result
        where = report.output(item)
        if result is None:
            print(f"{mark}       {where}  ({item.note}; run qwenbuild build)", file=out)
            continue
        if result.error is not None:
            print(f"{mark}       {where}  {result.error}", file=out)
            continue
        score = "  -  " if result.score is None else f"{result.score:.2f}"
        line = f"{mark} {score}  {where}"
        worst = result.worst
        if result.unreadable is not None:
            line += f"  {result.unreadable}"
        elif worst is not None and status != GREEN:
            line += f"  worst: {worst.expected!r} read {worst.read or '(nothing)'!r}"
            if worst.verdict != "wrong":
                line += f" ({worst.verdict})"
        if status == NONE:
            line += "  (no expected text)" if not result.skipped else ""
        if item.note:
            line += f"  ({item.note})"
        print(line, file=out)
        for expected, reason in result.skipped:
            print(f"{'':>17}skipped {expected!r}: {reason}", file=out)
    read = sum(1 for i in report.images if i.result is not None and not i.result.cached)
    parts = [f"{report.count(s)} {s}" for s in (GREEN, AMBER, RED, UNREADABLE_STATUS)
             if report.count(s)]
    parts += [f"{report.count(s)} {w}" for s, w in ((NONE, "with nothing to check"),
                                                   (ERROR, "could not be opened"),
                                                   ("missing", "not built"))
              if report.count(s)]
    checked = sum(1 for i in report.images if i.result is not None)
    engines = next((i.result.engine for i in report.images if i.result is not None), "")
    print(f"{len(report.images)} images: {', '.join(parts) or 'none checked'} "
          f"(min score {report.min_score:.2f}); {read} read, {checked - read} from the "
          f"check cache" + ("; scores saved in manifest.json" if report.saved else ""),
          file=out)
    if engines:
        alone = "" if " + " in engines else " (one engine only; RapidOCR: " \
            "pip install 'qwenbuild[ocr]')" if engines.startswith("tesseract") else \
            " (one engine only)"
        print(f"engines: {engines}{alone}", file=out)
