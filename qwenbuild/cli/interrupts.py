"""Ctrl-C, cleanly: the first one stops the command; later ones never interrupt the stop.

The first Ctrl-C stops whatever runs (a build cancels its jobs and saves what finished; a
watch closes its server and watchers). From then on the command is *stopping*: a second
Ctrl-C (or SIGTERM) only says that the stop is under way, and a third quits at once
(exit 130), so nothing half-stopped raises again and Python never prints "Exception
ignored" or a traceback at exit.

`stopping()` switches to that; the build calls it (through `BuildOptions.on_interrupt`)
when it notices the first Ctrl-C, the watch when it ends, the CLI when an interrupt
reached it. `held()` restores the previous handlers when a command returns in-process
(tests call `main()`), and `at_exit()` keeps the stopping handlers until the process ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

EXIT_INTERRUPTED = 130
_presses = 0


def _while_stopping(signum: int, frame: FrameType | None) -> None:
    global _presses
    _presses += 1
    if _presses == 1:
        # os.write, not print: the main thread may be inside a print to stderr right now.
        os.write(2, b"stopping: saving what finished (Ctrl-C again to quit at once)\n")
    else:
        os.write(2, b"quit at once\n")
        os._exit(EXIT_INTERRUPTED)


def stopping() -> None:
    """From now on Ctrl-C and SIGTERM no longer interrupt: the command is stopping."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread handles signals
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not _while_stopping:
            signal.signal(sig, _while_stopping)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Run a command; restore the signal handlers it found when it returns."""
    global _presses
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    _presses = 0
    try:
        yield
    finally:
        for sig, handler in before.items():
            if handler is not None:
                signal.signal(sig, handler)


def _quit(signum: int, frame: FrameType | None) -> None:
    os._exit(EXIT_INTERRUPTED)


def at_exit() -> None:
    """The process is about to end: a Ctrl-C while Python shuts down (joining threads,
    flushing files) ends it at once, quietly, instead of raising where nothing catches it
    ("Exception ignored in: <module 'threading'>")."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not _while_stopping:
            signal.signal(sig, _quit)
