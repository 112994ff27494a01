"""`qwenbuild inspect IMAGE`: print the provenance stored in an output image."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import InputError
from .common import EXIT_FAILED, EXIT_OK, Parser, print_json

NAME = "inspect"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents, help="print the provenance stored in an output image",
        description="Print what made an image: prompt, negative prompt, seed, model, "
                    "provider and key, as qwenbuild stored them in the file. Exit code 1 "
                    "when the file holds none.")
    p.add_argument("image", metavar="IMAGE", help="a PNG, JPEG or WebP file")
    return p


def run(args: argparse.Namespace) -> int:
    from ..provenance import FIELDS, ProvenanceError, inspect_file

    try:
        info = inspect_file(Path(args.image))
    except FileNotFoundError:
        raise InputError(f"{args.image}: no such file") from None
    except OSError as exc:
        raise InputError(f"{args.image}: cannot read: {exc.strerror or exc}") from None
    except ProvenanceError as exc:
        raise InputError(f"{args.image}: {exc}") from None
    if args.json:
        print_json({"file": args.image, "provenance": info})
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
