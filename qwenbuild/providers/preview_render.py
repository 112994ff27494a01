"""Offline layout-comp renderer behind the built-in ``preview`` image provider.

The real providers ask Qwen-Image for a finished poster; this one draws a
deterministic Swiss-grid *comp* with Pillow so designers can check how their
copy fits at every aspect ratio without a GPU or network.  The PNG bytes must be
stable because they are cached under a key that includes ``RENDERER_VERSION``.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
import random
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from PIL import Image, ImageColor, ImageDraw, ImageFont

RENDERER_VERSION = 1  # bump when the drawing changes (it is part of a cache key)

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

MIN_FONT = 8
MIN_CONTRAST = 4.5
ELLIPSIS = "\u2026"
_MAX_CHARS = 1500  # far beyond what fits; caps wrap cost for pathological copy
_INK: RGB = (18, 18, 20)
_PAPER: RGB = (250, 248, 243)
_CORE_COPY_KEYS = frozenset({"headline", "subtitle", "blocks", "footer"})

_NAMED_COLOURS: dict[str, RGB] = {
    "teal": (0, 128, 128), "saffron": (244, 196, 48), "cream": (246, 238, 218),
    "midnight blue": (28, 36, 74), "midnight": (28, 36, 74), "coral": (255, 127, 80),
    "gold": (212, 175, 55), "deep indigo": (49, 39, 131), "indigo": (75, 0, 130),
    "rose pink": (240, 128, 160), "rose": (226, 86, 120), "sage green": (156, 175, 136),
    "sage": (156, 175, 136), "deep forest green": (22, 64, 42), "forest green": (34, 100, 52),
    "rust red": (183, 65, 14), "rust": (183, 65, 14), "aged gold": (190, 150, 70),
    "ivory": (255, 252, 235), "brass": (181, 166, 66), "jade green": (0, 168, 107),
    "jade": (0, 168, 107), "champagne": (247, 231, 206), "red": (214, 40, 40),
    "magenta": (202, 31, 123), "cyan": (0, 183, 235), "black": (17, 17, 17),
    "white": (255, 255, 255), "off white": (248, 246, 240), "charcoal": (54, 62, 70),
    "navy": (20, 33, 61), "mustard": (225, 173, 1), "terracotta": (226, 114, 91),
    "olive": (110, 112, 40), "burgundy": (128, 0, 32), "blush": (244, 194, 194),
    "sand": (214, 196, 150), "slate": (90, 105, 120), "mint": (170, 220, 190),
    "lavender": (200, 190, 230), "peach": (255, 203, 164), "plum": (142, 69, 133),
    "emerald": (0, 155, 119), "sky blue": (135, 206, 235), "electric blue": (44, 117, 255),
    "orange": (245, 130, 32), "yellow": (250, 210, 40), "green": (46, 139, 87),
    "blue": (30, 90, 200), "purple": (110, 60, 160), "pink": (240, 140, 180),
    "grey": (128, 128, 128), "gray": (128, 128, 128), "beige": (232, 220, 196),
    "copper": (184, 115, 51), "silver": (192, 192, 192), "crimson": (190, 20, 50),
    "maroon": (110, 20, 35), "turquoise": (48, 200, 190), "bone": (227, 218, 201),
}
# Cream, midnight, coral, teal, saffron: readable in any bg/accent combination.
_DEFAULT_PALETTE: tuple[RGB, ...] = (
    (246, 238, 218), (28, 36, 74), (255, 127, 80), (0, 128, 128), (244, 196, 48),
)


# --------------------------------------------------------------------- colour


def _parse_colour(value: Any) -> RGB | None:
    """Map a palette entry (name, hex, CSS string or RGB triple) to RGB; None if unusable."""
    if isinstance(value, list | tuple) and len(value) in (3, 4):
        if all(isinstance(c, int) and not isinstance(c, bool) for c in value[:3]):
            r, g, b = (max(0, min(255, c)) for c in value[:3])
            return (r, g, b)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    name = " ".join(str(value).lower().replace("-", " ").replace("_", " ").split())[:80]
    if not name:
        return None
    if name in _NAMED_COLOURS:
        return _NAMED_COLOURS[name]
    for candidate in (name, name.replace(" ", "")):
        try:
            rgb = ImageColor.getrgb(candidate)
            return (rgb[0], rgb[1], rgb[2])
        except ValueError:
            pass
    # "dusty sage green" -> "sage green": the head noun usually carries the hue.
    words = name.split()
    for i in range(1, len(words)):
        tail = " ".join(words[i:])
        if tail in _NAMED_COLOURS:
            return _NAMED_COLOURS[tail]
    # hashlib (not hash()) so the colour survives PYTHONHASHSEED and process restarts.
    digest = hashlib.sha256(name.encode("utf-8", "replace")).digest()
    hue, light, sat = digest[0] / 255, 0.35 + digest[1] / 255 * 0.3, 0.45 + digest[2] / 255 * 0.35
    r, g, b = colorsys.hls_to_rgb(hue, light, sat)
    return (round(r * 255), round(g * 255), round(b * 255))


def _palette(brand: Mapping[str, Any]) -> list[RGB]:
    raw = brand.get("palette")
    if isinstance(raw, str):
        raw = raw.split(",")
    elif isinstance(raw, Mapping):
        raw = list(raw.values())
    if not isinstance(raw, list | tuple):
        raw = []
    out: list[RGB] = []
    for item in raw[:12]:
        rgb = _parse_colour(item)
        if rgb is not None and rgb not in out:
            out.append(rgb)
    return out or list(_DEFAULT_PALETTE)


def _luminance(rgb: RGB) -> float:
    """WCAG relative luminance."""
    def lin(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2])


def _contrast(a: RGB, b: RGB) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)))
    return (lb + 0.05) / (la + 0.05)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return (r, g, bl)


def _pick_ink(behind: Sequence[RGB], prefs: Sequence[RGB]) -> RGB | None:
    """First colour readable (>= 4.5:1) on *every* colour behind the text, brand colours first."""
    # Pure black/white come last: against any colour one of them reaches >= 4.58:1.
    for c in (*prefs, _INK, _PAPER, (0, 0, 0), (255, 255, 255)):
        if all(_contrast(c, b) >= MIN_CONTRAST for b in behind):
            return c
    return None


# ----------------------------------------------------------------------- text


@lru_cache(maxsize=512)
def _font(size: int) -> Font:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=16384)
def _advance(size: int, text: str) -> float:
    # Words recur across the size search and across blocks, so caching pays off.
    return _font(size).getlength(text)


def _line_h(size: int) -> int:
    return max(size + 1, round(size * 1.22))


def _text(value: Any, sep: str = " ") -> str:
    """Best-effort string for a copy value: scalars via str(), lists joined, mappings skipped."""
    if isinstance(value, list | tuple):
        parts = [_text(v) for v in value if not isinstance(v, list | tuple | Mapping)]
        value = sep.join(p for p in parts if p)
    elif value is None or not isinstance(value, str | int | float):
        return ""
    text = str(value)[:_MAX_CHARS]
    # Control chars and lone surrogates can break FreeType/encoding; whitespace stays.
    return "".join(
        ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cs")
    ).strip()


def _paragraphs(text: str) -> list[list[str]]:
    return [words for p in text.split("\n") if (words := p.split())]


@dataclass(frozen=True)
class _Fit:
    size: int
    lines: tuple[str, ...]
    ext: Box  # ink extent relative to the origin of the first line


def _extent(size: int, lines: Sequence[str]) -> Box:
    font, lh = _font(size), _line_h(size)
    x0 = y0 = 1 << 30
    x1 = y1 = -(1 << 30)
    for i, line in enumerate(lines):
        left, top, right, bottom = font.getbbox(line)
        x0, y0 = min(x0, math.floor(left)), min(y0, math.floor(top) + i * lh)
        x1, y1 = max(x1, math.ceil(right)), max(y1, math.ceil(bottom) + i * lh)
    return (x0, y0, x1, y1)


def _fits(size: int, lines: Sequence[str], w: int, h: int) -> Box | None:
    ext = _extent(size, lines)
    return ext if ext[2] - ext[0] <= w and ext[3] - ext[1] <= h else None


def _break_word(word: str, size: int, w: int) -> list[str] | None:
    """Split an over-long word into pieces that each fit ``w``; None if one glyph can't."""
    pieces: list[str] = []
    while word:
        lo, hi = 1, len(word)
        if _advance(size, word[:1]) > w:
            return None
        while lo < hi:  # longest fitting prefix
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if _advance(size, word[:mid]) <= w else (lo, mid - 1)
        pieces.append(word[:lo])
        word = word[lo:]
    return pieces


