"""The retry policy: how long to wait before trying a transient fault again.

Its own module, below everything else, so that providers (polls, downloads) and the build
(generation requests) share one policy without providers importing the build.
"""

from __future__ import annotations

import os
import random


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before try `attempt + 1`: exponential backoff with jitter (1 s, 2 s, 4 s ...
    capped at 30 s, plus 0-1 s); a server's Retry-After wins when it asks for longer (up to
    two minutes)."""
    delay = min(30.0, 2.0 ** (attempt - 1)) + random.random()
    if retry_after is not None:
        delay = max(delay, min(retry_after, 120.0))
    return delay * retry_scale()


def retry_scale() -> float:
    """Factor on every backoff and poll wait: QWENBUILD_RETRY_SCALE (tests shrink the waits
    with it; leave it unset in real use)."""
    try:
        return max(0.0, float(os.environ.get("QWENBUILD_RETRY_SCALE", "1")))
    except ValueError:
        return 1.0
