"""`qwenbuild build CAMPAIGN`: generate what changed, restore what is cached."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import UsageError
from . import interrupts
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
    p.add_argument("--repair", action="store_true",
                   help="with --verify-text (implied): repair an image whose text reads "
                        "wrong with an edit request on its provider before trying new seeds "
                        "(paid like a generation)")
    p.add_argument("--max-rerolls", type=int, default=2, metavar="N",
                   help="with --verify-text: new images to try per image, repairs and new "
                        "seeds together (default 2)")
    p.add_argument("--record", action="store_true",
                   help="with --verify-text: record the scores in manifest.json for every "
                        "image checked (by default only where the build changes the entry "
                        "anyway, so checking leaves a committed manifest as it is)")
    p.add_argument("--candidates", action="store_true",
                   help="for outputs the review file locks (approved or picked) whose inputs "
                        "changed: make the new image beside the approved one, as "
                        "<name>.candidate.<ext> (approving it promotes it)")
    p.add_argument("--unlock", action="append", default=[], metavar="ASSET",
                   help="release the review's locks of ASSET (an id or glob; repeatable): "
                        "its approved outputs are rebuilt like any other")
    return p


def unlock_patterns(args: argparse.Namespace, campaign: Any) -> tuple[str, ...]:
    """--unlock, checked against the campaign's asset ids. Raises UsageError."""
    import fnmatch

    bad = [p for p in args.unlock
           if not any(fnmatch.fnmatchcase(a.id, p) for a in campaign.assets)]
    if bad:
        raise UsageError([f"--unlock {p}: matches no asset id of {campaign.path.name}"
                          for p in bad])
    return tuple(args.unlock)


def min_score(value: float) -> float:
    """Validate --min-score. Raises UsageError."""
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--min-score must be between 0 and 1 (got {value:g})")
    return value


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
    if args.record and not args.verify_text:
        raise UsageError("--record goes with --verify-text (it records the text scores)")
    shard = shard_option(args)
    campaign = load_campaign(args.campaign)
    store = open_store(campaign.cache_dir, campaign.repo_root, args.remote)
    stream = sys.stderr if args.json else sys.stdout
    progress = Progress(campaign, quiet=args.json or args.quiet, stream=stream,
                        summary=not args.json)
    try:
        report = build(campaign, selection(args), BuildOptions(
            force=args.regenerate or args.force_alias, jobs=jobs, on_event=progress.event,
            on_plan=progress.start, on_activity=progress.activity, budget_usd=args.budget,
            verify_text=args.verify_text or args.repair, min_score=threshold,
            max_rerolls=args.max_rerolls, repair=args.repair, record_text=args.record,
            on_interrupt=interrupts.stopping, on_wait=progress.waiting, candidates=args.candidates,
            unlock=unlock_patterns(args, campaign)),
            store=store, shard=shard)
    except BaseException:
        progress.close()  # the error is printed next: the display must not stay on screen
        raise
    progress.finish(report)
    if args.verify_text and not args.json:
        print_text_results(report, threshold, quiet=args.quiet)
    if report.exports and not (args.json or args.quiet):
        for rel in report.exports:
            print(f"{paint('exported', '32', sys.stdout):>10}  "
                  f"{relative(campaign.out / rel, campaign.root)}")
    for problem in report.problems:
        error(problem)
    if args.json:
        print_json(report.to_json())
    if report.interrupted:
        from ..build import INTERRUPTED

        unfinished = [r for r in report.failed if r.error == INTERRUPTED]
        error(f"interrupted: {len(report.results) - len(unfinished)} jobs finished and are "
              f"kept, {len(unfinished)} did not finish; run the build again to resume")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if report.failed or report.problems else EXIT_OK


def print_text_results(report: Any, threshold: float, quiet: bool = False) -> None:
    """What --verify-text read: one line per image checked (only those under green with
    -q), the worst line of those that read wrong, and a count."""
    from ..contracts import JobStatus

    out = sys.stdout
    colours = {"green": "32", "amber": "33", "red": "31;1", "error": "31;1", "none": "2"}
    counts: dict[str, int] = {}
    for result in sorted(report.results, key=lambda r: r.job.output):
        check = result.text_check
        if not check:
            continue
        status = str(check.get("status", "none"))
        counts[status] = counts.get(status, 0) + 1
        if quiet and status == "green":
            continue
        score = check.get("score")
        line = (f"{paint(f'{status:>7}', colours.get(status, '0'), out)} "
                f"{'  -  ' if score is None else f'{score:.2f}'}  "
                f"{relative(report.campaign.out / result.job.output, report.campaign.root)}")
        if status not in ("green", "none") and check.get("worst_line") is not None:
            line += f"  worst: {check['worst_line']!r} read {check.get('read') or '(nothing)'!r}"
        if result.rerolls:
            line += f"  ({result.rerolls} reroll{'s' if result.rerolls != 1 else ''})"
        print(line, file=out)
    # Locked outputs (approved or picked) are never replaced, so never checked here.
    locked = [r for r in report.results if not r.text_check and (
        r.status == JobStatus.LOCKED or report.reviews.get(r.job.output) in ("approved",
                                                                              "picked"))]
    if counts or locked:
        parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none checked"
        if locked:
            parts += (f"; {len(locked)} approved or picked output"
                      f"{'s' if len(locked) != 1 else ''} not checked (the review locks "
                      "them; `qwenbuild check` reads them)")
        print(f"text: {parts} (min score {threshold:.2f})", file=out)
