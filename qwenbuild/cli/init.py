"""`qwenbuild init [DIR]`: scaffold a brand asset repository that builds at once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_OK, Parser, paint, print_json

NAME = "init"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents, help="scaffold a brand asset repository that builds at once",
        description="Write a new brand asset repository: templates/, an example campaign "
                    "(projects/example/campaign.toml, preview provider), the campaign schema, "
                    "a README, .gitignore and .gitattributes. Refuses to overwrite any file "
                    "unless --force.")
    p.add_argument("folder", metavar="DIR", nargs="?", default=".",
                   help="where to create it (default: the current folder)")
    p.add_argument("--force", action="store_true",
                   help="overwrite the scaffold's files where they exist")
    return p


def run(args: argparse.Namespace) -> int:
    from ..scaffold import EXAMPLE_CAMPAIGN, init

    result = init(Path(args.folder), force=args.force)
    if args.json:
        print_json({"folder": args.folder, "files": list(result.files)})
        return EXIT_OK
    if not args.quiet:
        for rel in result.files:
            print(f"{paint('created', '32', sys.stdout):>7}  {_join(args.folder, rel)}")
    prefix = "" if args.folder in (".", "") else f"cd {args.folder} && "
    print(f"\nnext: {prefix}git init && qwenbuild build {EXAMPLE_CAMPAIGN}")
    return EXIT_OK


def _join(folder: str, rel: str) -> str:
    return rel if folder in (".", "") else f"{folder.rstrip('/')}/{rel}"
