"""Colour names for the preview comp's brand palette, from a real colour-name table.

``data/colour_names.tsv`` (package data) holds the CSS Color 4 named colours and the names of
the XKCD colour survey; its header says where each list comes from and under which licence.
A palette entry resolves, in this order:

1. a name in the table, written in any case, with spaces, hyphens, underscores or slashes
   ("Sage-Green", "light_blue"; "gray" and "grey" alike): a survey name first, then a CSS
   keyword, then either ignoring spaces ("lightblue" is the survey's light blue,
   "midnightblue" the CSS keyword, "midnight blue" the survey's);
2. a CSS colour string Pillow reads ("#1a2b3c", "rgb(10, 20, 30)", "hsl(200, 50%, 40%)");
3. a multi-word name not in the table, by its *head*: the longest run of trailing words that
   is a known name ("deep forest green" -> "forest green", "espresso brown" -> "brown").
   The words before it modify it: light/dark/deep/pale/bright/muted/warm/cool and the like
   move lightness, chroma or temperature in CIE LCh; a word that is itself a colour name
   ("coffee brown") tints the head towards it; other words ("lantern") are ignored;
4. anything else is unknown: a logged warning names the closest known names. A near-miss
   spelling ("teel") uses the closest name; an entry with no close name is left out.

Everything here is a pure function of the name and the table, so comps stay deterministic.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from PIL import ImageColor

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]
Lab = tuple[float, float, float]

#: Modifier words: (lightness towards white (+) or black (-) as a fraction of the way there,
#: chroma factor). Fractions rather than fixed steps keep "dark navy" dark but not black.
#: Where the survey itself has enough "<word> <colour>" names next to "<colour>" (light: 65,
#: dark: 60, pale: 28, bright: 23, deep: 17, ...), the values are fitted to them: applied to
#: the survey's "<colour>", they land at a mean CIEDE2000 of about 8-11 from its
#: "<word> <colour>", where the unmodified colour is 12-20 away (tests/test_colours.py).
#: The rest (rich, strong, intense, night, ...) are set by hand in the same spirit.
_MODIFIERS: dict[str, tuple[float, float]] = {
    "light": (0.40, 0.95), "lighter": (0.40, 0.95), "pale": (0.50, 0.60),
    "pastel": (0.45, 0.70), "soft": (0.30, 0.60), "baby": (0.30, 1.05),
    "powder": (0.50, 0.60), "dark": (-0.30, 0.90), "darker": (-0.30, 0.90),
    "deep": (-0.35, 1.10), "dusky": (-0.05, 0.60), "night": (-0.40, 0.90),
    "bright": (0.10, 1.35), "vivid": (0.15, 1.40), "vibrant": (0.15, 1.40),
    "neon": (0.25, 1.55), "electric": (0.10, 1.35), "hot": (0.25, 1.50),
    "intense": (-0.05, 1.30), "strong": (-0.05, 1.20), "rich": (-0.10, 1.15),
    "saturated": (0.0, 1.35), "dull": (0.10, 0.55), "muted": (-0.05, 0.60),
    "dusty": (0.05, 0.60), "faded": (0.20, 0.50), "washed": (0.25, 0.45),
    "greyish": (0.20, 0.40), "grayish": (0.20, 0.40), "smoky": (-0.05, 0.50),
}
#: Temperature words: a small tint of the colour towards warm or cool light.
_TINTS: dict[str, tuple[RGB, float]] = {
    "warm": ((255, 170, 80), 0.12), "cool": ((80, 150, 255), 0.12),
}
_COLOUR_WORD_TINT = 0.4  # how far "coffee brown" moves from brown towards coffee
_CLOSE_CUTOFF = 0.6  # difflib ratio for "closest known" suggestions
_TYPO_RATIO = 0.8  # ... and for using the closest name in place of an unknown one


@dataclass(frozen=True)
class Resolved:
    """What a palette entry resolved to, and how (for messages and tests)."""

    rgb: RGB
    how: str  # "table", "css", "head", "closest"
    head: str = ""  # the table name used, for "head" and "closest"


def normalise(name: str) -> str:
    """Lower case, separators (space, hyphen, underscore, slash) as single spaces."""
    return " ".join(re.sub(r"[-_/]", " ", name.lower()).split())


@lru_cache(maxsize=1)
def _lists() -> tuple[dict[str, RGB], dict[str, RGB]]:
    """(survey names, CSS keywords), each normalised name -> RGB, from the package data."""
    css: dict[str, RGB] = {}
    xkcd: dict[str, RGB] = {}
    text = resources.files(__package__).joinpath("data/colour_names.tsv").read_text("utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value, source = line.split("\t")
        (css if source == "css" else xkcd).setdefault(normalise(name), _hex(value))
    return xkcd, css


@lru_cache(maxsize=1)
def table() -> dict[str, RGB]:
    """Every known name -> RGB; where both lists have a name, the survey's value."""
    xkcd, css = _lists()
    return {**css, **xkcd}


