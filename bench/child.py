"""Run one qwenbuild command in this process and report wall time and peak memory.

    python bench/child.py RESULT.json qwenbuild-args...

Registers the benchmark-only `instant` provider kind first. Writes
{"seconds": wall time of the command, "max_rss_mb": peak resident memory, "code": exit code}.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    out_path, args = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    from qwenbuild.cli import main as qwenbuild_main
    from qwenbuild.providers import KINDS

    KINDS["instant"] = "bench.instant:InstantProvider"
    with contextlib.redirect_stdout(io.StringIO()):
        code = qwenbuild_main(args)
    seconds = time.perf_counter() - started
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(out_path, "w") as fh:
        json.dump({"seconds": seconds, "max_rss_mb": rss_kb / 1024, "code": code}, fh)


if __name__ == "__main__":
    main()
