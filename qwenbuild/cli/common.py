"""What every command shares: exit codes, the common options, output helpers.

Imports nothing heavy (no pydantic, Jinja2, httpx or Pillow): `qwenbuild --help` and the
parsing of every command must start quickly. Commands import the library in `run()`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from ..errors import UsageError

#: Exit codes (README "Exit codes"): all done; some jobs failed (or a check found text
#: that reads wrong); invalid input or usage, nothing done; an internal error of qwenbuild
#: (a bug: please report it; EX_SOFTWARE of sysexits.h); interrupted (Ctrl-C, SIGTERM).
EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130


class Parser(argparse.ArgumentParser):
    """argparse with qwenbuild's error convention (exit 2, `ERROR:` lines) and a
    did-you-mean for mistyped commands and options."""

    def error(self, message: str) -> NoReturn:
        message = _with_suggestion(self, message)
        self.print_usage(sys.stderr)
        if getattr(self, "_json_errors", False):
            print_json_error(message)
        self.exit(EXIT_INPUT, f"ERROR: {message}\n")

    def option_strings(self) -> list[str]:
        return [s for action in self._actions for s in action.option_strings]


def _with_suggestion(parser: Parser, message: str) -> str:
    """argparse's message with the closest command or option named, when one is close."""
    if message.startswith("argument ") and "invalid choice:" in message:
        # "argument COMMAND: invalid choice: 'biuld' (choose from 'build', 'plan', ...)"
        start = message.index("invalid choice:") + len("invalid choice:")
        typed = message[start:].split("(")[0].strip().strip("'\"")
        choices = [c for action in parser._actions
                   for c in (getattr(action, "choices", None) or ())]
        return message + _suggest(typed, [str(c) for c in choices])
    if message.startswith("unrecognized arguments:"):
        words = message.split(":", 1)[1].split()
        hints = [_suggest(w, parser.option_strings()) for w in words if w.startswith("-")]
        return message + "".join(hints)
    return message


def _suggest(typed: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(typed, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def common_parent() -> Parser:
    """The options every command takes, before or after the command's name. Declared once:
    the same parent serves the main parser and each command; SUPPRESS keeps a value given
    before the command from being reset by the command's own default."""
    parent = Parser(add_help=False)
    group = parent.add_argument_group("common options")
    group.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="log details, and show the traceback of an internal error")
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="print only errors and the result")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print one JSON object on stdout (errors too, as "
                            '{"error": {...}})')
    return parent


COMMON = ("verbose", "quiet", "json")


def settle_common(args: argparse.Namespace) -> None:
    """Give the common options their defaults where neither position set them."""
    for name in COMMON:
        if not hasattr(args, name):
            setattr(args, name, False)


def add_campaign_arguments(parser: argparse.ArgumentParser, selection: bool = True) -> None:
    """CAMPAIGN and (with `selection`) the options that narrow a build to some jobs."""
    parser.add_argument("campaign", metavar="CAMPAIGN", help="path to a campaign.toml")
    if selection:
        parser.add_argument("--only", action="append", default=[], metavar="GLOB",
                            help="only assets whose id matches GLOB (repeatable)")
        parser.add_argument("--provider", action="append", default=[], metavar="NAME",
                            help="only jobs of this provider (repeatable)")
        parser.add_argument("--aspect", action="append", default=[], metavar="RATIO",
                            help="only jobs of this aspect ratio, e.g. 9:16 (repeatable)")
        parser.add_argument("--locale", action="append", default=[], metavar="LOCALE",
                            help="only jobs of this locale, e.g. de (repeatable)")


def add_remote_option(parser: argparse.ArgumentParser) -> None:
    """`--remote MODE`: what this command may do with the team cache."""
    parser.add_argument("--remote", choices=("read-write", "read", "off"), metavar="MODE",
                        help="the team cache (qwenbuild.toml [cache] remote, or "
                             "QWENBUILD_REMOTE_CACHE): read-write (the default), read (use "
                             "the team's images, never write), or off")


def add_shard_option(parser: argparse.ArgumentParser, what: str) -> None:
    """`--shard I/N`: one of N stable parts of the jobs, split by job key."""
    parser.add_argument("--shard", metavar="I/N",
                        help=f"{what} only the I-th of N parts of the jobs (a stable split by "
                             "job key: N CI runners, one part each)")


def shard_option(args: argparse.Namespace) -> Any:
    """The Shard of --shard, or None. Raises UsageError."""
    if not args.shard:
        return None
    from ..plan.shard import Shard

    return Shard.parse(args.shard)


def add_jobs_option(parser: argparse.ArgumentParser, what: str) -> None:
    """`-j/--jobs N`: in every command, how much work runs at once."""
    parser.add_argument("-j", "--jobs", type=int, metavar="N", help=f"at most N {what} at once")


def jobs_option(args: argparse.Namespace) -> int | None:
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("-j/--jobs must be at least 1")
    return int(args.jobs) if args.jobs is not None else None


def selection(args: argparse.Namespace) -> Any:
    """The Selection of --only, --provider and --aspect. Raises UsageError."""
    from ..plan import Selection
    from ..sizes import ASPECTS

    bad = [a for a in args.aspect if a not in ASPECTS]
    if bad:
        raise UsageError([f"--aspect {a}: unsupported aspect ratio (supported: "
                          f"{', '.join(ASPECTS)})" for a in bad])
    return Selection(tuple(args.only), tuple(args.provider), tuple(args.aspect),
                     tuple(args.locale))


def colour_enabled(stream: TextIO) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set or TERM=dumb."""
    return (stream.isatty() and not os.environ.get("NO_COLOR")
            and os.environ.get("TERM") != "dumb")


def paint(text: str, code: str, stream: TextIO) -> str:
    return f"\033[{code}m{text}\033[0m" if colour_enabled(stream) else text


def error(message: str) -> None:
    """Print an error, one `ERROR:` line per line of the message, on stderr."""
    for line in message.splitlines() or [""]:
        print(paint("ERROR:", "31;1", sys.stderr), line, file=sys.stderr)


def warning(message: str) -> None:
    for line in message.splitlines() or [""]:
        print(paint("WARNING:", "33", sys.stderr), line, file=sys.stderr)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def print_json_error(message: str, **where: Any) -> None:
    """`{"error": {"message", "file", "line", "path", ...}}` on stdout, for --json."""
    print_json({"error": {"message": message, **{k: v for k, v in where.items()}}})


def relative(path: Any, root: Any) -> str:
    """A path relative to a folder, with forward slashes, as messages show paths."""
    return str(os.path.relpath(path, root)).replace(os.sep, "/")
