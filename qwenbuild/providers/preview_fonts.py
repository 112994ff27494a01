"""Fonts for the preview comp: a fallback chain chosen by real glyph coverage.

Pillow's built-in font (a subset of Aileron Regular: ASCII and a little punctuation) draws
first, so Latin comps keep their look. Every other character comes from the system fonts
that fontconfig lists for ``sans-serif:lang=en`` (``fc-match --sort``: fontconfig's own
fallback order, the same on every run for a given set of installed fonts and fontconfig
configuration; ``lang=en`` keeps the user's locale out of it). Colour and bitmap fonts are
skipped (FreeType cannot scale them), and so are formats other than TrueType/OpenType.

Which font draws what is decided from each font's ``cmap`` table (``font_cmap``): a text
element (a headline, a block body) is drawn in the first font of the chain that has every
one of its characters, so "OCT 18–20" or "Crab Soup Dumplings ¥38" is one font throughout;
when no one font has them all, each *word* is drawn in the first font that has all of its
characters ("café" in one font, not two), and a word no single font covers falls back
character cluster by cluster (a base character and its combining marks). A character no
installed font has is drawn as the built-in font's missing-glyph box (or, for a few
symbols, a stand-in such as "JPY" for the yen sign), and one warning per process names such
characters and the Debian package that has them.

Determinism and the cache key: the comp is a pure function of the copy and the chain. The
preview provider puts :func:`fonts_key` into each job key: the fonts of the chain up to the
last one the job's copy can use (each by family, style and a hash of the font file's bytes,
so it is the same on every machine with the same fonts), plus any characters no font has
(then the whole chain counts, since installing any font could supply them). Installing,
removing or upgrading a font that a comp uses, or that could supply its missing characters,
makes that comp stale; fonts it cannot use leave it alone. :func:`environment_digest` (file
paths, sizes and times of the whole chain) tells the planner's key memo that the fonts
changed. The chain is read once per process.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import shutil
import subprocess
import threading
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import ImageDraw, ImageFont, features

from .font_cmap import read_cmap

log = logging.getLogger(__name__)

ELLIPSIS = "\u2026"
Box = tuple[int, int, int, int]
#: Drawn when no installed font has the character, instead of the missing-glyph box.
STAND_INS = {
    "\u2022": "\u00b7", "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00d7": "x",
    "\u2192": "->", "\u2190": "<-", "\u20ac": "EUR", "\u00a3": "GBP", "\u00a5": "JPY",
    "\u00ae": "(R)", "\u2605": "*", "\u2713": "v",
}
_FC_PATTERN = "sans-serif:lang=en"
_FC_FORMAT = "%{file}\t%{index}\t%{family[0]}\t%{style[0]}\t%{fontformat}\t%{scalable}\t%{color}\n"
_FC_PLACES = ("/usr/bin/fc-match", "/usr/local/bin/fc-match", "/opt/homebrew/bin/fc-match")
_SFNT_FORMATS = {"TrueType", "CFF"}


# -- the faces of the chain ------------------------------------------------------------------

@dataclass(frozen=True)
class FontFace:
    """One font of the fallback chain: a file and face index, or the built-in font's bytes."""

    name: str  # "DejaVu Sans Book"
    path: str | None  # None: Pillow's built-in font
    index: int = 0
    data: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        return _ranges(self)

    def covers(self, cp: int) -> bool:
        ranges = _ranges(self)
        i = bisect_right(ranges, (cp, 0x110000)) - 1
        return i >= 0 and ranges[i][0] <= cp <= ranges[i][1]

    def font(self, size: int) -> ImageFont.FreeTypeFont:
        return _font(self, size)

    def digest(self) -> str:
        """sha256 of the font's bytes (the same on every machine with the same font)."""
        if self.data is not None:
            return hashlib.sha256(self.data).hexdigest()
        try:
            st = os.stat(self.path or "")
            return _file_digest(self.path or "", st.st_size, st.st_mtime_ns)
        except OSError:  # removed since the chain was read: say so, the key changes
            return "gone"

    def stamp(self) -> str:
        """Cheap identity for this machine: path, face, size and modification time."""
        if self.path is None:
            return f"builtin:{self.digest()}"
        try:
            st = os.stat(self.path)
        except OSError:
            return f"{self.path}:{self.index}:gone"
        return f"{self.path}:{self.index}:{st.st_size}:{st.st_mtime_ns}"


