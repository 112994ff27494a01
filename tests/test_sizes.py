from __future__ import annotations

import pytest

from qwenbuild.providers.preview import PREVIEW_RULE
from qwenbuild.sizes import ASPECTS, QWEN_NATIVE, SizeRule, aspect_dir, ratio_error


def test_aspect_dir() -> None:
    assert aspect_dir("9:16") == "9x16"
    assert aspect_dir("21:9") == "21x9"


def test_the_issue_lists_at_least_these_aspects() -> None:
    assert {"1:1", "4:5", "5:4", "3:4", "4:3", "2:3", "3:2", "9:16", "16:9", "21:9"} <= set(ASPECTS)


def test_preview_uses_native_qwen_sizes() -> None:
    for aspect, size in QWEN_NATIVE.items():
        assert PREVIEW_RULE.resolve(aspect) == size


@pytest.mark.parametrize("aspect", list(ASPECTS))
@pytest.mark.parametrize("rule", [
    PREVIEW_RULE,
    SizeRule(step=32, min_side=512, max_side=1440, native_area=2048 * 2048),
    SizeRule(step=16, min_side=256, max_side=2048, min_area=512 * 512, max_area=2048 * 2048,
             native_area=2048 * 2048),
])
def test_resolved_size_is_accepted_and_close_to_the_ratio(aspect: str, rule: SizeRule) -> None:
    width, height = rule.resolve(aspect)
    assert rule.accepts(width, height)
    assert ratio_error(width, height, aspect) <= 0.01


def test_native_area_wins_among_close_sizes() -> None:
    rule = SizeRule(step=16, min_side=128, max_side=2048, max_area=2048 * 2048,
                    native_area=2048 * 2048)
    assert rule.resolve("1:1") == (2048, 2048)
    assert rule.resolve("16:9") == (2048, 1152)
    small = SizeRule(step=16, min_side=128, max_side=2048, native_area=512 * 512)
    assert small.resolve("1:1") == (512, 512)


def test_when_no_size_is_within_one_percent_the_closest_ratio_is_used() -> None:
    rule = SizeRule(step=256, min_side=256, max_side=512)
    width, height = rule.resolve("21:9")
    assert (width, height) == (512, 256)