@lru_cache(maxsize=1)
def _squashed() -> tuple[dict[str, str], dict[str, str]]:
    """Names without spaces -> the name, per list, so "lightblue" meets "light blue"."""
    xkcd, css = _lists()
    return ({k.replace(" ", ""): k for k in reversed(xkcd)},
            {k.replace(" ", ""): k for k in reversed(css)})


def _hex(value: str) -> RGB:
    v = value.lstrip("#")
    return (int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16))


def _known(name: str) -> str | None:
    """The table name for a normalised name: the survey's name in either spelling of grey,
    then a CSS keyword, then the same ignoring spaces ("lightblue", "midnightblue")."""
    (xkcd, css), (xkcd_sq, css_sq) = _lists(), _squashed()
    spellings = list(dict.fromkeys((name, name.replace("gray", "grey"),
                                    name.replace("grey", "gray"))))
    for names, squashed in ((xkcd, None), (css, None), (xkcd, xkcd_sq), (css, css_sq)):
        for cand in spellings:
            hit = cand if squashed is None else squashed.get(cand.replace(" ", ""))
            if hit is not None and hit in names:
                return hit
    return None


@lru_cache(maxsize=4096)
def resolve(value: str) -> Resolved | None:
    """Resolve one palette name (see the module docstring); None when it is unknown."""
    name = normalise(value)[:80]
    if not name:
        return None
    if (hit := _known(name)) is not None:
        return Resolved(table()[hit], "table", hit)
    if value.strip().startswith("#") or "(" in value:
        try:
            r, g, b = (max(0, min(255, int(c))) for c in ImageColor.getrgb(value.strip())[:3])
            return Resolved((r, g, b), "css")  # clamped: getrgb passes rgb(300,0,0) through
        except ValueError:
            return None
    words = name.split()
    for i in range(1, len(words)):
        if (head := _known(" ".join(words[i:]))) is not None:
            return Resolved(_modify(table()[head], words[:i]), "head", head)
    return None


def _modify(rgb: RGB, modifiers: list[str]) -> RGB:
    """Apply modifier words right to left: the one nearest the head binds first."""
    for word in reversed(modifiers):
        if word in _MODIFIERS:
            light, chroma = _MODIFIERS[word]
            L, C, h = _lch(rgb)
            L = L + (100 - L) * light if light >= 0 else L * (1 + light)
            rgb = _from_lch(L, C * chroma, h)
        elif word in _TINTS:
            target, t = _TINTS[word]
            rgb = _from_lab(_mix_lab(_lab(rgb), _lab(target), t))
        elif (other := _known(word)) is not None:
            rgb = _from_lab(_mix_lab(_lab(rgb), _lab(table()[other]), _COLOUR_WORD_TINT))
    return rgb


