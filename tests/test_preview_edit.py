"""Preview edits: the parent image with the new copy over it (render_edit / render_edit_png),
the offline stand-in for an edit request of a derived or localised asset."""

from __future__ import annotations

import io
import random
from typing import Any

import pytesseract
import pytest
from PIL import Image, ImageChops, ImageStat

from qwenbuild.providers.preview_render import (
    layout_boxes,
    render_comp,
    render_edit,
    render_edit_png,
    render_png,
)

MASTER: dict[str, Any] = {
    "brand": {"name": "Lantern Nights", "palette": ["rich lantern red", "gold", "ink black"]},
    "copy": {"headline": "NIGHT MARKET", "subtitle": "Riverside street food",
             "footer": "Open every evening"},
    "label": "key-visual · 3:4 · seed 7",
}
GERMAN: dict[str, Any] = {
    **MASTER,
    "copy": {"headline": "NACHTMARKT", "subtitle": "Streetfood am Flussufer",
             "footer": "Jeden Abend geöffnet"},
}


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _noise(w: int, h: int, seed: int = 3) -> Image.Image:
    """A parent whose every pixel is distinctive, so any copied pixel can be recognised."""
    rng = random.Random(seed)
    return Image.frombytes("RGB", (w, h), bytes(rng.randrange(256) for _ in range(w * h * 3)))


def _contrast(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    def lum(c: tuple[int, ...]) -> float:
        lin = [v / 255 / 12.92 if v <= 10 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _ocr(img: Image.Image) -> str:
    # Sparse text: a poster's lines, wherever they are.
    text = pytesseract.image_to_string(img, lang="eng", config="--psm 11")
    return " ".join(text.split()).upper()


def test_the_parents_pixels_show_outside_the_text() -> None:
    parent = _noise(480, 640)
    out = render_edit(_png(parent), 480, 640, 7, GERMAN)
    assert out.size == (480, 640) and out.mode == "RGB"
    # Text lives inside the margin (5.5% of the short side); the margin is the parent's.
    m = round(480 * 0.055) - 1
    diff = ImageChops.difference(out, parent)
    for box in ((0, 0, 480, m), (0, 640 - m, 480, 640), (0, 0, m, 640), (480 - m, 0, 480, 640)):
        assert diff.crop(box).getbbox() is None, box
    same = sum(diff.convert("L").point(lambda v: 255 if v == 0 else 0).histogram()[255:])
    assert same > 0.15 * 480 * 640  # around and between the text boxes, pixel for pixel


def test_the_new_copy_replaces_the_parents_copy() -> None:
    parent = render_comp(552, 736, 7, MASTER)  # the approved English comp
    assert "NIGHT MARKET" in _ocr(parent)
    edited = render_edit(_png(parent), 552, 736, 7, GERMAN)
    text = _ocr(edited)
    assert "NACHTMARKT" in text and "FLUSSUFER" in text
    assert "NIGHT" not in text and "RIVERSIDE" not in text
    # The parent's backdrop carries over: outside the copy the two are the same image.
    diff = ImageChops.difference(edited, parent).convert("L")
    changed = sum(diff.point(lambda v: 255 if v else 0).histogram()[255:])
    assert changed < 0.25 * 552 * 736


def test_the_copy_is_drawn_where_the_layout_puts_it_with_contrast() -> None:
    parent = Image.new("RGB", (400, 300), (40, 40, 40))
    out = render_edit(_png(parent), 400, 300, 1, {"copy": {"headline": "Hello"}})
    ((text, box),) = layout_boxes(400, 300, 1, {"copy": {"headline": "Hello"}})
    colours = sorted(out.crop(box).getcolors(400 * 300) or [], reverse=True)
    assert colours[0][1] == (40, 40, 40)  # the plate is the parent's own colour
    ink = colours[1][1]
    assert _contrast(ink, (40, 40, 40)) >= 4.5
    assert "HELLO" in _ocr(out)


def test_a_reframe_softens_the_parent_and_keeps_its_colours() -> None:
    left, right = (200, 30, 30), (30, 60, 200)
    parent = Image.new("RGB", (300, 400), left)
    parent.paste(right, (150, 0, 300, 400))
    out = render_edit(_png(parent), 400, 300, 2, GERMAN)  # 3:4 -> 4:3: cropped, softened
    assert out.size == (400, 300)
    strip_l = ImageStat.Stat(out.crop((0, 100, 8, 200))).mean  # in the margin: no text
    strip_r = ImageStat.Stat(out.crop((392, 100, 400, 200))).mean
    assert all(abs(a - b) < 12 for a, b in zip(strip_l, left, strict=True))
    assert all(abs(a - b) < 12 for a, b in zip(strip_r, right, strict=True))
    # Softened: no hard edge survives where the halves meet.
    row = [out.getpixel((x, 4)) for x in range(180, 221)]
    steps = [abs(a[0] - b[0]) for a, b in zip(row, row[1:], strict=False)]
    assert max(steps) < 60
    sharp = render_edit(_png(parent), 400, 300, 2, GERMAN, soften=False)
    assert sharp.getpixel((185, 4)) == left and sharp.getpixel((215, 4)) == right
    assert abs(sharp.getpixel((197, 4))[2] - sharp.getpixel((203, 4))[2]) > 100  # an edge


def test_edits_are_deterministic_and_take_any_image_format() -> None:
    parent = _noise(256, 256, seed=5)
    a = render_edit_png(_png(parent), 320, 320, 4, GERMAN)
    assert a == render_edit_png(_png(parent), 320, 320, 4, GERMAN)
    assert a.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(a)) as img:
        assert img.size == (320, 320) and not img.info.keys() - {"dpi", "gamma"}
    jpeg = io.BytesIO()
    parent.save(jpeg, "JPEG", quality=90)
    assert render_edit_png(jpeg.getvalue(), 320, 320, 4, GERMAN).startswith(b"\x89PNG")
    assert render_edit_png(_png(parent), 320, 320, 4, MASTER) != a  # the copy matters
    assert render_edit_png(_png(_noise(256, 256, seed=6)), 320, 320, 4, GERMAN) != a


def test_a_transparent_parent_sits_on_paper() -> None:
    parent = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    out = render_edit(_png(parent), 200, 200, 1, {"copy": {"headline": "x"}})
    assert out.getpixel((1, 1)) == (250, 248, 243)


def test_a_parent_that_is_not_an_image_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a readable image"):
        render_edit_png(b"definitely not a PNG", 200, 200, 1, GERMAN)
    with pytest.raises(ValueError):
        render_edit_png(render_png(64, 64, 1, GERMAN), 0, 200, 1, GERMAN)
