"""The review page, `<out>/index.html`. (Placeholder until the review page lands: writes nothing.)"""

from __future__ import annotations

from typing import Any


def write_review(the_plan: Any, report: Any, manifest: Any, previous: dict[str, Any],
                 cache: Any) -> None:
    return None
