"""Output shared by the commands that remove files (clean, cache gc)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import EXIT_OK, paint, print_json


def add_dry_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be removed, remove nothing")


def print_removal(result: Any, args: argparse.Namespace, noun: str) -> int:
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    verb = "would remove" if result.dry_run else "removed"
    if not args.quiet:
        for note in result.notes:
            print(note)
        for path, size in result.removed:
            print(f"{paint(verb, '35', sys.stdout)}  {path}  ({human_size(size)})")
        for path, reason in result.kept:
            print(f"{paint('kept', '33', sys.stdout)}  {path}  ({reason})")
    if result.removed:
        print(f"{verb} {len(result.removed)} {noun}, {human_size(result.bytes)}"
              + (" freed" if not result.dry_run else ""))
    else:
        print("nothing to remove")
    return EXIT_OK


def human_size(size: int) -> str:
    """Bytes as people read them: 512 B, 12.3 kB, 4.5 MB."""
    amount = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{size} B"  # pragma: no cover