def _wrap(
    paras: list[list[str]], size: int, w: int, limit: int, allow_break: bool = True
) -> list[str] | None:
    """Greedy word wrap; stops once more than ``limit`` lines exist (they can't fit anyway)."""
    lines: list[str] = []
    space = _advance(size, " ")
    for words in paras:
        cur, cur_w = "", 0.0
        for word in words:
            ww = _advance(size, word)
            if cur and cur_w + space + ww <= w:
                cur, cur_w = f"{cur} {word}", cur_w + space + ww
                continue
            if cur:
                lines.append(cur)
            if ww <= w:
                cur, cur_w = word, ww
            else:
                pieces = _break_word(word, size, w) if allow_break else None
                if pieces is None:
                    return None
                lines.extend(pieces[:-1])
                cur, cur_w = pieces[-1], _advance(size, pieces[-1])
            if len(lines) > limit:
                return lines
        if cur:
            lines.append(cur)
        if len(lines) > limit:
            return lines
    return lines


def _fit(text: str, w: int, h: int, max_size: int) -> _Fit | None:
    """Largest size whose wrapped text fits w x h; else min size truncated with an ellipsis."""
    paras = _paragraphs(text)
    if not paras or w < 1 or h < 1:
        return None
    # A smaller size that keeps words whole reads better than a larger one that splits them.
    for allow_break in (False, True):
        best: _Fit | None = None
        lo, hi = MIN_FONT, max(MIN_FONT, max_size)
        while lo <= hi:  # binary search: wrapping makes fit ~monotonic in size
            mid = (lo + hi) // 2
            limit = h // _line_h(mid) + 1
            lines = _wrap(paras, mid, w, limit, allow_break)
            ext = _fits(mid, lines, w, h) if lines and len(lines) <= limit else None
            if lines and ext:
                best, lo = _Fit(mid, tuple(lines), ext), mid + 1
            else:
                hi = mid - 1
        if best:
            return best
    return _truncate(paras, w, h)


