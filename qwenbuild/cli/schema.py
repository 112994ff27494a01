"""`qwenbuild schema`: print the JSON Schema of campaign files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import EXIT_OK, Parser

NAME = "schema"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents, help="print the JSON Schema of campaign files",
        description="Print the JSON Schema of campaign files, for editors with TOML schema "
                    "support (a first line `#:schema path/to/campaign.schema.json`). The "
                    "schema is JSON already: --json changes nothing.")
    return p


def run(args: argparse.Namespace) -> int:
    from ..schema import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK
