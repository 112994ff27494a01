"""`qwenbuild plan CAMPAIGN`: what a build would do, job by job, and what it would cost."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    Parser,
    add_campaign_arguments,
    add_remote_option,
    add_shard_option,
    error,
    paint,
    print_json,
    selection,
    shard_option,
    warning,
)

NAME = "plan"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents, help="show what a build would do, job by job",
        description="Show what a build would do and why, without doing it.")
    add_campaign_arguments(p)
    p.add_argument("--check", action="store_true",
                   help="for CI: exit 1, listing what and why, when anything would be "
                        "generated, restored or rendered or an output is stale, missing or "
                        "modified; never writes anything")
    add_shard_option(p, "plan")
    add_remote_option(p)
    p.add_argument("--require-approval", action="store_true",
                   help="with --check (implied): also exit 1 when an output that ships (the "
                        "pick of its variants, else every variant) or an export rendition is "
                        "not approved in the review file on the image it holds")
    return p


def _tree(assessments: list[Any]) -> list[tuple[Any, int]]:
    """The assessments with each one's depth, every job right after the one it is made
    from (jobs whose parent is outside the selection stay at the top)."""
    children: dict[str, list[Any]] = {}
    listed = {a.job.output for a in assessments}
    roots = []
    for a in assessments:
        if a.job.parent in listed:
            children.setdefault(a.job.parent, []).append(a)
        else:
            roots.append(a)
    ordered: list[tuple[Any, int]] = []

    def walk(a: Any, depth: int) -> None:
        ordered.append((a, depth))
        for child in children.get(a.job.output, ()):
            walk(child, depth + 1)

    for a in roots:
        walk(a, 0)
    return ordered


_MARKS = {"build": ("build", "33"), "cached": ("cached", "36"), "up_to_date": ("ok", "32"),
          "render": ("render", "33"), "locked": ("locked", "36")}


def run(args: argparse.Namespace) -> int:
    from ..campaign import load_campaign
    from ..contracts import Action, locked_text
    from ..costs import usd
    from ..store import open_store
    from ..survey import survey

    shard = shard_option(args)
    if args.require_approval:
        args.check = True
    campaign = load_campaign(args.campaign)
    store = open_store(campaign.cache_dir, campaign.repo_root, args.remote)
    # --check is for CI: it must not write even the machine-local key memo.
    found = survey(campaign, selection(args), remember=not args.check, store=store,
                   shard=shard)
    pending = found.pending()
    unapproved = found.unapproved() if args.require_approval else []
    out = sys.stdout
    if not args.json and not args.check:
        for line in found.warnings():
            warning(line)
    if args.json:
        data = found.to_json()
        if args.require_approval:
            data["unapproved"] = [{"output": path, "why": why} for path, why in unapproved]
        print_json(data)
    elif args.check:
        if not args.quiet:
            for what, path, why in pending:
                print(f"{paint(what, '33', out):>10}  {path}  ({why})", file=out)
            for a in found.locked():
                print(f"{paint('locked', '36', out):>10}  {found.shown(a.job.output)}  "
                      f"({locked_text(a.reasons)}; kept as approved)", file=out)
            for path, why in unapproved:
                print(f"{paint('unapproved', '33', out):>10}  {path}  ({why})", file=out)
    elif not args.quiet:
        # Jobs made from another job's output are listed under it, indented: the tree.
        for a, depth in _tree(found.assessments):
            branch = "  " * (depth - 1) + "└─ " if depth else ""
            why = locked_text(a.reasons) if a.action == Action.LOCKED else a.reason
            print(f"{paint(*_MARKS[a.action], out):>10}  {branch}{found.shown(a.job.output)}"
                  f"  ({why})", file=out)
        for e in found.exports:
            print(f"{paint(*_MARKS[e.action], out):>10}  {found.shown(e.job.output)}  "
                  f"({e.reason.value})", file=out)
        for rel in (*found.stale, *found.stale_exports):
            print(f"{paint('stale', '35', out):>10}  {found.shown(rel)}  "
                  "(no longer in the campaign; qwenbuild clean removes it)", file=out)
    if not args.json and not args.check:
        stale = len(found.stale) + len(found.stale_exports)
        locked = found.count(Action.LOCKED)
        print(f"{len(found.assessments)} jobs: {found.count(Action.GENERATE)} to generate, "
              f"{found.count(Action.RESTORE)} from cache, {found.count(Action.KEEP)} up to "
              "date" + (f", {locked} locked (approved; kept)" if locked else "")
              + (f", {stale} stale" if stale else ""), file=out)
        cost = f"estimated cost {usd(found.estimate.usd)}"
        if campaign.budget is not None:
            over = found.estimate.usd > campaign.budget
            cost += (f" (budget {usd(campaign.budget)}"
                     + ("; over it: build will refuse)" if over else ")"))
        print(cost, file=out)
    if args.check:
        failed = False
        if pending:
            error(f"{campaign.shown}: {len(pending)} outputs do not match the campaign; run "
                  f"qwenbuild build (and qwenbuild clean for stale ones), then commit")
            failed = True
        if unapproved:
            error(f"{campaign.shown}: {len(unapproved)} outputs or exports that ship are not "
                  "approved; review them (qwenbuild review, or qwenbuild approve|pick), then "
                  "commit the review file")
            failed = True
        if failed:
            return EXIT_FAILED
        if not args.json and not args.quiet:
            print(f"{campaign.shown}: all {len(found.assessments)} outputs and "
                  f"{len(found.exports)} exports up to date"
                  + (", and everything that ships approved" if args.require_approval else ""),
                  file=out)
    return EXIT_OK
