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
        description="OCR every built output, score each expected line (expect_text, else "
                    "the copy's headline and subtitle), record the scores in manifest.json "
                    "and exit 1 when an image scores under --min-score.")
    add_campaign_arguments(p)
    # Declared here, not by importing the text check: `qwenbuild --help` must start quickly.
    p.add_argument("--min-score", type=float, default=0.8, metavar="S",
                   help="an image whose worst line scores under S fails (0..1, default 0.8); "
                        "green from max(S, 0.95)")
    add_jobs_option(p, "images read")
    p.add_argument("--record", action="store_true",
                   help="write the scores into manifest.json (by default they are kept in "
                        "the check cache and shown on the review page, and the manifest is "
                        "left as it is)")
    return p


def run(args: argparse.Namespace) -> int:
    from ..campaign import load_campaign
    from ..textcheck.check import check_campaign

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
    return EXIT_FAILED if report.failed else EXIT_OK


def print_report(report: CheckReport, out: TextIO, quiet: bool = False) -> None:
    """One line per image, the skipped lines under it, and a summary."""
    from ..textcheck import AMBER, ERROR, GREEN, NONE, RED

    colours = {GREEN: "32", AMBER: "33", RED: "31;1", ERROR: "31;1", NONE: "2",
               "missing": "35"}
    colour = colour_enabled(out)

    def paint(text: str, status: str) -> str:
        return f"\033[{colours[status]}m{text}\033[0m" if colour else text

    for item in report.images:
        status = report.status(item)
        if quiet and status == GREEN:
            continue
        mark = paint(f"{status:>7}", status)
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
        if worst is not None and status != GREEN:
            line += f"  worst: {worst.expected!r} read {worst.read or '(nothing)'!r}"
        if status == NONE:
            line += "  (no expected text)" if not result.skipped else ""
        if item.note:
            line += f"  ({item.note})"
        print(line, file=out)
        for expected, reason in result.skipped:
            print(f"{'':>14}skipped {expected!r}: {reason}", file=out)
    read = sum(1 for i in report.images if i.result is not None and not i.result.cached)
    parts = [f"{report.count(s)} {s}" for s in (GREEN, AMBER, RED) if report.count(s)]
    parts += [f"{report.count(s)} {w}" for s, w in ((NONE, "with nothing to check"),
                                                   (ERROR, "unreadable"),
                                                   ("missing", "not built"))
              if report.count(s)]
    checked = sum(1 for i in report.images if i.result is not None)
    print(f"{len(report.images)} images: {', '.join(parts) or 'none checked'} "
          f"(min score {report.min_score:.2f}); {read} read, {checked - read} from the "
          f"check cache" + ("; scores saved in manifest.json" if report.saved else
                            "" if report.recorded else
                            "; manifest.json left as it is (--record writes the scores)"),
          file=out)
