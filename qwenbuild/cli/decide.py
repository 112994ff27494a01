"""What `approve`, `reject` and `pick` share: the arguments, and recording the decisions
(review/actions.py) for every output named, all checked before any is written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_OK, Parser, paint, print_json, relative

_DONE = {"approve": "approved", "reject": "rejected", "pick": "picked"}


def add_decision_parser(sub: Any, parents: list[Parser], name: str, help_text: str,
                        description: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, parents=parents, help=help_text,
                                                description=description)
    p.add_argument("outputs", nargs="+", metavar="OUTPUT",
                   help="an output image (or export rendition, or candidate) of a build")
    p.add_argument("-m", "--message", metavar="COMMENT",
                   help="a comment to add to each output's thread with the decision")
    p.add_argument("--by", metavar="NAME",
                   help="who decides (default: QWENBUILD_REVIEWER, else git config "
                        "user.name)")
    p.add_argument("--campaign", metavar="CAMPAIGN",
                   help="the campaign file (default: found from the output's folder); "
                        "OUTPUT may then be relative to its output folder")
    return p


def run_decision(args: argparse.Namespace, action: str) -> int:
    from ..errors import UsageError
    from ..review.actions import (
        ReviewTarget,
        check,
        decide,
        find_campaign,
        refresh_page,
        relative_output,
    )
    from ..review.decisions import reviewer

    if args.message is not None and not args.message.strip():
        raise UsageError("-m/--message: the comment is empty")
    fixed = ReviewTarget.of(Path(args.campaign)) if args.campaign else None
    planned = []
    for given in args.outputs:
        target = fixed or find_campaign(Path(given))
        planned.append((target, relative_output(target, given)))
    # Everything named must be decidable before anything is written.
    for target, rel in planned:
        check(target, rel, action)
    results = []
    promoted = set()
    for target, rel in planned:
        by = reviewer(target.campaign_path.parent, args.by)
        outcome = decide(target, rel, action, by, comment=args.message)
        results.append((target, outcome, by))
        if outcome.promoted_from is not None:
            promoted.add(target)
    for target in promoted:
        refresh_page(target)
    _refresh_decisions({t for t, _, _ in results})
    if args.json:
        print_json({"decisions": [{
            "output": relative(t.out / o.output, t.campaign_path.parent), "action": o.action,
            "review": o.status, "by": by, "sha256": o.sha256,
            "promoted_from": relative(t.out / o.promoted_from, t.campaign_path.parent)
            if o.promoted_from else None} for t, o, by in results]})
    elif not args.quiet:
        out = sys.stdout
        for t, o, by in results:
            # As build and plan show them: relative to the campaign's folder.
            shown = relative(t.out / o.output, t.campaign_path.parent)
            if o.promoted_from:
                print(f"{paint('promoted', '32', out):>10}  "
                      f"{relative(t.out / o.promoted_from, t.campaign_path.parent)} -> {shown}",
                      file=out)
            print(f"{paint(_DONE[action], '32', out):>10}  {shown}  (by {by})", file=out)
        if promoted:
            print("run qwenbuild build to make the export renditions of what was promoted",
                  file=out)
    return EXIT_OK


def _refresh_decisions(targets: set[Any]) -> None:
    """The page opened from the file system shows decisions from `review/decisions.js`."""
    from ..review.decisions import ReviewFile
    from ..review.page import write_decisions

    for target in targets:
        write_decisions(target.out, ReviewFile.load(target.review_path))
