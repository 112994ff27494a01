"""`qwenbuild check CAMPAIGN`: read the text in each output back and score it (OCR)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, TextIO

from .build import min_score
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    Parser,
    add_campaign_arguments,
    add_jobs_option,
    colour_enabled,
    jobs_option,
    print_json,
    selection,
    warning,
)

if TYPE_CHECKING:
    from ..textcheck.check import CheckReport

NAME = "check"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents,
        help="read the text in each output back and score it against the copy",
        description="OCR every built output (RapidOCR and Tesseract), check each expected "
                    "line (expect_text, else the copy's headline and subtitle), keep the "
                    "verdicts in the check cache and on the review page (--record: in "
                    "manifest.json too); exit 1 when an image reads wrong (red) or "
                    "cannot be opened, 3 when none does but one is unreadable, else 0.")
    add_campaign_arguments(p)
    # Declared here, not by importing the text check: `qwenbuild --help` must start quickly.
    p.add_argument("--min-score", type=float, default=1.0, metavar="S",
                   help="a line read wrong passes (amber) when its score, 1 - edits/letters, "
                        "is at least S (0..1, default 1: one wrong letter is red)")
    add_jobs_option(p, "images read")
    p.add_argument("--record", action="store_true",
                   help="write the scores into manifest.json (by default they are kept in "
                        "the check cache and shown on the review page, and the manifest is "
                        "left as it is)")
    return p


def run(args: argparse.Namespace) -> int:
    from ..campaign import load_campaign
    from ..textcheck.check import EXIT_UNREADABLE, check_campaign

    threshold = min_score(args.min_score)
    workers = jobs_option(args)
    campaign = load_campaign(args.campaign)
    report = check_campaign(campaign, selection(args), threshold, workers=workers,
                            record=args.record)
    if args.json:
        print_json(report.to_json())
    else:
        print_report(report, sys.stdout, quiet=args.quiet)
    if report.unsaved:
        warning(f"scores not written to manifest.json or the review page: {report.unsaved}")
    if report.failed:
        return EXIT_FAILED
    return EXIT_UNREADABLE if report.unreadable else EXIT_OK


def print_report(report: CheckReport, out: TextIO, quiet: bool = False) -> None:
    """One line per image, the skipped lines under it, and a summary."""
    from ..textcheck import AMBER, ERROR, GREEN, NONE, RED, UNREADABLE_STATUS

    colours = {GREEN: "32", AMBER: "33", RED: "31;1", UNREADABLE_STATUS: "36", ERROR: "31;1",
               NONE: "2", "missing": "35"}
    colour = colour_enabled(out)

    def paint(text: str, status: str) -> str:
        return f"\033[{colours[status]}m{text}\033[0m" if colour else text

    for item in report.images:
        status = report.status(item)
        if quiet and status == GREEN:
            continue
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
          f"check cache" + ("; scores saved in manifest.json" if report.saved else
                            "" if report.recorded else
                            "; manifest.json left as it is (--record writes the scores)"),
          file=out)
    if engines:
        alone = "" if " + " in engines else " (one engine only; RapidOCR: " \
            "pip install 'qwenbuild[ocr]')" if engines.startswith("tesseract") else \
            " (one engine only)"
        print(f"engines: {engines}{alone}", file=out)
