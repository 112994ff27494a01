"""`qwenbuild pick OUTPUT... [-m COMMENT]`: the winning variant of an asset."""

from __future__ import annotations

import argparse
from typing import Any

from .common import Parser
from .decide import add_decision_parser, run_decision

NAME = "pick"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    return add_decision_parser(
        sub, parents, NAME,
        help_text="pick the winning variant of an asset (per aspect and provider)",
        description="Record in the campaign's review file that this variant is the pick "
                    "among the seeds of its asset, aspect and provider (another variant's "
                    "pick is taken away). A pick is locked like an approval, and the export "
                    "renditions are made from the pick alone, named after the asset.")


def run(args: argparse.Namespace) -> int:
    return run_decision(args, NAME)
