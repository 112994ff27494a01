"""Fitting copy into a box for the preview comp: the largest size whose word-wrapped lines
fit, measured through the font fallback chain (``preview_fonts``), or the smallest size
truncated with an ellipsis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import preview_fonts as fonts

Box = tuple[int, int, int, int]
MIN_FONT = 8
ELLIPSIS = fonts.ELLIPSIS


def line_h(size: int) -> int:
    return max(size + 1, round(size * 1.22))


@dataclass(frozen=True)
class Fit:
    size: int
    lines: tuple[str, ...]
    ext: Box  # ink extent relative to the first line's drawing origin
    face: int = 0  # the element's face in the font chain (preview_fonts.element_face)


def fits(size: int, lines: Sequence[str], w: int, h: int, face: int = 0) -> Box | None:
    """Real ink extent of the lines (not advance widths) if it fits w x h."""
    lh = line_h(size)
    x0 = y0 = 1 << 30
    x1 = y1 = -(1 << 30)
    for i, line in enumerate(lines):
        left, top, right, bottom = fonts.line_bbox(size, line, face)
        x0, y0 = min(x0, left), min(y0, top + i * lh)
        x1, y1 = max(x1, right), max(y1, bottom + i * lh)
    return (x0, y0, x1, y1) if x1 - x0 <= w and y1 - y0 <= h else None


def _break_word(word: str, size: int, w: int, face: int) -> list[str] | None:
    """Split an over-long word into pieces that each fit ``w``; None if one glyph can't."""
    pieces: list[str] = []
    while word:
        if fonts.advance(size, word[:1], face) > w:
            return None
        lo, hi = 1, len(word)
        while lo < hi:  # longest fitting prefix
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fonts.advance(size, word[:mid], face) <= w else (lo, mid - 1)
        pieces.append(word[:lo])
        word = word[lo:]
    return pieces


def _wrap(
    paras: list[list[str]], size: int, w: int, limit: int, split: bool, face: int
) -> list[str] | None:
    """Greedy word wrap; bails out past ``limit`` lines since those can never fit."""
    lines: list[str] = []
    space = fonts.advance(size, " ", face)
    for words in paras:
        cur, cur_w = "", 0.0
        for word in words:
            ww = fonts.advance(size, word, face)
            if cur and cur_w + space + ww <= w:
                cur, cur_w = f"{cur} {word}", cur_w + space + ww
                continue
            if cur:
                lines.append(cur)
            if ww <= w:
                cur, cur_w = word, ww
            elif (pieces := _break_word(word, size, w, face) if split else None) is None:
                return None
            else:
                lines.extend(pieces[:-1])
                cur, cur_w = pieces[-1], fonts.advance(size, pieces[-1], face)
            if len(lines) > limit:
                return lines
        if cur:
            lines.append(cur)
    return lines


def fit_text(text: str, w: int, h: int, max_size: int) -> Fit | None:
    """Largest size whose wrapped text fits w x h; else min size truncated with an ellipsis."""
    paras = [words for p in text.split("\n") if (words := p.split())]
    if not paras or w < 1 or h < 1:
        return None
    face = fonts.element_face(text)
    # Prefer a smaller size that keeps words whole over a bigger one that splits them.
    for split in (False, True):
        best: Fit | None = None
        lo, hi = MIN_FONT, max(MIN_FONT, max_size)
        while lo <= hi:  # binary search: wrapped height grows ~monotonically with size
            mid = (lo + hi) // 2
            limit = h // line_h(mid) + 1
            lines = _wrap(paras, mid, w, limit, split, face)
            ext = fits(mid, lines, w, h, face) if lines and len(lines) <= limit else None
            if lines and ext:
                best, lo = Fit(mid, tuple(lines), ext, face), mid + 1
            else:
                hi = mid - 1
        if best:
            return best
    limit = h // line_h(MIN_FONT) + 1
    lines = _wrap(paras, MIN_FONT, w, limit, True, face) or []
    k = min(len(lines), limit)
    while k and not fits(MIN_FONT, lines[:k], w, h, face):
        k -= 1
    while k:  # keep what fits, end the last kept line with an ellipsis
        stem = lines[k - 1]
        while stem and fonts.advance(MIN_FONT, stem.rstrip() + ELLIPSIS, face) > w:
            stem = stem[:-1]
        cand = (*lines[: k - 1], stem.rstrip() + ELLIPSIS)
        if ext := fits(MIN_FONT, cand, w, h, face):
            return Fit(MIN_FONT, cand, ext, face)
        k -= 1
    return None


def fit_group(texts: Sequence[str], w: int, h: int, max_size: int) -> list[Fit | None]:
    """Fit siblings (block titles, bodies, extras) at one shared size so panels match."""
    fits = [fit_text(t, w, h, max_size) for t in texts]
    common = min((f.size for f in fits if f), default=max_size)
    return [
        fit_text(t, w, h, common) if f and f.size > common else f
        for t, f in zip(texts, fits, strict=True)
    ]
