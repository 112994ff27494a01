"""`python -m qwenbuild` and the `qwenbuild` command (`entry`).

Ctrl-C can come at any moment, also while the command's modules are still being imported:
it ends the process quietly (exit 130), never with a traceback.
"""

import os
import signal
import sys


def entry() -> None:
    try:
        from .cli import main
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))
        sys.stderr.write("ERROR: interrupted\n")
        raise SystemExit(130) from None
    try:
        code = main()
    except KeyboardInterrupt:  # between the command's own handling and here
        code = 130
    interrupts = sys.modules.get("qwenbuild.cli.interrupts")
    if interrupts is not None:
        interrupts.at_exit()
    else:  # the no-op fast path: nothing to stop, so a Ctrl-C from now quits at once
        signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))
    sys.exit(code)


if __name__ == "__main__":
    entry()
