"""Aspect ratios and the per-provider rules that turn an aspect into a pixel size.

Every provider accepts a different set of sizes. A `SizeRule` describes one set (a step,
side bounds, area bounds, optional named presets) and the model's native resolution; the
chosen size is the accepted one whose ratio is within 1% of the aspect (when any is) and
whose area is nearest the native area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

#: Supported aspect ratios, as written in campaign files.
ASPECTS: dict[str, tuple[int, int]] = {
    "1:1": (1, 1),
    "4:5": (4, 5),
    "5:4": (5, 4),
    "3:4": (3, 4),
    "4:3": (4, 3),
    "2:3": (2, 3),
    "3:2": (3, 2),
    "9:16": (9, 16),
    "16:9": (16, 9),
    "21:9": (21, 9),
    "9:21": (9, 21),
}

#: How close the ratio of the size sent must stay to the ratio asked, where the rules allow.
RATIO_TOLERANCE = 0.01

#: Native Qwen-Image (20B) resolutions, from the QwenLM/Qwen-Image README.
QWEN_NATIVE: dict[str, tuple[int, int]] = {
    "1:1": (1328, 1328),
    "16:9": (1664, 928),
    "9:16": (928, 1664),
    "4:3": (1472, 1104),
    "3:4": (1104, 1472),
    "3:2": (1584, 1056),
    "2:3": (1056, 1584),
}


def aspect_dir(aspect: str) -> str:
    """The folder name of an aspect ratio in the output layout: '9:16' -> '9x16'."""
    return aspect.replace(":", "x")


def orientation(width: int, height: int) -> str:
    if width == height:
        return "square"
    return "portrait" if height > width else "landscape"


def ratio_error(width: int, height: int, aspect: str) -> float:
    """How far width/height is from the aspect's ratio, as a relative difference measured
    on a log scale, so that a size and its transpose are equally far from 16:9 and 9:16."""
    a, b = ASPECTS[aspect]
    return math.expm1(abs(math.log((width / height) / (a / b))))


@dataclass(frozen=True)
class SizeRule:
    """The sizes one provider/model accepts, and the resolution it renders best at."""

    step: int = 16
    min_side: int = 128
    max_side: int = 2048
    min_area: int = 0
    max_area: int = 2048 * 2048
    #: Area of the model's native resolution; the chosen size is the accepted one nearest it.
    native_area: int = 1328 * 1328
    #: Exact native sizes per aspect, preferred when the rule accepts them.
    native: tuple[tuple[str, tuple[int, int]], ...] = ()

    def accepts(self, width: int, height: int) -> bool:
        return (
            width % self.step == 0
            and height % self.step == 0
            and self.min_side <= width <= self.max_side
            and self.min_side <= height <= self.max_side
            and self.min_area <= width * height <= self.max_area
        )

    def resolve(self, aspect: str) -> tuple[int, int]:
        return _resolve(self, aspect)


@lru_cache(maxsize=1024)
def _resolve(rule: SizeRule, aspect: str) -> tuple[int, int]:
    native = dict(rule.native).get(aspect)
    if native and rule.accepts(*native) and ratio_error(*native, aspect) <= RATIO_TOLERANCE:
        return native
    a, b = ASPECTS[aspect]
    if a < b:
        # Rules are symmetric in width and height: solve the landscape twin and transpose,
        # so that 2:3 is exactly 3:2 turned on its side.
        twin = f"{b}:{a}"
        if twin in ASPECTS:
            height, width = _resolve(rule, twin)
            return width, height
    ratio = a / b
    candidates: list[tuple[int, int]] = []
    w = _ceil_to(rule.min_side, rule.step)
    while w <= rule.max_side:
        ideal_h = w / ratio
        # The nearest heights on the step, and the bounds when the ideal lies beyond them
        # (an extreme aspect on a narrow rule still gets its best effort).
        lo, hi = _ceil_to(rule.min_side, rule.step), _floor_to(rule.max_side, rule.step)
        near = {_floor_to(ideal_h, rule.step), _ceil_to(ideal_h, rule.step)}
        for h in near | {min(max(h, lo), hi) for h in near}:
            if h > 0 and rule.accepts(w, h):
                candidates.append((w, h))
        w += rule.step
    if not candidates:
        raise ValueError(f"no size for aspect {aspect} satisfies {rule}")
    close = [c for c in candidates if ratio_error(*c, aspect) <= RATIO_TOLERANCE]
    if close:
        # Nearest the native area; among equals, the more exact ratio, then the larger.
        return min(
            close,
            key=lambda c: (
                abs(math.log(c[0] * c[1] / rule.native_area)),
                ratio_error(c[0], c[1], aspect),
                -c[0],
            ),
        )
    return min(candidates, key=lambda c: (ratio_error(c[0], c[1], aspect), -c[0] * c[1]))


def _floor_to(value: float, step: int) -> int:
    return int(value // step) * step


def _ceil_to(value: float, step: int) -> int:
    return int(-(-value // step)) * step
