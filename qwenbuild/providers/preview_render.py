"""Offline layout-comp renderer behind the built-in ``preview`` image provider.

The real providers ask Qwen-Image for a finished poster; this one draws a deterministic
Swiss-grid *comp* with Pillow so designers can check how their copy fits at every aspect
ratio without a GPU or network.  The PNG bytes must be stable because they are cached
under a key that includes ``RENDERER_VERSION`` and :func:`fonts_key`.

Text is drawn through a font fallback chain (``preview_fonts``: the built-in font, then
the system fonts fontconfig lists, chosen by each font's cmap), so every script an
installed font covers is drawn, and the comp depends on the installed fonts only through
what ``fonts_key`` records. Palette names resolve through a colour-name table
(``colours``). :func:`render_edit_png` draws new copy over a parent image, the offline
stand-in for an edit request.
"""

from __future__ import annotations

import io
import math
import random
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageOps, ImageStat

from . import colours
from . import preview_fonts as fonts
from .preview_text import Fit, fit_group, fit_text, line_h

# Bump when the drawing changes (it is part of a cache key). 3: font fallback chain, colour
# names from the CSS/XKCD table.
RENDERER_VERSION = 3

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]

MIN_CONTRAST = 4.5
_MAX_CHARS = 1500  # far more than any box holds; bounds wrap cost for pathological copy
_INK: RGB = (18, 18, 20)
_PAPER: RGB = (250, 248, 243)
_CORE_COPY_KEYS = frozenset({"headline", "subtitle", "blocks", "footer"})
# Copy keys the shipped templates use to describe the artwork; they are never text to draw.
_DESCRIPTION_KEYS = frozenset({"scene", "diagram"})
# cream, midnight blue, coral, teal, saffron
_DEFAULT_PALETTE = [(246, 238, 218), (28, 36, 74), (255, 127, 80), (0, 128, 128), (244, 196, 48)]


def _parse_colour(value: Any) -> RGB | None:
    """Map a palette entry (name, hex, CSS string or RGB triple) to RGB; None if unusable.
    Names go through the colour-name table; an unknown one logs a warning (``colours``)."""
    if isinstance(value, list | tuple) and len(value) in (3, 4):
        if all(isinstance(c, int) and not isinstance(c, bool) for c in value[:3]):
            r, g, b = (max(0, min(255, c)) for c in value[:3])
            return (r, g, b)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return colours.palette_colour(str(value)) if str(value).strip() else None


def _palette(brand: Mapping[str, Any]) -> list[RGB]:
    raw = brand.get("palette")
    if isinstance(raw, str):
        raw = raw.split(",")
    elif isinstance(raw, Mapping):
        raw = list(raw.values())
    out: list[RGB] = []
    for item in raw[:12] if isinstance(raw, list | tuple) else []:
        if (rgb := _parse_colour(item)) is not None and rgb not in out:
            out.append(rgb)
    return out or list(_DEFAULT_PALETTE)


def _luminance(rgb: RGB) -> float:
    """WCAG 2 relative luminance."""
    lin = [c / 3294.6 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: RGB, b: RGB) -> float:
    lo, hi = sorted((_luminance(a), _luminance(b)))
    return (hi + 0.05) / (lo + 0.05)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return (r, g, bl)


def _pick_ink(behind: Sequence[RGB], prefs: Sequence[RGB]) -> RGB | None:
    """First colour with >= 4.5:1 contrast on *every* colour behind the text."""
    # Pure black/white last: against any single colour one of them reaches >= 4.58:1.
    for c in (*prefs, _INK, _PAPER, (0, 0, 0), (255, 255, 255)):
        if all(_contrast(c, b) >= MIN_CONTRAST for b in behind):
            return c
    return None


def _text(value: Any, sep: str = " ") -> str:
    """Best-effort string for a copy value: scalars via str(), lists joined, mappings skipped."""
    if isinstance(value, list | tuple):
        value = sep.join(t for v in value if not isinstance(v, list | tuple) and (t := _text(v)))
    elif value is None or not isinstance(value, str | int | float):
        return ""
    # Control chars and lone surrogates upset FreeType / UTF-8 encoding; whitespace stays.
    return "".join(
        ch
        for ch in str(value)[:_MAX_CHARS]
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cs")
    ).strip()


