"""`qwenbuild cache gc [ROOT]`: remove what the cache holds that no manifest needs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import Parser
from .removal import add_dry_run, print_removal

NAME = "cache"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents, help="manage the image cache",
        description="Manage the image cache.")
    commands = p.add_subparsers(dest="cache_command", metavar="COMMAND",
                                parser_class=Parser)
    commands.required = True
    gc = commands.add_parser(
        "gc", parents=parents, help="remove cache entries no manifest references",
        description="Remove what the cache holds that no manifest.json in the repository "
                    "references (images, their records, text-check results, reroll "
                    "choices), stray temporary files, and machine-local records of output "
                    "folders and campaigns that no longer exist; report the bytes freed.")
    gc.add_argument("root", metavar="ROOT", nargs="?",
                    help="folder searched for manifests (default: the git repository holding "
                         "the current folder, else the nearest folder with a .qwenbuild/ "
                         "cache)")
    history = gc.add_mutually_exclusive_group()
    history.add_argument("--keep-commits", type=int, default=20, metavar="N",
                         help="in a git repository, also keep what the manifests of the last "
                              "N commits of HEAD use (default 20)")
    history.add_argument("--all-history", action="store_true",
                         help="keep what the manifests of every commit of every branch and "
                              "tag use")
    history.add_argument("--no-history", action="store_true",
                         help="keep only what the working tree's manifests use")
    add_dry_run(gc)
    return p


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..maintenance import History, cache_gc, default_root

    if args.keep_commits < 0:
        raise UsageError("--keep-commits must be 0 or more")
    history = History(commits=0 if args.no_history else args.keep_commits,
                      all=args.all_history)
    root = Path(args.root) if args.root else default_root()
    return print_removal(cache_gc(root, dry_run=args.dry_run, history=history), args,
                         "cache files")