@lru_cache(maxsize=256)
def _ranges(face: FontFace) -> tuple[tuple[int, int], ...]:
    """The face's coverage; none at all if FreeType cannot load it (then it is never used)."""
    ranges = read_cmap(face.data if face.data is not None else face.path or "", face.index)
    if ranges:
        try:
            _font(face, 12)
        except OSError as exc:
            log.debug("preview fonts: skipping %s: %s", face.name, exc)
            return ()
    return ranges


@lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=2048)
def _font(face: FontFace, size: int) -> ImageFont.FreeTypeFont:
    if face.data is not None:
        return ImageFont.truetype(io.BytesIO(face.data), size)
    # From the path, FreeType maps the file instead of Python holding a copy per size.
    return ImageFont.truetype(face.path or "", size, index=face.index)


def builtin_face() -> FontFace:
    data = ImageFont.load_default(size=12).font_bytes  # type: ignore[union-attr]
    return FontFace("Aileron Regular (built-in)", None, 0, data)


def fc_match_path() -> str | None:
    """fontconfig's fc-match, from PATH or a usual place (a bare PATH must not change the
    fonts, or comps would differ between a shell and a service)."""
    found = shutil.which("fc-match")
    if found:
        return found
    return next((p for p in _FC_PLACES if os.access(p, os.X_OK)), None)


