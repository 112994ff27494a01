"""The job key: sha256 over a canonical JSON form of everything that can change an image.

Included: provider kind, model, rendered prompt and negative prompt, size, seed, the
sha256 of each reference image (in order), prompt_extend, provider options, whatever the
provider adds (`Provider.key_fields`), and KEY_VERSION. Excluded: anything that cannot
change the image (request ids, API keys, base URLs, concurrency, timeouts, output paths,
timestamps, asset ids and provider *names*).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

#: Bump when the canonical form changes; every key changes with it.
KEY_VERSION = 1


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no insignificant whitespace, UTF-8 kept as is.

    Floats that are whole numbers are written as integers, so `7.0` and `7` (which TOML
    keeps apart) give the same key: no provider tells them apart.
    """
    return json.dumps(
        normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        allow_nan=False,
    )


def normalise(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, Mapping):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if isinstance(value, dt.date | dt.time | dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} into a key")


def job_key(fields: Mapping[str, Any]) -> str:
    """The key of a job from its key fields (see `key_fields`)."""
    data = {"v": KEY_VERSION, **fields}
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()
