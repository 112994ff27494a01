"""The command line (`app.py`: one module per command, common options once, exit codes).

`main` first asks the no-op fast path (qwenbuild/noop.py) whether `build CAMPAIGN` has
nothing to do; only when it cannot say does it import the command line and the library.
Either way a Ctrl-C is exit 130 with one line (interrupts.py), and whatever is printed
goes through the redaction of secrets (redact.py; the fast path prints nothing that could
need it, or leaves the answer to the full build). Nothing here imports more than `sys` at
start-up (not even `typing`): the fast path's time is the interpreter's start plus its own.
"""

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code. A Ctrl-C at any point is exit 130 with
    one line, never a traceback (see interrupts.py)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["build"]:
        try:
            from ..noop import fast_build

            code = fast_build(args)
        except KeyboardInterrupt:
            return _interrupted()
        if code is not None:
            return code
    return _full(args)


def _full(args: list[str]) -> int:
    from ..redact import redacted_output
    from . import interrupts

    with interrupts.held(), redacted_output():
        try:
            from .app import main as full

            return full(args)
        except KeyboardInterrupt:
            return _interrupted()


def _interrupted() -> int:
    from . import interrupts
    from .common import error

    interrupts.stopping()
    error("interrupted")
    return interrupts.EXIT_INTERRUPTED


#: What `qwenbuild.cli` offers besides `main`, imported from `app` when asked for.
_FROM_APP = frozenset({"COMMANDS", "COMMON", "EXIT_INPUT", "parser"})


def __getattr__(name: str) -> object:
    if name not in _FROM_APP:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import app

    return getattr(app, name)


__all__ = ["interrupts", "main"]