def system_faces() -> tuple[FontFace, ...]:
    """fontconfig's sorted fallback list for sans-serif, usable faces only."""
    exe = fc_match_path()
    if exe is None:
        return ()
    try:
        out = subprocess.run(
            [exe, "--sort", "--format", _FC_FORMAT, _FC_PATTERN],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("preview fonts: %s failed (%s); comps use the built-in font only", exe, exc)
        return ()
    faces: list[FontFace] = []
    seen: set[tuple[str, int]] = set()
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 7:
            continue
        path, index, family, style, fmt, scalable, colour = parts
        if fmt not in _SFNT_FORMATS or scalable != "True" or colour == "True":
            continue
        if not path.lower().endswith((".ttf", ".otf", ".ttc", ".otc")):
            continue
        try:
            key = (path, int(index))
        except ValueError:
            continue
        if key not in seen:
            seen.add(key)
            faces.append(FontFace(f"{family} {style}".strip(), path, key[1]))
    return tuple(faces)


_chain: tuple[FontFace, ...] | None = None
_chain_lock = threading.Lock()


def chain() -> tuple[FontFace, ...]:
    """The built-in font, then the system fonts; found once per process."""
    global _chain
    if _chain is None:
        with _chain_lock:
            if _chain is None:
                _chain = (builtin_face(), *system_faces())
    return _chain


def set_chain(faces: Sequence[FontFace] | None) -> None:
    """Use these faces (None: look the chain up again) and forget everything derived from
    the old chain. For tests, and for a long-running process after fonts were installed."""
    global _chain
    with _chain_lock:
        _chain = tuple(faces) if faces is not None else None
    for cached in (_runs, _element_face, advance, line_bbox, _missing_in,
                   environment_digest):
        cached.cache_clear()
    with _warned_lock:
        _warned.clear()


def layout_engine() -> str:
    return "raqm" if features.check("raqm") else "basic"


# -- choosing a font per word and per cluster ------------------------------------------------

def _ignorable(cp: int) -> bool:
    """Default-ignorable code points (joiners, variation selectors...): never drawn."""
    return (
        cp in (0x00AD, 0x034F, 0x061C, 0x3164, 0xFEFF, 0xFFA0)
        or 0x200B <= cp <= 0x200F or 0x202A <= cp <= 0x202E or 0x2060 <= cp <= 0x206F
        or 0xFE00 <= cp <= 0xFE0F or 0x180B <= cp <= 0x180F or 0xE0000 <= cp <= 0xE0FFF
    )


def _clusters(word: str) -> list[str]:
    """A base character with the combining marks and joiners that follow it."""
    out: list[str] = []
    join_next = False
    for ch in word:
        cp = ord(ch)
        if out and (join_next or unicodedata.category(ch).startswith("M") or _ignorable(cp)):
            out[-1] += ch
        else:
            out.append(ch)
        join_next = cp == 0x200D
    return out


def _needed(text: str) -> list[int]:
    return [ord(c) for c in text if not _ignorable(ord(c))]


def _first_cover(faces: Sequence[FontFace], text: str) -> int | None:
    need = _needed(text)
    return next((i for i, f in enumerate(faces) if all(f.covers(cp) for cp in need)), None)


@dataclass(frozen=True)
class Run:
    face: int  # index into chain()
    text: str  # what is drawn (ignorables the face lacks dropped, stand-ins applied)
    missing: str = ""  # characters of this run no installed font has


def _drawable(face: FontFace, text: str) -> str:
    return "".join(c for c in text if not _ignorable(ord(c)) or face.covers(ord(c)))


def _element_needs(text: str) -> str:
    """What an element needs a face to have: its characters, a space if it has any white
    space (lines are joined with spaces), and the ellipsis a truncated line ends with."""
    return "".join(text.split()) + (" " if any(c.isspace() for c in text) else "") + ELLIPSIS


@lru_cache(maxsize=4096)
def _element_face(text: str) -> int | None:
    return _first_cover(chain(), _element_needs(text))


def element_face(text: str) -> int:
    """The face a whole text element (a headline, a block body) is drawn in: the first face
    of the chain that has all of its characters, so "OCT 18–20" is one font rather than
    "OCT" in one and "18–20" in another; 0 (word by word) when no one face has them all."""
    at = _element_face(text)
    return 0 if at is None else at


@lru_cache(maxsize=16384)
def _runs(text: str, prefer: int = 0) -> tuple[Run, ...]:
    faces = chain()
    pieces: list[Run] = []
    for token in re.findall(r"\s+|\S+", text):
        if token.isspace() and pieces and _first_cover([faces[pieces[-1].face]], token) == 0:
            pieces.append(Run(pieces[-1].face, token))
            continue
        if prefer and _first_cover([faces[prefer]], token) == 0:
            pieces.append(Run(prefer, _drawable(faces[prefer], token)))
            continue
        whole = _first_cover(faces, token)
        if whole is not None:
            pieces.append(Run(whole, _drawable(faces[whole], token)))
            continue
        for cluster in _clusters(token):
            at = _first_cover(faces, cluster)
            if at is not None:
                pieces.append(Run(at, _drawable(faces[at], cluster)))
                continue
            base = _first_cover(faces, cluster[0])
            lacking = "".join(c for c in cluster if not any(f.covers(ord(c)) for f in faces)
                              and not _ignorable(ord(c)))
            if base is not None:  # the base exists; some mark does not: drop the mark
                kept = "".join(c for c in cluster if faces[base].covers(ord(c)))
                pieces.append(Run(base, kept, lacking))
                continue
            stand_in = STAND_INS.get(cluster[0])
            if stand_in and (at := _first_cover(faces, stand_in)) is not None:
                pieces.append(Run(at, stand_in, lacking))
            else:  # the built-in font's missing-glyph box
                pieces.append(Run(0, _drawable(faces[0], cluster) or cluster[0], lacking))
    merged: list[Run] = []
    for run in pieces:
        if merged and merged[-1].face == run.face:
            last = merged[-1]
            merged[-1] = Run(last.face, last.text + run.text, last.missing + run.missing)
        else:
            merged.append(run)
    return tuple(r for r in merged if r.text)


def runs(text: str, prefer: int | None = None) -> list[tuple[FontFace, str]]:
    """(face, text) runs, left to right in logical order, that draw ``text`` as an element
    (``prefer``: the element's face, by default ``element_face(text)``; 0: word by word)."""
    faces = chain()
    at = element_face(text) if prefer is None else prefer
    return [(faces[r.face], r.text) for r in _runs(text, at)]


# -- measuring and drawing -------------------------------------------------------------------

def _ascent(size: int) -> int:
    return chain()[0].font(size).getmetrics()[0]


@lru_cache(maxsize=32768)
def advance(size: int, text: str, prefer: int = 0) -> float:
    """Advance width of ``text`` drawn through the chain at ``size`` (``prefer``: the face
    of the element it belongs to, see element_face)."""
    faces = chain()
    return sum(faces[r.face].font(size).getlength(r.text) for r in _runs(text, prefer))


@lru_cache(maxsize=32768)
def line_bbox(size: int, text: str, prefer: int = 0) -> Box:
    """Ink box of one line relative to its drawing origin (left, ascender of the built-in
    font): every run sits on one baseline, whatever its font's own ascender."""
    faces, asc, x = chain(), _ascent(size), 0.0
    x0 = y0 = 1 << 30
    x1 = y1 = -(1 << 30)
    for r in _runs(text, prefer):
        font = faces[r.face].font(size)
        left, top, right, bottom = font.getbbox(r.text, anchor="ls")
        x0, y0 = min(x0, math.floor(x + left)), min(y0, math.floor(top) + asc)
        x1, y1 = max(x1, math.ceil(x + right)), max(y1, math.ceil(bottom) + asc)
        x += font.getlength(r.text)
    return (x0, y0, x1, y1) if x1 >= x0 else (0, 0, 0, 0)


def draw_line(draw: ImageDraw.ImageDraw, xy: tuple[int, int], size: int, text: str,
              fill: Any, prefer: int = 0) -> None:
    faces, asc, x = chain(), _ascent(size), float(xy[0])
    for r in _runs(text, prefer):
        font = faces[r.face].font(size)
        draw.text((x, xy[1] + asc), r.text, font=font, fill=fill, anchor="ls")
        x += font.getlength(r.text)


# -- missing characters, the warning, the key ------------------------------------------------

@lru_cache(maxsize=4096)
def _missing_in(text: str) -> str:
    return "".join(r.missing for r in _runs(text))


def missing(texts: Iterable[str]) -> list[str]:
    """Characters of ``texts`` that no font of the chain has, sorted, once each."""
    found: set[str] = set()
    for text in texts:
        found.update(_missing_in(text))
    return sorted(found)


_CJK = (
    (0x1100, 0x11FF), (0x2E80, 0x2FDF), (0x3000, 0x303F), (0x3040, 0x30FF), (0x3100, 0x312F),
    (0x3130, 0x318F), (0x3190, 0x31FF), (0x3200, 0x33FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
    (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF),
    (0x20000, 0x3FFFF),
)
_EMOJI = ((0x2600, 0x27BF), (0x2B00, 0x2BFF), (0x1F000, 0x1FAFF))


def debian_package(ch: str) -> str | None:
    """The Debian font package that draws ``ch`` (None: no font can, e.g. unassigned)."""
    cp = ord(ch)
    if unicodedata.category(ch) in ("Cn", "Co", "Cs"):
        return None
    if any(lo <= cp <= hi for lo, hi in _CJK):
        return "fonts-noto-cjk"
    if any(lo <= cp <= hi for lo, hi in _EMOJI):
        return "fonts-symbola"
    return "fonts-noto-core"


_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_missing(texts: Iterable[str]) -> list[str]:
    """Log one warning for characters not warned about before in this process; return the
    characters this call found missing (warned now or before)."""
    lacking = missing(texts)
    with _warned_lock:
        new = [c for c in lacking if c not in _warned]
        _warned.update(new)
    if new:
        by_package: dict[str | None, list[str]] = {}
        for c in new:
            by_package.setdefault(debian_package(c), []).append(c)
        advice = []
        for package, chars in sorted(by_package.items(), key=lambda kv: kv[0] or "~"):
            shown = " ".join(f"{c} (U+{ord(c):04X})" for c in chars[:12])
            more = f" and {len(chars) - 12} more" if len(chars) > 12 else ""
            if package is None:
                advice.append(f"{shown}{more}: unassigned or private-use, no font package has "
                              "them")
            else:
                extra = ""
                if package == "fonts-noto-cjk":
                    extra = " (or the smaller fonts-wqy-microhei)"
                advice.append(f"{shown}{more}: install the Debian package {package}{extra}")
        where = "" if fc_match_path() else (
            "; fontconfig's fc-match was not found, so no system font is used "
            "(Debian package fontconfig)")
        log.warning("preview comps: no installed font has a glyph for %s; they are drawn "
                    "as boxes or stand-ins%s", "; ".join(advice), where)
    return lacking


def fonts_key(texts: Iterable[str]) -> dict[str, Any]:
    """What about the installed fonts a comp of ``texts`` depends on (see the module
    docstring): faces of the chain up to the last one usable for the copy, by name and
    content hash, the characters no font has, and Pillow's text layout engine."""
    faces = chain()
    last, whole_chain = 0, False
    lacking: set[str] = set()
    for text in texts:
        if (at := _element_face(text)) is not None:  # every line of it is drawn in that face
            last = max(last, at)
            continue
        for token in re.findall(r"\S+", text):
            for variant in (token, token + ELLIPSIS):  # truncated lines end in an ellipsis
                if _first_cover(faces, variant) is None:
                    whole_chain = True  # pieces of a mixed word may each find other fonts
                for r in _runs(variant):
                    last = max(last, r.face)
                    lacking.update(r.missing)
    if lacking or whole_chain:
        last = len(faces) - 1
    return {
        "faces": [f"{f.name} {f.digest()[:16]}" for f in faces[: last + 1]],
        "missing": "".join(sorted(lacking)),
        "layout": layout_engine(),
    }


@lru_cache(maxsize=1)
def environment_digest() -> str:
    """Digest of the whole chain as installed on this machine (paths, sizes, times)."""
    h = hashlib.sha256(layout_engine().encode())
    for f in chain():
        h.update(b"\0" + f.stamp().encode())
    return h.hexdigest()


#: Where fontconfig's configuration and font folders usually are: a font installed or
#: removed there changes a folder's mtime (even when fc-match would now find another).
_FONT_ROOTS = ("/etc/fonts", "/usr/share/fonts", "/usr/local/share/fonts",
               "~/.fonts", "~/.local/share/fonts")


def watched_paths() -> tuple[list[Path], list[Path]]:
    """What `environment_digest` depends on, for the no-op fast path: the chain's font
    files and Pillow's own files (by stat), and every folder fonts are found in, with its
    ancestors up to the font roots (by mtime)."""
    import PIL

    files = [Path(f.path) for f in chain() if f.path is not None]
    files.append(Path(PIL.__file__))  # Pillow's version: its layout engine, its font
    folders: set[Path] = {Path(PIL.__file__).parent}
    roots = [Path(os.path.expanduser(r)) for r in _FONT_ROOTS]
    for root in roots:
        if root.is_dir():
            for folder, _dirs, _files in os.walk(root):
                folders.add(Path(folder))
    for path in files[:-1]:
        folders.add(path.parent)
    return files, sorted(folders)
