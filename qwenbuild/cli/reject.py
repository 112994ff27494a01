"""`qwenbuild reject OUTPUT... [-m COMMENT]`: reject outputs, which releases their lock."""

from __future__ import annotations

import argparse
from typing import Any

from .common import Parser
from .decide import add_decision_parser, run_decision

NAME = "reject"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    return add_decision_parser(
        sub, parents, NAME, help_text="reject outputs (releases their lock)",
        description="Record in the campaign's review file that these outputs are rejected, "
                    "on the images they hold now. A rejected output is not locked: the next "
                    "build replaces it when its inputs change.")


def run(args: argparse.Namespace) -> int:
    return run_decision(args, NAME)
