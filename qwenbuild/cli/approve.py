"""`qwenbuild approve OUTPUT... [-m COMMENT]`: approve outputs, which locks them."""

from __future__ import annotations

import argparse
from typing import Any

from .common import Parser
from .decide import add_decision_parser, run_decision

NAME = "approve"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    return add_decision_parser(
        sub, parents, NAME,
        help_text="approve outputs: a build never replaces them (a candidate: promote it)",
        description="Record in the campaign's review file that these outputs are approved, "
                    "on the images they hold now. A build then never replaces them: when "
                    "their inputs change it keeps them and says they are locked and why. "
                    "Approving a candidate made by `build --candidates` promotes it: it "
                    "replaces the output it stands beside.")


def run(args: argparse.Namespace) -> int:
    return run_decision(args, NAME)
