"""`qwenbuild cache gc [ROOT]`: remove what the cache holds that no manifest needs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import EXIT_FAILED, EXIT_OK, Parser, print_json, warning
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
    push = commands.add_parser(
        "push", parents=parents, help="upload to the team cache the images it lacks",
        description="Upload to the team cache ([cache] remote in qwenbuild.toml, or "
                    "QWENBUILD_REMOTE_CACHE) every image of the local cache that a manifest "
                    "of the repository uses and the team cache does not hold yet: images "
                    "paid for before the team cache was set up, or while it was down. An "
                    "image that no longer matches its recorded sha256 is never uploaded.")
    push.add_argument("root", metavar="ROOT", nargs="?",
                      help="folder searched for manifests (default: the repository holding "
                           "the current folder)")
    add_dry_run(push)
    return p


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..maintenance import History, cache_gc, cache_push, default_root

    root = Path(args.root) if args.root else default_root()
    if args.cache_command == "push":
        result = cache_push(root, dry_run=args.dry_run)
        if args.json:
            print_json(result.to_json())
            return EXIT_FAILED if result.skipped else EXIT_OK
        verb = "would push" if args.dry_run else "pushed"
        if not args.quiet:
            for key in result.pushed:
                print(f"{verb}  {key}")
        for why in result.skipped:
            warning(f"not pushed: {why}")
        print(f"{verb} {len(result.pushed)} images to the team cache"
              + (f"; {len(result.skipped)} left out" if result.skipped else ""))
        return EXIT_FAILED if result.skipped else EXIT_OK
    if args.keep_commits < 0:
        raise UsageError("--keep-commits must be 0 or more")
    history = History(commits=0 if args.no_history else args.keep_commits,
                      all=args.all_history)
    return print_removal(cache_gc(root, dry_run=args.dry_run, history=history), args,
                         "cache files")
