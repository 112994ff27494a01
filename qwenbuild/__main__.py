"""`python -m qwenbuild` and the `qwenbuild` command (`entry`).

Ctrl-C can come at any moment, also while the command's modules are still being imported:
it ends the process quietly (exit 130), never with a traceback.
"""

import os
import signal
import sys


def entry() -> None:
    try:
        from .cli import interrupts, main
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))
        sys.stderr.write("ERROR: interrupted\n")
        raise SystemExit(130) from None
    try:
        code = main()
    except KeyboardInterrupt:  # between the command's own handling and here
        code = interrupts.EXIT_INTERRUPTED
    interrupts.at_exit()
    sys.exit(code)


if __name__ == "__main__":
    entry()
