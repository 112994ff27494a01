"""The brand-repository commands of the command line: init, clean, cache gc, inspect, schema.

Kept beside `cli.py` (which registers them) so that each stays small; as there, each
command parses its arguments, calls one library function and prints the result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .cli import EXIT_FAILED, EXIT_OK, _paint


def add_repo_commands(sub: Any) -> None:
    """Register the commands on the main parser's subparsers."""

    def verbose(p: argparse.ArgumentParser) -> None:
        p.add_argument("-v", "--verbose", action="store_true",
                       help="log details, and show tracebacks of errors")

    p_init = sub.add_parser(
        "init", help="scaffold a brand asset repository that builds at once",
        description="Write a new brand asset repository: templates/, an example campaign "
                    "(projects/example/campaign.toml, preview provider), the campaign "
                    "schema, a README, .gitignore and .gitattributes. Refuses to overwrite "
                    "any file unless --force.")
    p_init.add_argument("folder", metavar="DIR", nargs="?", default=".",
                        help="where to create it (default: the current folder)")
    p_init.add_argument("--force", action="store_true",
                        help="overwrite the scaffold's files where they exist")
    verbose(p_init)

    p_clean = sub.add_parser(
        "clean", help="remove outputs the campaign no longer makes",
        description="Remove the outputs and export renditions that the manifest lists but "
                    "the campaign no longer makes (only files qwenbuild wrote, still as it "
                    "wrote them), their manifest entries, and folders left empty.")
    p_clean.add_argument("campaign", metavar="CAMPAIGN", help="path to a campaign.toml")
    p_clean.add_argument("--dry-run", action="store_true",
                         help="list what would be removed, remove nothing")
    p_clean.add_argument("--json", action="store_true", help="print JSON")
    verbose(p_clean)

    p_cache = sub.add_parser("cache", help="manage the image cache",
                             description="Manage the image cache.")
    cache_sub = p_cache.add_subparsers(dest="cache_command", metavar="COMMAND",
                                       parser_class=type(p_cache))
    cache_sub.required = True
    p_gc = cache_sub.add_parser(
        "gc", help="remove cache entries no manifest references",
        description="Remove the cache entries that no manifest.json under ROOT references, "
                    "stray temporary files, and machine-local records of output folders "
                    "and campaigns that no longer exist; report the bytes freed.")
    p_gc.add_argument("root", metavar="ROOT", nargs="?",
                      help="folder searched for manifests (default: the repository holding "
                           "the current folder)")
    p_gc.add_argument("--dry-run", action="store_true",
                      help="list what would be removed, remove nothing")
    p_gc.add_argument("--json", action="store_true", help="print JSON")
    verbose(p_gc)

    p_inspect = sub.add_parser(
        "inspect", help="print the provenance stored in an output image",
        description="Print what made an image: prompt, negative prompt, seed, model, "
                    "provider and key, as qwenbuild stored them in the file. Exit code 1 "
                    "when the file holds none.")
    p_inspect.add_argument("image", metavar="IMAGE", help="a PNG, JPEG or WebP file")
    p_inspect.add_argument("--json", action="store_true", help="print JSON")
    verbose(p_inspect)

    p_schema = sub.add_parser(
        "schema", help="print the JSON Schema of campaign files",
        description="Print the JSON Schema of campaign files, for editors with TOML schema "
                    "support (a first line `#:schema path/to/campaign.schema.json`).")
    verbose(p_schema)


def cmd_init(args: argparse.Namespace) -> int:
    from .scaffold import EXAMPLE_CAMPAIGN, init

    folder = Path(args.folder)
    result = init(folder, force=args.force)
    for rel in result.files:
        print(f"{_paint('created', '32', sys.stdout):>7}  {_join(args.folder, rel)}")
    prefix = "" if args.folder in (".", "") else f"cd {args.folder} && "
    print(f"\nnext: {prefix}git init && qwenbuild build {EXAMPLE_CAMPAIGN}")
    return EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    from .campaign import load_campaign
    from .maintenance import clean

    result = clean(load_campaign(args.campaign), dry_run=args.dry_run)
    return _print_removal(result, args.json, "outputs")


def cmd_cache(args: argparse.Namespace) -> int:
    from .maintenance import cache_gc, default_root

    root = Path(args.root) if args.root else default_root()
    result = cache_gc(root, dry_run=args.dry_run)
    return _print_removal(result, args.json, "cache files")


def cmd_inspect(args: argparse.Namespace) -> int:
    from .errors import InputError
    from .provenance import FIELDS, ProvenanceError, inspect_file

    try:
        info = inspect_file(Path(args.image))
    except FileNotFoundError:
        raise InputError(f"{args.image}: no such file") from None
    except OSError as exc:
        raise InputError(f"{args.image}: cannot read: {exc.strerror or exc}") from None
    except ProvenanceError as exc:
        raise InputError(f"{args.image}: {exc}") from None
    if args.json:
        print(json.dumps({"file": args.image, "provenance": info}, indent=2,
                         ensure_ascii=False))
    elif info is None:
        print(f"{args.image}: no provenance (not written by qwenbuild, or re-saved by a tool "
              "that dropped its metadata)")
    else:
        names = [n for n in FIELDS if n in info]
        names += sorted(n for n in info if n not in FIELDS and n != "parameters")
        if not names:  # another tool's image: its Stable Diffusion parameters only
            names = ["parameters"]
        width = max(len(n) for n in names)
        for name in names:
            lines = info[name].splitlines() or [""]
            print(f"{name + ':':<{width + 1}} {lines[0]}")
            for line in lines[1:]:
                print(f"{'':<{width + 1}} {line}")
    return EXIT_OK if info is not None else EXIT_FAILED


def cmd_schema(args: argparse.Namespace) -> int:
    from .schema import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK


#: The commands above, by name, for cli.main.
REPO_COMMANDS = {"init": cmd_init, "clean": cmd_clean, "cache": cmd_cache,
                 "inspect": cmd_inspect, "schema": cmd_schema}


def _print_removal(result: Any, as_json: bool, noun: str) -> int:
    if as_json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
        return EXIT_OK
    verb = "would remove" if result.dry_run else "removed"
    for path, size in result.removed:
        print(f"{_paint(verb, '35', sys.stdout)}  {path}  ({human_size(size)})")
    for path, reason in result.kept:
        print(f"{_paint('kept', '33', sys.stdout)}  {path}  ({reason})")
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


def _join(folder: str, rel: str) -> str:
    return rel if folder in (".", "") else f"{folder.rstrip('/')}/{rel}"
