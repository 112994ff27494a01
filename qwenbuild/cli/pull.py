"""`qwenbuild pull CAMPAIGN`: restore the outputs the manifest lists, paying nothing."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Parser,
    add_campaign_arguments,
    add_jobs_option,
    add_remote_option,
    error,
    jobs_option,
    print_json,
    relative,
)

NAME = "pull"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents,
        help="restore the outputs the manifest lists from the caches, paying nothing",
        description="Restore every output listed in the campaign's manifest.json from the "
                    "local cache or the team cache (a fresh clone gets the committed images "
                    "without Git LFS). Never calls a provider; says what could not be "
                    "restored and why.")
    add_campaign_arguments(p, selection=False)
    add_jobs_option(p, "restores")
    add_remote_option(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..campaign import load_campaign
    from ..pull import pull
    from ..store import open_store
    from .progress import Progress

    jobs = jobs_option(args)
    campaign = load_campaign(args.campaign)
    store = open_store(campaign.cache_dir, campaign.repo_root, args.remote)
    stream = sys.stderr if args.json else sys.stdout
    progress = Progress(campaign, quiet=args.json or args.quiet, stream=stream, summary=False)
    report = pull(campaign, store, jobs=jobs, on_event=progress.event)
    if not report.listed:
        if args.json:
            print_json(report.to_json())
        error(f"{relative(campaign.out / 'manifest.json', campaign.root)} lists no outputs: "
              "nothing to pull (check out the manifest, or run qwenbuild build)")
        return EXIT_FAILED
    if args.json:
        print_json(report.to_json())
    elif not args.quiet:
        print(f"{len(report.restored)} restored, {len(report.up_to_date)} already up to "
              f"date, {len(report.missing)} could not be restored", file=stream)
    for rel, why in report.missing:
        error(f"not restored: {relative(campaign.out / rel, campaign.root)}: {why}")
    if report.interrupted:
        error("interrupted; run qwenbuild pull again to finish")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if report.missing else EXIT_OK