def _truncate(paras: list[list[str]], w: int, h: int) -> _Fit | None:
    size = MIN_FONT
    limit = h // _line_h(size) + 1
    lines = _wrap(paras, size, w, limit)
    if not lines:
        return None
    if len(lines) <= limit and (ext := _fits(size, lines, w, h)):
        return _Fit(size, tuple(lines), ext)
    k = min(len(lines), limit)
    while k and not _fits(size, lines[:k], w, h):
        k -= 1
    while k:
        stem = lines[k - 1]
        while stem and _advance(size, stem.rstrip() + ELLIPSIS) > w:
            stem = stem[:-1]
        cand = [*lines[: k - 1], stem.rstrip() + ELLIPSIS]
        if ext := _fits(size, cand, w, h):
            return _Fit(size, tuple(cand), ext)
        k -= 1
    return None


def _fit_group(texts: Sequence[str], w: int, h: int, max_size: int) -> list[_Fit | None]:
    """Fit sibling texts (block titles, block bodies) at one shared size so panels match."""
    fits = [_fit(t, w, h, max_size) for t in texts]
    sizes = [f.size for f in fits if f]
    if not sizes:
        return fits
    common = min(sizes)
    return [
        (_fit(t, w, h, common) if f and f.size > common else f)
        for t, f in zip(texts, fits, strict=True)
    ]


# --------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _TextEl:
    fit: _Fit
    origin: tuple[int, int]
    panel: RGB | None  # solid fill directly behind the text, when it sits on a panel
    display: bool  # display type may use brand colours; body copy prefers ink/paper

    @property
    def bbox(self) -> Box:
        (ox, oy), e = self.origin, self.fit.ext
        return (ox + e[0], oy + e[1], ox + e[2], oy + e[3])


@dataclass
class _Plan:
    bg: RGB
    bg2: RGB
    vertical: bool
    accents: list[RGB]
    gap: int
    shapes: list[tuple[str, Box, RGB]] = field(default_factory=list)
    texts: list[_TextEl] = field(default_factory=list)

    def place(
        self, fit: _Fit | None, box: Box, *, right: bool = False, bottom: bool = False,
        panel: RGB | None = None, display: bool = False,
    ) -> None:
        """Anchor a fitted text inside box; the fit guarantees its ink stays inside."""
        if fit is None:
            return
        e = fit.ext
        ox = box[2] - e[2] if right else box[0] - e[0]
        oy = box[3] - e[3] if bottom else box[1] - e[1]
        self.texts.append(_TextEl(fit, (ox, oy), panel, display))


