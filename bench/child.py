"""Run one qwenbuild command in this process and report wall time and peak memory.

    python bench/child.py RESULT.json qwenbuild-args...

Registers the benchmark-only `instant` provider kind first. Writes
{"seconds": wall time of the command, "max_rss_mb": peak resident memory, "code": exit code,
"remote_calls": requests sent to the team cache, "obstore_imported": whether it was}.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    out_path, args = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    from qwenbuild.cli import main as qwenbuild_main
    from qwenbuild.providers import KINDS
    from qwenbuild.store import remote

    KINDS["instant"] = "bench.instant:InstantProvider"
    # Count every request to the team cache (each goes through ObjectBackend._call).
    calls = [0]
    call = remote.ObjectBackend._call

    def counted(self: remote.ObjectBackend, *a: Any, **k: Any) -> Any:
        calls[0] += 1
        return call(self, *a, **k)

    remote.ObjectBackend._call = counted  # type: ignore[method-assign]
    with contextlib.redirect_stdout(io.StringIO()):
        code = qwenbuild_main(args)
    seconds = time.perf_counter() - started
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(out_path, "w") as fh:
        json.dump({"seconds": seconds, "max_rss_mb": rss_kb / 1024, "code": code,
                   "remote_calls": calls[0], "obstore_imported": "obstore" in sys.modules},
                  fh)


if __name__ == "__main__":
    main()