def closest_names(value: str, n: int = 3) -> list[str]:
    """Known names spelled most like ``value`` (best first)."""
    return difflib.get_close_matches(normalise(value), list(table()), n=n, cutoff=_CLOSE_CUTOFF)


_warned: set[str] = set()
_warned_lock = threading.Lock()


def palette_colour(value: str) -> RGB | None:
    """A palette entry's RGB; an unknown name logs one warning per process naming the
    closest known names, then uses the closest one if it is a near miss, else None."""
    if (hit := resolve(value)) is not None:
        return hit.rgb
    close = closest_names(value)
    use = None
    if close and difflib.SequenceMatcher(None, normalise(value), close[0]).ratio() >= _TYPO_RATIO:
        use = close[0]
    key = normalise(value)
    with _warned_lock:
        first = key not in _warned
        _warned.add(key)
    if first:
        near = ", ".join(repr(c) for c in close) if close else "none"
        then = f"using {use!r}" if use else "leaving it out of the palette"
        log.warning("brand palette: unknown colour name %r (closest known: %s); %s in the "
                    "preview comp", value, near, then)
    return table()[use] if use else None


def reset_warnings() -> None:
    """Forget which names were warned about (tests; a long-running process between builds)."""
    with _warned_lock:
        _warned.clear()


# -- CIE Lab (D65) and LCh -------------------------------------------------------------------

_WHITE = (0.95047, 1.0, 1.08883)


def _lin(c: float) -> float:
    c /= 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _gam(c: float) -> float:
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def lab(rgb: Iterable[int]) -> Lab:
    """sRGB (0-255) to CIE L*a*b* under D65."""
    r, g, b = (_lin(c) for c in rgb)
    xyz = (
        0.4124564 * r + 0.3575761 * g + 0.1804375 * b,
        0.2126729 * r + 0.7151522 * g + 0.0721750 * b,
        0.0193339 * r + 0.1191920 * g + 0.9503041 * b,
    )

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    fx, fy, fz = (f(v / w) for v, w in zip(xyz, _WHITE, strict=True))
    return (116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz))


_lab = lab


def _lab_to_linear(c: Lab) -> tuple[float, float, float]:
    L, a, b = c
    fy = (L + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200

    def finv(t: float) -> float:
        return t**3 if t**3 > 216 / 24389 else (116 * t - 16) / (24389 / 27)

    x, y, z = (finv(t) * w for t, w in zip((fx, fy, fz), _WHITE, strict=True))
    return (
        3.2404542 * x - 1.5371385 * y - 0.4985314 * z,
        -0.9692660 * x + 1.8760108 * y + 0.0415560 * z,
        0.0556434 * x - 0.2040259 * y + 1.0572252 * z,
    )


def _from_lab(c: Lab) -> RGB:
    """Lab to sRGB; out-of-gamut colours keep lightness and hue and lose chroma."""
    L, a, b = c
    return _from_lch(L, math.hypot(a, b), math.atan2(b, a))


def _lch(rgb: RGB) -> tuple[float, float, float]:
    L, a, b = _lab(rgb)
    return L, math.hypot(a, b), math.atan2(b, a)


def _from_lch(L: float, C: float, h: float) -> RGB:
    L = max(0.0, min(100.0, L))

    def inside(c: float) -> bool:
        return all(-1e-9 <= v <= 1 + 1e-9 for v in _lab_to_linear((L, c * math.cos(h),
                                                                     c * math.sin(h))))

    if not inside(C):
        lo, hi = 0.0, C
        for _ in range(30):  # binary search for the largest chroma in gamut
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if inside(mid) else (lo, mid)
        C = lo
    lin = _lab_to_linear((L, C * math.cos(h), C * math.sin(h)))
    r, g, b = (round(255 * _gam(max(0.0, min(1.0, v)))) for v in lin)
    return (r, g, b)


def _mix_lab(a: Lab, b: Lab, t: float) -> Lab:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)
