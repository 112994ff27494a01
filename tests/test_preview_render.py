"""Tests for the offline layout-comp renderer used by the ``preview`` provider."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import textwrap
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops

from qwenbuild.providers.preview_render import (
    RENDERER_VERSION,
    layout_boxes,
    render_comp,
    render_png,
)

RGBT = tuple[int, int, int]

DESIGN: dict[str, Any] = {
    "brand": {
        "name": "Nordbahn",
        "palette": ["teal", "saffron", "cream", "midnight blue"],
        "style": "swiss transit",
    },
    "copy": {
        "headline": "Night trains to everywhere",
        "subtitle": "Sleep in Berlin, wake up in Vienna",
        "blocks": [
            {"title": "Routes", "lines": ["Berlin to Vienna", "Hamburg to Zurich"]},
            {"title": "Fares", "lines": ["From 29 EUR", "Couchette 49 EUR"]},
            {"title": "Book", "lines": ["nordbahn.example", "App and stations"]},
        ],
        "footer": "Terms apply. Seats limited.",
        "badge": "NEW",
        "callouts": ["Wi-Fi", "Breakfast"],
    },
    "label": "transit-poster · 3:4 · seed 1",
}

STRESS: dict[str, Any] = {
    "brand": {"name": "Stress", "palette": ["deep indigo", "#1a2b3c", "rose pink"]},
    "copy": {
        "headline": " ".join(["Supercalifragilistic"] + ["headline"] * 30)[:200],
        "subtitle": "A subtitle " * 20,
        "blocks": [
            {"title": f"Block {i} " + "title " * 5, "lines": ["A very long block line " * 8] * 4}
            for i in range(10)
        ],
        "footer": "Footer " * 40,
        "badge": "Limited edition",
    },
    "label": "stress · 21:9 · seed 9",
}

SIZES = [
    (128, 128),
    (2048, 2048),
    (224, 96),
    (2048, 880),
    (880, 2048),
    (144, 256),
    (1152, 2048),
    (1104, 1472),
    (128, 2048),
    (2048, 128),
]


def _norm(text: str) -> str:
    return " ".join(text.split())


def _assert_inside(boxes: list[tuple[str, tuple[int, int, int, int]]], w: int, h: int) -> None:
    for text, (x0, y0, x1, y1) in boxes:
        assert 2 <= x0 <= x1 <= w - 2, (text, (x0, y0, x1, y1), (w, h))
        assert 2 <= y0 <= y1 <= h - 2, (text, (x0, y0, x1, y1), (w, h))


def test_renderer_version_is_int() -> None:
    assert isinstance(RENDERER_VERSION, int) and RENDERER_VERSION >= 1


@pytest.mark.parametrize(("w", "h"), SIZES)
def test_exact_size_and_mode(w: int, h: int) -> None:
    img = render_comp(w, h, 1, DESIGN)
    assert img.size == (w, h)
    assert img.mode == "RGB"


def test_png_decodes_and_verifies() -> None:
    data = render_png(320, 240, 3, DESIGN)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as img:
        img.verify()
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (320, 240) and img.mode == "RGB"
        assert not img.info.keys() - {"dpi", "gamma"}  # no text chunks / timestamps


def test_png_matches_render_comp_pixels() -> None:
    with Image.open(io.BytesIO(render_png(200, 300, 5, DESIGN))) as img:
        assert img.tobytes() == render_comp(200, 300, 5, DESIGN).tobytes()


def test_deterministic_in_process() -> None:
    assert render_png(640, 480, 7, DESIGN) == render_png(640, 480, 7, DESIGN)
    assert layout_boxes(640, 480, 7, DESIGN) == layout_boxes(640, 480, 7, DESIGN)


def test_deterministic_across_processes() -> None:
    script = textwrap.dedent(
        """
        import hashlib, json, sys
        from qwenbuild.providers.preview_render import render_png
        design = json.loads(sys.stdin.read())
        sys.stdout.write(hashlib.sha256(render_png(640, 480, 7, design)).hexdigest())
        """
    )
    # A different hash seed proves nothing leans on Python's randomised hash().
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(DESIGN),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    assert out.stdout == hashlib.sha256(render_png(640, 480, 7, DESIGN)).hexdigest()


def test_different_seeds_differ() -> None:
    images = {render_png(400, 300, seed, DESIGN) for seed in range(4)}
    assert len(images) == 4
    a, b = render_comp(400, 300, 1, DESIGN), render_comp(400, 300, 2, DESIGN)
    changed = ImageChops.difference(a, b).convert("L").histogram()[1:]
    assert sum(changed) > 0.05 * 400 * 300  # visibly different, not a pixel or two


def test_headline_changes_image() -> None:
    other = {**DESIGN, "copy": {**DESIGN["copy"], "headline": "Day trains, too"}}
    assert render_png(400, 300, 1, DESIGN) != render_png(400, 300, 1, other)
    texts = [t for t, _ in layout_boxes(400, 300, 1, other)]
    assert any(_norm(t) == "Day trains, too" for t in texts)


def test_headline_drawn_in_full() -> None:
    boxes = layout_boxes(1104, 1472, 1, DESIGN)
    texts = [_norm(t) for t, _ in boxes]
    assert _norm(DESIGN["copy"]["headline"]) in texts
    headline_box = boxes[texts.index(_norm(DESIGN["copy"]["headline"]))][1]
    # The headline is the display element: the tallest box on the poster.
    heights = [b[3] - b[1] for _, b in boxes]
    assert headline_box[3] - headline_box[1] == max(heights) > 100
    for expected in (
        "Nordbahn",
        "transit-poster · 3:4 · seed 1",
        "Routes",
        "NEW",
        "Wi-Fi · Breakfast",
        "Terms apply. Seats limited.",
    ):
        assert expected in texts
    assert "Berlin to Vienna\nHamburg to Zurich" in [t for t, _ in boxes]
    _assert_inside(boxes, 1104, 1472)


@pytest.mark.parametrize(("w", "h"), [(128, 128), (2048, 880), (880, 2048), (128, 2048)])
def test_stress_copy_stays_inside(w: int, h: int) -> None:
    assert len(STRESS["copy"]["headline"]) == 200
    boxes = layout_boxes(w, h, 9, STRESS)
    assert boxes, "something should still be drawn"
    _assert_inside(boxes, w, h)
    # Crowded copy is either drawn whole or visibly truncated with an ellipsis, never
    # silently cut. Whitespace is ignored because over-long words may be broken.
    copy = STRESS["copy"]
    sources = [copy["headline"], copy["subtitle"], copy["footer"], copy["badge"]]
    sources += [STRESS["label"], STRESS["brand"]["name"]]
    for block in copy["blocks"]:
        sources += [block["title"], " ".join(block["lines"])]
    squashed = ["".join(src.split()) for src in sources]
    for text, _ in boxes:
        drawn = "".join(text.split())
        if drawn.endswith("\u2026"):
            assert any(src.startswith(drawn[:-1]) for src in squashed), text
        else:
            assert drawn in squashed, text
    assert render_comp(w, h, 9, STRESS).size == (w, h)


def test_blocks_stack_in_portrait_and_form_columns_in_landscape() -> None:
    titles = {"Routes", "Fares", "Book"}
    portrait = [b for t, b in layout_boxes(880, 2048, 1, DESIGN) if t in titles]
    landscape = [b for t, b in layout_boxes(2048, 880, 1, DESIGN) if t in titles]
    assert len(portrait) == len(landscape) == 3
    assert len({b[0] for b in portrait}) == 1  # one column ...
    assert sorted(b[1] for b in portrait) == [b[1] for b in portrait]  # ... top to bottom
    assert len({b[0] for b in landscape}) >= 2  # side by side


def test_long_text_is_truncated_with_ellipsis_when_it_cannot_fit() -> None:
    design = {"copy": {"headline": "word " * 300}}
    boxes = layout_boxes(128, 128, 1, design)
    assert boxes and boxes[0][0].endswith("\u2026")
    _assert_inside(boxes, 128, 128)


def test_overlong_word_is_broken_not_overflowing() -> None:
    word = "x" * 120
    boxes = layout_boxes(300, 400, 1, {"copy": {"headline": word}})
    assert len(boxes) == 1
    text, _ = boxes[0]
    assert text.replace("\n", "").rstrip("\u2026") in word and "\n" in text
    _assert_inside(boxes, 300, 400)


@pytest.mark.parametrize(
    "design",
    [
        {},
        {"brand": None, "copy": None, "label": None},
        {"brand": "Just a name", "copy": "Just a headline", "label": 42},
        {"brand": {"palette": []}},
        {"brand": {"palette": "teal, not-a-colour"}},
        {"brand": {"palette": ["blorple", "zzz unknown", 12, None, {"x": 1}, [1, 2, 3]]}},
        {"brand": {"palette": {"a": "coral"}, "name": 7}},
        {"copy": {"headline": 12345, "subtitle": 3.5, "footer": True}},
        {"copy": {"blocks": ["plain string block", 42, None, ["nested"], {"lines": "str"}]}},
        {"copy": {"blocks": "a single string"}},
        {"copy": {"blocks": {"title": "single mapping", "lines": [1, 2, 3]}}},
        {"copy": {"blocks": [{"title": None, "lines": None}, {}]}},
        {"copy": {"headline": "", "subtitle": "   ", "callouts": [], "extra": {"x": 1}}},
        {"copy": {"headline": "中文标题 テスト 한국어 🚆", "footer": "\x00c\x07 \ud800 x"}},
        {"copy": {"headline": "a\u0301\u0301\u0301\u0301" * 10, "subtitle": "\n\n\t"}},
        {"copy": {1: "non-string key", "headline": ["list", "headline"]}},
    ],
)
def test_odd_designs_do_not_crash(design: dict[str, Any]) -> None:
    for w, h in ((128, 128), (640, 275)):
        img = render_comp(w, h, 2, design)
        assert img.size == (w, h)
        _assert_inside(layout_boxes(w, h, 2, design), w, h)


def test_non_mapping_design_does_not_crash() -> None:
    assert render_comp(160, 90, 0, None).size == (160, 90)  # type: ignore[arg-type]


def test_palette_colours_are_used() -> None:
    design = {"brand": {"palette": ["#ff0000"]}, "copy": {"headline": "Red"}}
    img = render_comp(200, 200, 1, design)
    colours = {c for _, c in img.getcolors(maxcolors=200 * 200) or []}
    assert (255, 0, 0) in colours


def test_palette_names_come_from_the_colour_table() -> None:
    def png(palette: list[str]) -> bytes:
        return render_png(120, 120, 1, {"brand": {"palette": palette}, "copy": {"headline": "x"}})

    # An unknown word before a colour leaves the colour; a near miss is its closest name.
    assert png(["espresso brown"]) == png(["brown"]) == png(["#653700"])
    assert png(["blorple"]) == png(["blurple"])
    assert png(["deep indigo"]) != png(["indigo"])


def _wcag(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    def lum(c: tuple[int, ...]) -> float:
        lin = [(v / 255 / 12.92) if v <= 10 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in c[:3]]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("palette", [["black"], ["#777777"], ["ivory"], ["saffron", "cream"]])
def test_text_contrast_on_background(palette: list[str]) -> None:
    design = {"brand": {"palette": palette}, "copy": {"headline": "Contrast"}}
    img = render_comp(300, 300, 1, design)
    ((_, box),) = layout_boxes(300, 300, 1, design)
    counts = sorted(img.crop(box).getcolors(maxcolors=300 * 300) or [], reverse=True)
    ink, background = cast(RGBT, counts[0][1]), cast(RGBT, counts[1][1])
    # The two dominant colours in the headline box are glyph ink and what lies behind it.
    assert _wcag(ink, background) >= 4.4


def test_invalid_canvas_size_raises() -> None:
    with pytest.raises(ValueError):
        render_comp(0, 10, 1, DESIGN)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.integers(min_value=128, max_value=2048),
    h=st.integers(min_value=128, max_value=2048),
    seed=st.integers(min_value=0, max_value=2**32),
    headline=st.text(max_size=240),
    subtitle=st.text(max_size=80),
    lines=st.lists(st.text(max_size=60), max_size=4),
    n_blocks=st.integers(min_value=0, max_value=10),
    footer=st.text(max_size=80),
    label=st.text(max_size=40),
)
def test_hypothesis_boxes_inside(
    w: int,
    h: int,
    seed: int,
    headline: str,
    subtitle: str,
    lines: list[str],
    n_blocks: int,
    footer: str,
    label: str,
) -> None:
    design = {
        "brand": {"name": label[:10], "palette": [headline[:8] or "teal", "cream"]},
        "copy": {
            "headline": headline,
            "subtitle": subtitle,
            "blocks": [{"title": label, "lines": lines} for _ in range(n_blocks)],
            "footer": footer,
        },
        "label": label,
    }
    _assert_inside(layout_boxes(w, h, seed, design), w, h)
