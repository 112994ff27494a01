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
                   help="where files exist: add the missing ones and update those init "
                        "wrote that nobody changed since; files you changed are kept and "
                        "listed")
    p.add_argument("--overwrite", action="store_true",
                   help="with --force: replace the files you changed too (your changes "
                        "are lost)")
    return p


_COLOURS = {"created": "32", "updated": "32", "unchanged": "2", "kept": "33",
            "overwritten": "31"}


def run(args: argparse.Namespace) -> int:
    from ..scaffold import EXAMPLE_CAMPAIGN, init

    result = init(Path(args.folder), force=args.force, overwrite=args.overwrite)
    if args.json:
        print_json({"folder": args.folder, "files": list(result.files),
                    "actions": result.actions})
        return EXIT_OK
    for rel, action in result.actions.items():
        if args.quiet and action not in ("kept", "overwritten"):
            continue
        line = f"{paint(action, _COLOURS[action], sys.stdout):>9}  {_join(args.folder, rel)}"
        if action == "kept":
            line += "  (changed since init wrote it, or not init's; --force --overwrite " \
                    "replaces it)"
        elif action == "overwritten":
            line += "  (your changes to it are gone)"
        print(line)
    prefix = "" if args.folder in (".", "") else f"cd {args.folder} && "
    print(f"\nnext: {prefix}git init && qwenbuild build {EXAMPLE_CAMPAIGN}")
    return EXIT_OK


def _join(folder: str, rel: str) -> str:
    return rel if folder in (".", "") else f"{folder.rstrip('/')}/{rel}"
