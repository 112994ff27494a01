"""`qwenbuild build CAMPAIGN`: generate what changed, restore what is cached."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import UsageError
from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Parser,
    add_campaign_arguments,
    add_jobs_option,
    error,
    jobs_option,
    paint,
    print_json,
    relative,
    selection,
    warning,
)

NAME = "build"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents, help="generate what changed, restore what is cached",
        description="Build a campaign: generate only what changed; restore from the cache "
                    "what was paid for before.")
    add_campaign_arguments(p)
    p.add_argument("--regenerate", action="store_true",
                   help="generate every selected job again, even when cached (pays again)")
    p.add_argument("--force", action="store_true", dest="force_alias",
                   help=argparse.SUPPRESS)  # the old name of --regenerate
    add_jobs_option(p, "jobs in flight across providers")
    p.add_argument("--budget", type=float, metavar="USD",
                   help="stop before any request when the estimated cost is over USD "
                        "(overrides the campaign's budget)")
    p.add_argument("--verify-text", action="store_true",
                   help="read the text of each image back (OCR) and generate an image whose "
                        "text reads wrong (red) again, with a new seed")
    p.add_argument("--min-score", type=float, default=1.0, metavar="S",
                   help="with --verify-text: a line read wrong passes (amber) when its "
                        "score, 1 - edits/letters, is at least S (0..1, default 1: no wrong "
                        "letter passes)")
    p.add_argument("--repair", action="store_true",
                   help="with --verify-text (implied): repair an image whose text reads "
                        "wrong with an edit request on its provider before trying new seeds "
                        "(paid like a generation)")
    p.add_argument("--max-rerolls", type=int, default=2, metavar="N",
                   help="with --verify-text: new images to try per image, repairs and new "
                        "seeds together (default 2)")
    return p


def min_score(value: float) -> float:
    """Validate --min-score. Raises UsageError."""
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--min-score must be between 0 and 1 (got {value:g})")
    return value


def run(args: argparse.Namespace) -> int:
    from ..build.executor import BuildOptions, build
    from ..campaign import load_campaign
    from .progress import Progress

    jobs = jobs_option(args)
    if args.budget is not None and not 0 <= args.budget < float("inf"):
        raise UsageError("--budget must be a number of USD, 0 or more")
    if args.max_rerolls < 0:
        raise UsageError("--max-rerolls must be 0 or more")
    if args.force_alias:
        warning("--force is now --regenerate (it pays for every selected image again)")
    threshold = min_score(args.min_score)
    campaign = load_campaign(args.campaign)
    progress = Progress(campaign, quiet=args.json or args.quiet,
                        stream=sys.stderr if args.json else sys.stdout, summary=not args.json)
    report = build(campaign, selection(args), BuildOptions(
        force=args.regenerate or args.force_alias, jobs=jobs, on_event=progress.event,
        on_plan=progress.start, budget_usd=args.budget,
        verify_text=args.verify_text or args.repair, min_score=threshold,
        max_rerolls=args.max_rerolls, repair=args.repair))
    progress.finish(report)
    if report.exports and not (args.json or args.quiet):
        for rel in report.exports:
            print(f"{paint('exported', '32', sys.stdout):>10}  "
                  f"{relative(campaign.out / rel, campaign.root)}")
    if args.json:
        print_json(report.to_json())
    if report.interrupted:
        from ..build import INTERRUPTED

        unfinished = [r for r in report.failed if r.error == INTERRUPTED]
        error(f"interrupted: {len(report.results) - len(unfinished)} jobs finished and are "
              f"kept, {len(unfinished)} did not finish; run the build again to resume")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if report.failed else EXIT_OK
