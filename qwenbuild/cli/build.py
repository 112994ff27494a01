"""`qwenbuild build CAMPAIGN`: generate what changed, restore what is cached."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TextIO

from ..errors import UsageError
from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Parser,
    add_campaign_arguments,
    add_jobs_option,
    add_remote_option,
    add_shard_option,
    error,
    jobs_option,
    paint,
    print_json,
    relative,
    selection,
    shard_option,
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
    add_shard_option(p, "build")
    add_remote_option(p)
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
    p.add_argument("--max-rerolls", type=int, default=2, metavar="N",
                   help="with --verify-text: new seeds to try per image (default 2)")
    return p


def min_score(value: float) -> float:
    """Validate --min-score. Raises UsageError."""
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--min-score must be between 0 and 1 (got {value:g})")
    return value


def waiting_printer(stream: TextIO) -> Callable[[Any, str, float | None], None]:
    """A line each time a job waits for the image another build is paying for (the
    executor calls it when a wait starts, then every 15 s)."""

    def show(job: Any, holder: str, left: float | None) -> None:
        until = (f"; its lease ends in {max(0, round(left))} s, then this build takes over"
                 if left is not None else "")
        print(f"{paint('waiting', '36', stream):>10}  {job.label}  (another build is making "
              f"it: {holder or 'unknown'}{until})", file=stream, flush=True)

    return show


def run(args: argparse.Namespace) -> int:
    from ..build.executor import BuildOptions, build
    from ..campaign import load_campaign
    from ..store import open_store
    from .progress import Progress

    jobs = jobs_option(args)
    if args.budget is not None and not 0 <= args.budget < float("inf"):
        raise UsageError("--budget must be a number of USD, 0 or more")
    if args.max_rerolls < 0:
        raise UsageError("--max-rerolls must be 0 or more")
    if args.force_alias:
        warning("--force is now --regenerate (it pays for every selected image again)")
    threshold = min_score(args.min_score)
    shard = shard_option(args)
    campaign = load_campaign(args.campaign)
    store = open_store(campaign.cache_dir, campaign.repo_root, args.remote)
    stream = sys.stderr if args.json else sys.stdout
    progress = Progress(campaign, quiet=args.json or args.quiet, stream=stream,
                        summary=not args.json)
    report = build(campaign, selection(args), BuildOptions(
        force=args.regenerate or args.force_alias, jobs=jobs, on_event=progress.event,
        on_plan=progress.start, budget_usd=args.budget, verify_text=args.verify_text,
        min_score=threshold, max_rerolls=args.max_rerolls,
        on_wait=None if args.quiet else waiting_printer(stream)),
        store=store, shard=shard)
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