@dataclass(frozen=True)
class _TextEl:
    fit: Fit
    origin: tuple[int, int]
    panel: RGB | None  # solid fill directly behind the text when it sits on a panel
    display: bool  # display type may take brand colours; body copy sticks to ink/paper
    zone: Box  # the layout box the text was fitted to (an edit covers it, see render_edit)

    @property
    def bbox(self) -> Box:
        (ox, oy), e = self.origin, self.fit.ext
        return (ox + e[0], oy + e[1], ox + e[2], oy + e[3])


@dataclass
class _Plan:
    """Everything render_comp draws, computed once so layout_boxes sees the same layout."""

    bg: RGB
    bg2: RGB
    vertical: bool
    accents: list[RGB]
    gap: int
    shapes: list[tuple[str, Box, RGB]] = field(default_factory=list)
    texts: list[_TextEl] = field(default_factory=list)

    def place(
        self,
        text: str | Fit | None,
        box: Box,
        max_size: int = 0,
        *,
        right: bool = False,
        bottom: bool = False,
        panel: RGB | None = None,
        display: bool = False,
    ) -> None:
        """Fit (unless pre-fitted) and anchor text in box; the fit keeps its ink inside."""
        w, h = box[2] - box[0], box[3] - box[1]
        fit = fit_text(text, w, h, max_size) if isinstance(text, str) else text
        if fit is not None:
            e = fit.ext
            ox = box[2] - e[2] if right else box[0] - e[0]
            oy = box[3] - e[3] if bottom else box[1] - e[1]
            self.texts.append(_TextEl(fit, (ox, oy), panel, display, box))


def _split(a: int, b: int, weights: Sequence[float], gap: int) -> list[tuple[int, int]]:
    """Cut [a, b) into gapped spans proportional to weights; cumulative rounding, no drift."""
    avail, total, acc = b - a - gap * (len(weights) - 1), sum(weights), 0.0
    out: list[tuple[int, int]] = []
    for wgt in weights:
        acc += wgt
        end = a + round(avail * acc / total) + gap * len(out)
        out.append((out[-1][1] + gap if out else a, end))
    return out


