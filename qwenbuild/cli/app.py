"""The command line: one module per command (`add_parser` + `run`), the common options once
(`common.py`), errors mapped to exit codes here.

Exit codes: 0 all done, 1 some jobs failed (or a check failed), 2 invalid input or usage
(nothing was done), 70 an internal error of qwenbuild, 130 interrupted. Commands import
the library inside `run()`, so `qwenbuild --help` starts without pydantic, Jinja2, httpx
or Pillow.
"""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType

from ..errors import QwenbuildError
from ..redact import redact
from . import (
    approve,
    build,
    cache,
    check,
    clean,
    completion,
    init,
    inspect,
    interrupts,
    pick,
    plan,
    providers,
    pull,
    reject,
    review,
    schema,
    watch,
)
from .common import (
    COMMON,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    Parser,
    common_parent,
    error,
    print_json_error,
    settle_common,
)

#: The commands, in the order `--help` lists them.
COMMANDS: tuple[ModuleType, ...] = (build, plan, pull, watch, review, approve, reject, pick,
                                    check, providers, init, clean, cache, inspect, schema,
                                    completion)


def parser() -> Parser:
    """The whole command line."""
    from .. import __version__

    common = common_parent()
    root = Parser(
        prog="qwenbuild", parents=[common],
        description="A declarative build system for design assets made with Qwen-Image models.",
        epilog="Exit codes: 0 all done, 1 some jobs failed, 2 invalid input or usage, "
               "70 internal error, 130 interrupted.")
    root.add_argument("--version", action="version", version=f"qwenbuild {__version__}")
    sub = root.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for module in COMMANDS:
        module.add_parser(sub, [common])
    return root


def _command_parser(root: Parser, name: str) -> Parser | None:
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            found = action.choices.get(name)
            return found if isinstance(found, Parser) else None
    return None


def _wants_json(argv: list[str]) -> bool:
    return "--json" in argv


def main(argv: list[str]) -> int:
    """The whole command line, once the fast path (cli/__init__.py) could not answer."""
    root = parser()
    json_errors = _wants_json(argv)
    root._json_errors = json_errors  # type: ignore[attr-defined]
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child._json_errors = json_errors
    try:
        args, extras = root.parse_known_args(argv)
        if extras:
            # An option the command does not know: say so with the command's usage, not
            # the top-level one, and suggest the closest option.
            target = _command_parser(root, args.command) or root
            target.error(f"unrecognized arguments: {' '.join(extras)}")
        settle_common(args)
        if args.verbose and args.quiet:
            root.error("-v/--verbose and -q/--quiet contradict each other; give one")
    except SystemExit as exc:  # --help, --version, and usage errors (exit code 2)
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    args.root_parser = root
    _configure_logging(args.verbose, args.quiet)
    module = next(m for m in COMMANDS if m.NAME == args.command)
    try:
        return _run(module, args)
    except BrokenPipeError:
        # `qwenbuild providers | head -1`: the reader has gone; stop quietly, as Unix
        # tools do (and keep Python from complaining while flushing at exit).
        _silence_stdout()
        return 0


def _run(module: ModuleType, args: argparse.Namespace) -> int:
    try:
        code: int = module.run(args)
        return code
    except QwenbuildError as exc:
        # An error qwenbuild reports is the message; -v shows where it came from.
        if args.verbose:
            logging.getLogger("qwenbuild").debug("raised", exc_info=True)
        error(str(exc))
        if args.json:
            print_json_error(str(exc), kind=type(exc).__name__,
                             problems=getattr(exc, "problems", [str(exc)]))
        return exc.exit_code
    except KeyboardInterrupt:
        interrupts.stopping()
        error("interrupted")
        if args.json:
            print_json_error("interrupted", kind="Interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise
    except OSError as exc:
        # The file system refused (disk full, read-only, a folder where a file must be):
        # not a bug; name the path and the cause.
        if args.verbose:
            logging.getLogger("qwenbuild").debug("raised", exc_info=True)
        where = f"{exc.filename}: " if exc.filename else ""
        message = f"{where}{exc.strerror or exc}"
        error(message)
        if args.json:
            print_json_error(message, kind="FileSystemError", path=exc.filename)
        return EXIT_FAILED
    except Exception as exc:  # a bug of ours: say so plainly, traceback only with -v
        if args.verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        message = (f"internal error: {type(exc).__name__}: {exc} (a bug in qwenbuild; "
                   "run with -v for the traceback and report it)")
        error(message)
        if args.json:
            print_json_error(message, kind="InternalError")
        return EXIT_INTERNAL


def _configure_logging(verbose: bool, quiet: bool) -> None:
    """Logging is configured here only; library modules use `getLogger(__name__)`. Every
    record goes through the redaction of secrets (qwenbuild/redact.py)."""

    class Redacting(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return redact(super().format(record))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Redacting("%(levelname)s: %(message)s"))
    level = logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_qwenbuild", False):
            root.removeHandler(old)
    handler._qwenbuild = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


__all__ = ["COMMANDS", "COMMON", "EXIT_INPUT", "main", "parser"]