def _split(a: int, b: int, weights: Sequence[float], gap: int) -> list[tuple[int, int]]:
    """Cut [a, b) into spans proportional to weights with gaps; cumulative rounding, no drift."""
    avail, total = b - a - gap * (len(weights) - 1), sum(weights)
    out: list[tuple[int, int]] = []
    pos, acc = a, 0.0
    for wgt in weights:
        acc += wgt
        end = a + round(avail * acc / total) + gap * len(out)
        out.append((pos, end))
        pos = end + gap
    return out


def _grid(box: Box, n: int, cols: int, gap: int) -> list[Box]:
    rows = math.ceil(n / cols)
    xs = _split(box[0], box[2], [1.0] * cols, gap)
    ys = _split(box[1], box[3], [1.0] * rows, gap)
    cells = []
    for i in range(n):
        (cx0, cx1), (cy0, cy1) = xs[i % cols], ys[i // cols]
        cells.append((cx0, cy0, cx1, cy1))
    return cells


def _cell_size(cells: Sequence[Box]) -> tuple[int, int]:
    """Smallest cell extent: rounding makes cells differ by a pixel, fit for the tightest."""
    return min(c[2] - c[0] for c in cells), min(c[3] - c[1] for c in cells)


def _grid_cols(n: int, box: Box, gap: int, portrait: bool) -> int:
    if n <= 1:
        return 1
    if portrait:  # portrait posters read top to bottom: stack, pair up only when crowded
        return 1 if n <= 4 else 2
    w, h = box[2] - box[0], box[3] - box[1]
    scores = []
    for cols in range(1, min(n, 6) + 1):
        rows = math.ceil(n / cols)
        cw, ch = max(1, (w - gap * (cols - 1)) / cols), max(1, (h - gap * (rows - 1)) / rows)
        scores.append((abs(math.log(cw / ch / 1.5)), cols))  # ~3:2 panels look calm
    return min(scores)[1]


def _blocks(raw: Any) -> list[tuple[str, str]]:
    if isinstance(raw, Mapping | str | int | float):
        raw = [raw]
    if not isinstance(raw, list | tuple):
        return []
    out: list[tuple[str, str]] = []
    for item in raw[:24]:
        if isinstance(item, Mapping):
            title = _text(item.get("title", item.get("heading", item.get("name"))))
            lines = item.get("lines", item.get("body", item.get("text")))
            if isinstance(lines, list | tuple):
                body = "\n".join(t for x in lines if (t := _text(x)))
            else:
                body = _text(lines)
        else:
            title, body = "", _text(item)
        if title or body:
            out.append((title, body))
    return out


def _as_mapping(value: Any, key: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    return {key: value} if isinstance(value, str) else {}


def _plan(width: int, height: int, seed: int, design: Mapping[str, Any]) -> _Plan:
    if not (isinstance(width, int) and isinstance(height, int)) or width < 1 or height < 1:
        raise ValueError(f"invalid canvas size {width!r}x{height!r}")
    design = design if isinstance(design, Mapping) else {}
    brand = _as_mapping(design.get("brand"), "name")
    copy = _as_mapping(design.get("copy"), "headline")
    rng = random.Random(seed)
    palette = _palette(brand)
    bg_i = rng.randrange(len(palette))
    bg = palette[bg_i]
    contra = _PAPER if _luminance(bg) < 0.35 else _INK
    accents = palette[bg_i + 1 :] + palette[:bg_i] or [_mix(bg, contra, 0.4)]
    s, aspect = min(width, height), width / height
    m, g = max(4, round(s * 0.055)), max(3, round(s * 0.022))
    plan = _Plan(bg, _mix(bg, contra, 0.07), rng.random() < 0.5, accents, g)

    x0, y0, x1, y1 = m, m, width - m, height - m

    # Seeded accents first so text geometry never depends on the seed.
    r = round(s * rng.uniform(0.28, 0.5))
    cx, cy = round(width * rng.uniform(-0.1, 1.1)), round(height * rng.uniform(-0.1, 1.1))
    accent, t = accents[rng.randrange(len(accents))], rng.uniform(0.3, 0.6)
    # Keep the tint on bg's side of mid-grey so one ink reads on both; plates stay rare.
    while t > 0.1 and _pick_ink([bg, plan.bg2, _mix(bg, accent, t)], []) is None:
        t *= 0.7
    tint = _mix(bg, accent, t)
    plan.shapes.append(("ellipse", (cx - r, cy - r, cx + r, cy + r), tint))
    band_t = max(2, round(m * 0.45))  # lives inside the margin, so never behind text
    side = rng.choice(("left", "top", "right", "bottom"))
    band = {"left": (0, 0, band_t, height), "top": (0, 0, width, band_t),
            "right": (width - band_t, 0, width, height), "bottom": (0, height - band_t, width, height)}
    plan.shapes.append(("rect", band[side], accents[0]))
    rule_c = max(accents, key=lambda c: _contrast(c, bg))
    rule_t = max(1, min(g - 2, round(s * 0.005)))
    rule_frac, panel_off = rng.uniform(0.3, 1.0), rng.randrange(len(accents))

    def hrule(zx0: int, zx1: int, zy1: int) -> None:
        yy = zy1 + (g - rule_t) // 2
        plan.shapes.append(("rect", (zx0, yy, zx0 + round((zx1 - zx0) * rule_frac), yy + rule_t), rule_c))

    brand_name, label = _text(brand.get("name")), _text(design.get("label"))
    if brand_name or label:
        sy1 = y0 + max(12, round(s * 0.03))
        size = max(MIN_FONT, round(s * 0.016))
        split = x0 + round((x1 - x0) * 0.42) if brand_name and label else (x1 if brand_name else x0 - g)
        plan.place(_fit(brand_name, split - x0, sy1 - y0, size), (x0, y0, split, sy1))
        plan.place(_fit(label, x1 - split - g, sy1 - y0, size), (split + g, y0, x1, sy1), right=True)
        y0 = sy1 + g

    headline, subtitle = _text(copy.get("headline")), _text(copy.get("subtitle"))
    footer, blocks = _text(copy.get("footer")), _blocks(copy.get("blocks"))
    extras = [t for k, v in copy.items() if k not in _CORE_COPY_KEYS and (t := _text(v, " · "))][:6]
    landscape, portrait = aspect >= 1.2, aspect <= 0.8
    zones: dict[str, Box] = {}

    def stack(keys: list[tuple[str, float]], box: Box) -> None:
        spans = _split(box[1], box[3], [wt for _, wt in keys], g)
        for i, ((key, _), (a, b)) in enumerate(zip(keys, spans, strict=True)):
            zones[key] = (box[0], a, box[2], b)
            if key == "headline" and i + 1 < len(keys):
                hrule(box[0], box[2], b)

    heads = [(k, wt) for k, t, wt in (("headline", headline, 3.0), ("subtitle", subtitle, 1.1)) if t]
    tail = [(k, wt) for k, t, wt in (("extras", extras, 0.45 * (1 if landscape else len(extras))),
                                       ("footer", footer, 0.55)) if t]
    if landscape:
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
                plan.shapes.append(("rect", (split - rule_t // 2, my0, split - rule_t // 2 + rule_t, my1),
                                    rule_c))
            elif heads:
                stack(heads, (x0, my0, x1, my1))
            else:
                zones["blocks"] = (x0, my0, x1, my1)
        for (key, _), (a, b) in zip(tail, spans, strict=True):
            zones[key] = (x0, a, x1, b)
    else:
        rows = math.ceil(len(blocks) / _grid_cols(len(blocks), (x0, y0, x1, y1), g, portrait))
        mid = [("blocks", min(6.0, 1.5 * rows))] if blocks else []
        stack(heads + mid + tail, (x0, y0, x1, y1))

    if "headline" in zones:
        z = zones["headline"]
        plan.place(_fit(headline, z[2] - z[0], z[3] - z[1], round(s * 0.15)), z, display=True)
    if "subtitle" in zones:
        z = zones["subtitle"]
        plan.place(_fit(subtitle, z[2] - z[0], z[3] - z[1], round(s * 0.05)), z)
    if "blocks" in zones:
        _place_blocks(plan, blocks, zones["blocks"], g, s, portrait, panel_off)
    if "extras" in zones:
        z = zones["extras"]
        cells = _grid(z, len(extras), len(extras) if landscape else 1, g)
        fits = _fit_group(extras, *_cell_size(cells), round(s * 0.026))
        for cell, fit in zip(cells, fits, strict=True):
            plan.place(fit, cell)
    if "footer" in zones:
        z = zones["footer"]
        plan.place(_fit(footer, z[2] - z[0], z[3] - z[1], round(s * 0.022)), z, bottom=True)
    return plan


def _place_blocks(
    plan: _Plan, blocks: list[tuple[str, str]], box: Box, g: int, s: int, portrait: bool, off: int
) -> None:
    n = len(blocks)
    cells = _grid(box, n, _grid_cols(n, box, g, portrait), g)
    cw, ch = _cell_size(cells)
    if cw < 4 or ch < 4:
        return
    pad = max(2, min(round(s * 0.018), cw // 10, ch // 10))
    iw, ih = cw - 2 * pad, ch - 2 * pad
    has_title = any(t for t, _ in blocks)
    th = round(ih * 0.3) if has_title else 0
    titles = _fit_group([t for t, _ in blocks], iw, th if any(b for _, b in blocks) else ih,
                        round(s * 0.04))
    bodies = _fit_group([b for _, b in blocks], iw, ih - th - (pad if th else 0), round(s * 0.028))
    for i, cell in enumerate(cells):
        colour = plan.accents[(i + off) % len(plan.accents)]
        plan.shapes.append(("panel", cell, colour))
        ix0, iy0, ix1, iy1 = cell[0] + pad, cell[1] + pad, cell[2] - pad, cell[3] - pad
        title = titles[i]
        plan.place(title, (ix0, iy0, ix1, iy1), panel=colour, display=True)
        by0 = iy0
        if title:  # body hugs the title's real ink, never lower than the box it was fitted to
            by0 = min(iy0 + th + pad, plan.texts[-1].bbox[3] + max(2, title.size // 2))
        plan.place(bodies[i], (ix0, by0, ix1, iy1), panel=colour)


# ------------------------------------------------------------------ rendering


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
    """(text, ink bbox) for every text element render_comp draws; wrapped lines joined by \\n."""
    return [("\n".join(el.fit.lines), el.bbox) for el in _plan(width, height, seed, design).texts]


def render_comp(width: int, height: int, seed: int, design: Mapping[str, Any]) -> Image.Image:
    """Draw an RGB image of exactly width x height."""
    plan = _plan(width, height, seed, design)
    # A 2-pixel image upscaled bilinearly gives a smooth gradient without Python pixel loops.
    strip = Image.new("RGB", (1, 2) if plan.vertical else (2, 1), plan.bg)
    strip.putpixel((0, 1) if plan.vertical else (1, 0), plan.bg2)
    img = strip.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    for kind, (a, b, c, d), colour in plan.shapes:
        if c - a < 1 or d - b < 1:
            continue
        if kind == "ellipse":
            draw.ellipse((a, b, c - 1, d - 1), fill=colour)
        else:
            draw.rectangle((a, b, c - 1, d - 1), fill=colour)
    prefs_display = [*plan.accents, plan.bg]
    inks: list[RGB] = []
    for el in plan.texts:
        behind = [el.panel] if el.panel else [plan.bg, plan.bg2] + [
            c for kind, box, c in plan.shapes if _touches(kind, box, el.bbox)
        ]
        prefs = prefs_display if el.display else []
        ink = _pick_ink(behind, prefs)
        if ink is None:
            # Mixed light/dark behind the text: knock out a plate so contrast holds.
            # Pad stays below the gap so a plate never reaches a neighbouring element.
            pad = max(1, min(el.fit.size // 6, plan.gap - 1))
            bx0, by0, bx1, by1 = el.bbox
            draw.rectangle((max(0, bx0 - pad), max(0, by0 - pad), min(width, bx1 + pad) - 1,
                            min(height, by1 + pad) - 1), fill=plan.bg)
            ink = _pick_ink([plan.bg], prefs) or _INK
        inks.append(ink)
    for el, ink in zip(plan.texts, inks, strict=True):
        font, lh = _font(el.fit.size), _line_h(el.fit.size)
        for i, line in enumerate(el.fit.lines):
            draw.text((el.origin[0], el.origin[1] + i * lh), line, font=font, fill=ink)
    return img


def render_png(width: int, height: int, seed: int, design: Mapping[str, Any]) -> bytes:
    """render_comp, encoded as PNG bytes deterministically (no metadata, no timestamps)."""
    buf = io.BytesIO()
    render_comp(width, height, seed, design).save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()