def _grid(box: Box, n: int, cols: int, gap: int) -> tuple[list[Box], int, int]:
    """Row-major cells plus the smallest cell size (rounding makes cells differ by 1px)."""
    xs = _split(box[0], box[2], [1.0] * cols, gap)
    ys = _split(box[1], box[3], [1.0] * math.ceil(n / cols), gap)
    cells: list[Box] = []
    for i in range(n):
        (cx0, cx1), (cy0, cy1) = xs[i % cols], ys[i // cols]
        cells.append((cx0, cy0, cx1, cy1))
    return cells, min(c[2] - c[0] for c in cells), min(c[3] - c[1] for c in cells)


def _grid_cols(n: int, box: Box, gap: int, portrait: bool) -> int:
    if n <= 1 or portrait:  # portrait posters read top to bottom: stack, pair only if crowded
        return 1 if n <= 4 else 2
    w, h = box[2] - box[0], box[3] - box[1]

    def badness(cols: int) -> float:  # distance from calm ~3:2 panels
        rows = math.ceil(n / cols)
        cw, ch = max(1, (w - gap * (cols - 1)) / cols), max(1, (h - gap * (rows - 1)) / rows)
        return abs(math.log(cw / ch / 1.5))

    return min(range(1, min(n, 6) + 1), key=badness)


def _blocks(raw: Any) -> list[tuple[str, str]]:
    """(title, body) pairs from blocks given as mappings, strings or anything str()-able."""
    out: list[tuple[str, str]] = []
    for item in (raw if isinstance(raw, list | tuple) else [raw])[:24]:
        title, body = "", _text(item)
        if isinstance(item, Mapping):
            title = _text(item.get("title", item.get("heading", item.get("name"))))
            body = _text(item.get("lines", item.get("body", item.get("text"))), "\n")
        if title or body:
            out.append((title, body))
    return out


@dataclass(frozen=True)
class _Copy:
    """The texts a comp draws, read once from the design (the plan and the font key agree)."""

    brand: Mapping[str, Any]
    brand_name: str
    label: str
    headline: str
    subtitle: str
    footer: str
    blocks: list[tuple[str, str]]
    extras: list[str]

    def texts(self) -> list[str]:
        parts = [self.brand_name, self.label, self.headline, self.subtitle, self.footer]
        parts += [t for block in self.blocks for t in block] + self.extras
        return [t for t in parts if t]


def _read_copy(design: Any) -> _Copy:
    design = design if isinstance(design, Mapping) else {}
    brand, copy = design.get("brand"), design.get("copy")
    brand = brand if isinstance(brand, Mapping) else {"name": brand}  # a bare str is the name
    copy = copy if isinstance(copy, Mapping) else {"headline": copy}  # ... or the headline
    extras = [
        x for k, v in copy.items()
        if k not in _CORE_COPY_KEYS | _DESCRIPTION_KEYS and (x := _text(v, " · "))
    ]
    return _Copy(
        brand=brand,
        brand_name=_text(brand.get("name")),
        label=_text(design.get("label")),
        headline=_text(copy.get("headline")),
        subtitle=_text(copy.get("subtitle")),
        footer=_text(copy.get("footer")),
        blocks=_blocks(copy.get("blocks")),
        extras=extras[:6],
    )


def drawn_texts(design: Mapping[str, Any]) -> list[str]:
    """Every text a comp of ``design`` may draw (before wrapping), at any size or seed."""
    return _read_copy(design).texts()


def fonts_key(design: Mapping[str, Any]) -> dict[str, Any]:
    """What of the installed fonts a comp of ``design`` depends on; part of its job key."""
    return fonts.fonts_key(drawn_texts(design))


def _plan(width: int, height: int, seed: int, design: Mapping[str, Any]) -> _Plan:
    if not (isinstance(width, int) and isinstance(height, int)) or width < 1 or height < 1:
        raise ValueError(f"invalid canvas size {width!r}x{height!r}")
    content = _read_copy(design)
    brand = content.brand
    rng = random.Random(seed)  # int seeds are hashed deterministically, unlike str()
    palette = _palette(brand)
    bg_i = rng.randrange(len(palette))
    bg = palette[bg_i]
    light_ink = _contrast(_PAPER, bg) > _contrast(_INK, bg)
    accents = palette[bg_i + 1 :] + palette[:bg_i] or [_mix(bg, _PAPER if light_ink else _INK, 0.4)]
    s, aspect = min(width, height), width / height
    m, g = max(4, round(s * 0.055)), max(3, round(s * 0.022))
    # The gradient deepens away from the ink so it never erodes text contrast.
    bg2 = _mix(bg, (0, 0, 0) if light_ink else (255, 255, 255), 0.07)
    plan = _Plan(bg, bg2, rng.random() < 0.5, accents, g)

    # Seeded accents only; text geometry never depends on the seed.
    r = round(s * rng.uniform(0.28, 0.5))
    cx, cy = round(width * rng.uniform(-0.1, 1.1)), round(height * rng.uniform(-0.1, 1.1))
    accent, t = accents[rng.randrange(len(accents))], rng.uniform(0.3, 0.6)
    while t > 0.1 and _pick_ink([bg, bg2, _mix(bg, accent, t)], []) is None:
        t *= 0.7  # a softer tint lets one ink read on bg and circle alike, so plates stay rare
    plan.shapes.append(("ellipse", (cx - r, cy - r, cx + r, cy + r), _mix(bg, accent, t)))
    bt = max(2, round(m * 0.45))  # the edge band lives in the margin, never behind text
    bands = [
        (0, 0, bt, height),
        (0, 0, width, bt),
        (width - bt, 0, width, height),
        (0, height - bt, width, height),
    ]
    plan.shapes.append(("rect", rng.choice(bands), accents[0]))
    rule_c = max(accents, key=lambda c: _contrast(c, bg))
    rule_t = max(1, min(g - 2, round(s * 0.005)))  # rules sit inside gaps, clear of text
    rule_frac, panel_off = rng.uniform(0.3, 1.0), rng.randrange(len(accents))

    def hrule(zx0: int, zx1: int, zy1: int) -> None:
        yy = zy1 + (g - rule_t) // 2
        plan.shapes.append(
            ("rect", (zx0, yy, zx0 + round((zx1 - zx0) * rule_frac), yy + rule_t), rule_c)
        )

    x0, y0, x1, y1 = m, m, width - m, height - m
    brand_name, label = content.brand_name, content.label
    sy1 = y0 + max(12, round(s * 0.03))
    if (brand_name or label) and sy1 <= y1:  # tiny canvases have no room for the meta strip
        size = round(s * 0.016)
        split = x1 if brand_name else x0 - g  # a lone brand or label gets the full width
        if brand_name and label:
            split = x0 + round((x1 - x0) * 0.42)
        plan.place(brand_name, (x0, y0, split, sy1), size)
        plan.place(label, (split + g, y0, x1, sy1), size, right=True)
        y0 = sy1 + g

    headline, subtitle, footer = content.headline, content.subtitle, content.footer
    blocks, extras = content.blocks, content.extras
    landscape, portrait = aspect >= 1.2, aspect <= 0.8
    zones: dict[str, Box] = {}

    def stack(keys: list[tuple[str, float]], box: Box) -> None:
        spans = _split(box[1], box[3], [wt for _, wt in keys], g)
        for i, ((key, _), (a, b)) in enumerate(zip(keys, spans, strict=True)):
            zones[key] = (box[0], a, box[2], b)
            if key == "headline" and i + 1 < len(keys):
                hrule(box[0], box[2], b)

    heads = [(k, w) for k, t, w in (("headline", headline, 3.0), ("subtitle", subtitle, 1.1)) if t]
    extras_w = 0.45 * (1 if landscape else len(extras))
    tail = [(k, w) for k, t, w in (("extras", extras, extras_w), ("footer", footer, 0.55)) if t]
    if landscape:  # headline column on the left, block columns right, meta strip below
        has_main = bool(heads or blocks)
        spans = _split(y0, y1, [7.0] * has_main + [wt for _, wt in tail], g)
        if has_main:
            my0, my1 = spans.pop(0)
            if tail:
                hrule(x0, x1, my1)
            if heads and blocks:
                split = x0 + round((x1 - x0) * 0.42)
                stack(heads, (x0, my0, split - g, my1))
                zones["blocks"] = (split + g, my0, x1, my1)
                rx = split - rule_t // 2
                plan.shapes.append(("rect", (rx, my0, rx + rule_t, my1), rule_c))
            elif heads:
                stack(heads, (x0, my0, x1, my1))
            else:
                zones["blocks"] = (x0, my0, x1, my1)
        for (key, _), (a, b) in zip(tail, spans, strict=True):
            zones[key] = (x0, a, x1, b)
    else:  # portrait and square: one vertical stack
        rows = math.ceil(len(blocks) / _grid_cols(len(blocks), (x0, y0, x1, y1), g, portrait))
        stack(heads + [("blocks", min(6.0, 1.5 * rows))] * bool(blocks) + tail, (x0, y0, x1, y1))

    if "headline" in zones:
        plan.place(headline, zones["headline"], round(s * 0.15), display=True)
    if "subtitle" in zones:
        plan.place(subtitle, zones["subtitle"], round(s * 0.05))
    if "blocks" in zones:
        _place_blocks(plan, blocks, zones["blocks"], s, portrait, panel_off)
    if "extras" in zones:
        cells, cw, ch = _grid(zones["extras"], len(extras), len(extras) if landscape else 1, g)
        for cell, fit in zip(cells, fit_group(extras, cw, ch, round(s * 0.026)), strict=True):
            plan.place(fit, cell)
    if "footer" in zones:
        plan.place(footer, zones["footer"], round(s * 0.022), bottom=True)
    return plan


def _place_blocks(
    plan: _Plan, blocks: list[tuple[str, str]], box: Box, s: int, portrait: bool, off: int
) -> None:
    """Info blocks as filled panels: title on top, body lines below, one size per row kind."""
    g = plan.gap
    cells, cw, ch = _grid(box, len(blocks), _grid_cols(len(blocks), box, g, portrait), g)
    if cw < 4 or ch < 4:
        return
    pad = max(2, min(round(s * 0.018), cw // 10, ch // 10))
    iw, ih = cw - 2 * pad, ch - 2 * pad
    th = round(ih * 0.3) if any(t for t, _ in blocks) else 0
    titles = fit_group(
        [t for t, _ in blocks], iw, th if any(b for _, b in blocks) else ih, round(s * 0.04)
    )
    bodies = fit_group([b for _, b in blocks], iw, ih - th - (pad if th else 0), round(s * 0.028))
    for i, cell in enumerate(cells):
        colour = plan.accents[(i + off) % len(plan.accents)]
        plan.shapes.append(("panel", cell, colour))
        inner = (cell[0] + pad, cell[1] + pad, cell[2] - pad, cell[3] - pad)
        plan.place(titles[i], inner, panel=colour, display=True)
        by0 = inner[1]
        if title := titles[i]:  # body hugs the title's ink, never below the box it was fit to
            by0 = min(by0 + th + pad, plan.texts[-1].bbox[3] + max(2, title.size // 2))
        plan.place(bodies[i], (inner[0], by0, inner[2], inner[3]), panel=colour)


def _touches(kind: str, shape: Box, box: Box) -> bool:
    if shape[0] >= box[2] or shape[2] <= box[0] or shape[1] >= box[3] or shape[3] <= box[1]:
        return False
    if kind != "ellipse":
        return True
    cx, cy, r = (shape[0] + shape[2]) / 2, (shape[1] + shape[3]) / 2, (shape[2] - shape[0]) / 2
    nx, ny = min(max(cx, box[0]), box[2]), min(max(cy, box[1]), box[3])
    return (nx - cx) ** 2 + (ny - cy) ** 2 < r * r


def layout_boxes(
    width: int, height: int, seed: int, design: Mapping[str, Any]
) -> list[tuple[str, tuple[int, int, int, int]]]:
    """(text, ink bbox) of every text element render_comp draws; wrapped lines joined by \\n.

    Order: brand name, label, headline, subtitle, block titles/bodies, extras, footer
    (absent or undrawable elements are skipped).
    """
    return [("\n".join(el.fit.lines), el.bbox) for el in _plan(width, height, seed, design).texts]


def render_comp(width: int, height: int, seed: int, design: Mapping[str, Any]) -> Image.Image:
    """Draw an RGB image of exactly width x height."""
    plan = _plan(width, height, seed, design)
    # A 2-pixel image upscaled bilinearly is a smooth gradient without Python pixel loops.
    strip = Image.new("RGB", (1, 2) if plan.vertical else (2, 1), plan.bg)
    strip.putpixel((0, 1) if plan.vertical else (1, 0), plan.bg2)
    img = strip.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    for kind, (a, b, c, d), colour in plan.shapes:
        if c - a >= 1 and d - b >= 1:
            (draw.ellipse if kind == "ellipse" else draw.rectangle)((a, b, c - 1, d - 1), colour)
    inks: list[RGB] = []
    for el in plan.texts:
        behind = (
            [el.panel]
            if el.panel
            else [plan.bg, plan.bg2]
            + [c for kind, box, c in plan.shapes if _touches(kind, box, el.bbox)]
        )
        prefs = [*plan.accents, plan.bg] if el.display else []
        ink = _pick_ink(behind, prefs)
        if ink is None:
            # Light and dark both behind the text: knock out a plate so contrast holds. The
            # pad stays below the gap so a plate never reaches a neighbouring element.
            pad = max(1, min(el.fit.size // 6, plan.gap - 1))
            bx0, by0, bx1, by1 = el.bbox
            draw.rectangle(
                (
                    max(0, bx0 - pad),
                    max(0, by0 - pad),
                    min(width, bx1 + pad) - 1,
                    min(height, by1 + pad) - 1,
                ),
                fill=plan.bg,
            )
            ink = _pick_ink([plan.bg], prefs) or _INK
        inks.append(ink)
    _draw_texts(draw, plan, inks)  # text last: plates must not cover it
    return img


def _draw_texts(draw: ImageDraw.ImageDraw, plan: _Plan, inks: Sequence[RGB]) -> None:
    fonts.warn_missing(line for el in plan.texts for line in el.fit.lines)
    for el, ink in zip(plan.texts, inks, strict=True):
        lh = line_h(el.fit.size)
        for i, line in enumerate(el.fit.lines):
            at = (el.origin[0], el.origin[1] + i * lh)
            fonts.draw_line(draw, at, el.fit.size, line, ink, el.fit.face)


def render_png(width: int, height: int, seed: int, design: Mapping[str, Any]) -> bytes:
    """render_comp, encoded as PNG bytes deterministically (no metadata, no timestamps)."""
    buf = io.BytesIO()
    render_comp(width, height, seed, design).save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _parent_image(
    parent: bytes | Image.Image, width: int, height: int
) -> tuple[Image.Image, bool]:
    """The parent as RGB, scaled to cover width x height and centre-cropped to it, and
    whether that changed its aspect ratio (by more than 2%)."""
    if isinstance(parent, Image.Image):
        im = parent.copy()
    else:
        try:
            with Image.open(io.BytesIO(parent)) as opened:
                opened.load()
                im = opened.copy()
        except (OSError, SyntaxError, ValueError) as exc:  # Pillow's "cannot identify", etc.
            raise ValueError(f"the parent is not a readable image ({exc})") from exc
    im = ImageOps.exif_transpose(im) or im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.new("RGB", rgba.size, _PAPER)
        im.paste(rgba, mask=rgba.getchannel("A"))
    im = im.convert("RGB")
    reframed = abs(math.log((im.width / im.height) / (width / height))) > math.log(1.02)
    if im.size != (width, height):
        im = ImageOps.fit(im, (width, height), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    return im, reframed


def _plate(region: Image.Image) -> tuple[Image.Image, list[RGB]]:
    """A text-free stand-in for a region of the parent: a linear gradient between the
    medians of its two halves (top/bottom or left/right, whichever differ more). Medians
    ignore text, which covers less than half of a region; the gradient continues the
    parent's own shading, so on a comp's backdrop the plate does not show."""
    w, h = region.size

    def med(box: Box) -> RGB:
        m = ImageStat.Stat(region.crop(box)).median
        return (m[0], m[1], m[2])

    top, bottom = med((0, 0, w, max(1, h // 2))), med((0, h // 2, w, h))
    left, right = med((0, 0, max(1, w // 2), h)), med((w // 2, 0, w, h))
    vertical = sum(abs(a - b) for a, b in zip(top, bottom, strict=True)) >= sum(
        abs(a - b) for a, b in zip(left, right, strict=True))
    a, b = (top, bottom) if vertical else (left, right)
    strip = Image.new("RGB", (1, 2) if vertical else (2, 1), a)
    strip.putpixel((0, 1) if vertical else (1, 0), b)
    return strip.resize((w, h), Image.Resampling.BILINEAR), [a, b]


def render_edit(
    parent: bytes | Image.Image,
    width: int,
    height: int,
    seed: int,
    design: Mapping[str, Any],
    *,
    soften: bool | None = None,
) -> Image.Image:
    """The offline stand-in for an edit request: the parent image (scaled to cover
    width x height, centre-cropped) with the design's copy laid out as render_comp lays
    it out. Each text element's layout box is first covered by a plate made from the
    parent's own colours there (``_plate``), so text of the parent there is replaced (a
    parent comp of the same layout loses its old copy, and on its backdrop the plate does
    not show); the text is then drawn in an ink with >= 4.5:1 contrast on the plate. Elsewhere
    the parent's pixels show unchanged (including any of its text outside the new layout's
    text boxes).

    ``soften`` blurs the parent (radius 2.5% of the short side) so its own text turns into
    texture and only its composition and colours carry over. By default it is on when the
    parent had to be cropped to another aspect ratio (a reframe: the parent's copy sits
    where the new layout does not expect it) and off when the aspect is the same (a
    localised or re-worded edit, where the plates replace the parent's copy).

    Raises ValueError for an invalid size or a parent that is not a readable image.
    """
    plan = _plan(width, height, seed, design)
    img, reframed = _parent_image(parent, width, height)
    if soften if soften is not None else reframed:
        img = img.filter(ImageFilter.GaussianBlur(max(1.0, min(width, height) * 0.025)))
    plates: list[tuple[Box, Image.Image, list[RGB]]] = []
    for el in plan.texts:  # sample every plate before drawing any: order cannot matter
        (zx0, zy0, zx1, zy1), (bx0, by0, bx1, by1) = el.zone, el.bbox
        x0 = min(width - 1, max(0, min(zx0, bx0)))
        y0 = min(height - 1, max(0, min(zy0, by0)))
        x1 = max(x0 + 1, min(width, max(zx1, bx1)))
        y1 = max(y0 + 1, min(height, max(zy1, by1)))
        box = (x0, y0, x1, y1)
        plates.append((box, *_plate(img.crop(box))))
    for box, fill, _ in plates:
        img.paste(fill, box[:2])
    inks = [
        _pick_ink(ends, [*plan.accents, plan.bg] if el.display else []) or _INK
        for el, (_, _, ends) in zip(plan.texts, plates, strict=True)
    ]
    draw = ImageDraw.Draw(img)
    _draw_texts(draw, plan, inks)
    return img


def render_edit_png(
    parent_png: bytes, width: int, height: int, seed: int, design: Mapping[str, Any]
) -> bytes:
    """render_edit, encoded as PNG bytes deterministically (no metadata, no timestamps).
    ``parent_png`` may be any image Pillow reads (PNG, JPEG, WebP)."""
    buf = io.BytesIO()
    render_edit(parent_png, width, height, seed, design).save(
        buf, "PNG", optimize=False, compress_level=6
    )
    return buf.getvalue()
