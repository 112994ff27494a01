"""`qwenbuild providers`: provider kinds, their models, sizes, prices, options and keys."""

from __future__ import annotations

import argparse
from typing import Any

from .common import EXIT_OK, Parser, print_json

NAME = "providers"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents, help="list provider kinds, models, sizes and prices",
        description="List provider kinds, their models, the size each aspect resolves to, "
                    "price per image, their options, and whether each API key is set.")
    return p


def run(args: argparse.Namespace) -> int:
    from ..providers import catalogue

    rows = catalogue()
    if args.json:
        print_json(rows)
        return EXIT_OK
    for row in rows:
        key = ("no key needed" if row["api_key_env"] is None else
               f"{row['api_key_env']} {'set' if row['api_key_set'] else 'NOT set'}")
        price = f"{'~' if row['price_note'] else ''}${row['price_usd']:.4f}"
        print(f"{row['kind']:<12} {row['model']:<28} {price:<8} {key}")
        if args.quiet:
            continue
        print("    " + "  ".join(f"{a} {s}" for a, s in row["sizes"].items()))
        if row["price_note"]:
            print(f"    price: {row['price_note']}")
        if row["options"]:
            print("    options: " + ", ".join(row["options"]))
        if getattr(args, "verbose", False):
            for name, text in row["option_help"].items():
                print(f"      {name}: {text}")
        if row["asset_fields"]:
            print("    asset fields: " + ", ".join(row["asset_fields"]))
    return EXIT_OK
