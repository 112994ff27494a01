"""The command line (`app.py`: one module per command, common options once, exit codes).

`main` first asks the no-op fast path (qwenbuild/noop.py) whether `build CAMPAIGN` has
nothing to do; only when it cannot say does it import the command line and the library.
Nothing here imports more than `sys` at start-up (not even `typing`): the fast path's time
is the interpreter's start plus its own.
"""

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["build"]:
        from ..noop import fast_build

        code = fast_build(args)
        if code is not None:
            return code
    from .app import main as full

    return full(args)


#: What `qwenbuild.cli` offers besides `main`, imported from `app` when asked for.
_FROM_APP = frozenset({"COMMANDS", "COMMON", "EXIT_INPUT", "parser"})


def __getattr__(name: str) -> object:
    if name not in _FROM_APP:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import app

    return getattr(app, name)
