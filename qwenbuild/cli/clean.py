"""`qwenbuild clean CAMPAIGN`: remove outputs the campaign no longer makes."""

from __future__ import annotations

import argparse
from typing import Any

from .common import Parser, add_campaign_arguments
from .removal import add_dry_run, print_removal

NAME = "clean"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents, help="remove outputs the campaign no longer makes",
        description="Remove the outputs and export renditions that the manifest lists but "
                    "the campaign no longer makes (only files qwenbuild wrote, still as it "
                    "wrote them), their manifest entries, and folders left empty.")
    add_campaign_arguments(p, selection=False)
    add_dry_run(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..campaign import load_campaign
    from ..maintenance import clean

    result = clean(load_campaign(args.campaign), dry_run=args.dry_run)
    return print_removal(result, args, "outputs")
