"""The command line (`app.py`: one module per command, common options once, exit codes).

`main` first asks the no-op fast path (qwenbuild/noop.py) whether `build CAMPAIGN` has
nothing to do; only when it cannot say does it import the command line and the library.
Either way a Ctrl-C is exit 130 with one line (interrupts.py), and whatever is printed
goes through the redaction of secrets (redact.py).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from . import interrupts


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code. A Ctrl-C at any point is exit 130 with
    one line, never a traceback (see interrupts.py)."""
    args = list(sys.argv[1:] if argv is None else argv)
    with interrupts.held(), _redacted_output():
        try:
            from ..noop import fast_build

            code = fast_build(args)
            if code is not None:
                return code
            from .app import main as full

            return full(args)
        except KeyboardInterrupt:
            from .common import error

            interrupts.stopping()
            error("interrupted")
            return interrupts.EXIT_INTERRUPTED


@contextlib.contextmanager
def _redacted_output() -> Iterator[None]:
    """Everything the command prints goes through the redaction of secrets (redact.py):
    provider text, paths, URLs, reports; whatever printed it."""
    from ..redact import RedactingStream

    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(saved[0]), RedactingStream(saved[1])
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more to say
                pass
        sys.stdout, sys.stderr = saved


#: What `qwenbuild.cli` offers besides `main`, imported from `app` when asked for.
_FROM_APP = frozenset({"COMMANDS", "COMMON", "EXIT_INPUT", "parser"})


def __getattr__(name: str) -> Any:
    if name not in _FROM_APP:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import app

    return getattr(app, name)


__all__ = ["interrupts", "main"]
