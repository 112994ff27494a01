"""Scoring one expected line against what OCR read: normalisation and fuzzy alignment.

A line scores `1 - d / max(len(expected), len(match))`, where `d` is the Levenshtein
distance between the normalised expected line and the best-matching stretch of the
normalised OCR text. Normalising makes the comparison case, white-space and punctuation
insensitive, because OCR is noisy exactly there while a misspelled word is not:

- Unicode NFKC (full-width letters, ligatures), typographic punctuation folded to plain
  (`• · – — ‘ ’ “ ”`), then `casefold()`;
- only letters, digits and combining marks are kept: spaces and punctuation are dropped,
  so `AURELIA SKYLINE` matches `AURELIA` / `SKYLINE` read on two lines, and a bullet the
  OCR read as `-` or `.` costs nothing.

The match is a *window* of the OCR text: the expected line may sit inside a longer OCR
line or be split over several. It is found by semi-global alignment (Sellers' algorithm:
edit distance with a free start and end in the text), with the start and end held to word
boundaries so that `NEW` does not match the inside of `NEWS`. CJK characters count as
words of their own, since those scripts put no spaces between words.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

# Typographic punctuation to its plain equivalent (then dropped with the rest of the
# punctuation; folding first keeps `fold()` useful for display too). `×` reads as `x`.
_FOLD = str.maketrans({
    "\u2022": " ", "\u00b7": " ", "\u2027": " ", "\u2219": " ",  # bullets, middle dots
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-",
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
    "\u00a0": " ", "\u00d7": "x",
})

#: Kept characters: letters, digits (any script) and combining marks.
_KEPT = frozenset("LNM")


def fold(text: str) -> str:
    """NFKC, typographic punctuation made plain, case folded (not yet stripped)."""
    return unicodedata.normalize("NFKC", text).translate(_FOLD).casefold()


def is_cjk(ch: str) -> bool:
    """Whether `ch` is a Han, kana or Hangul character (scripts without word spaces)."""
    code = ord(ch)
    return (
        0x3040 <= code <= 0x30FF      # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF   # CJK extension A
        or 0x4E00 <= code <= 0x9FFF   # CJK unified ideographs
        or 0xAC00 <= code <= 0xD7AF   # Hangul syllables
        or 0x1100 <= code <= 0x11FF   # Hangul jamo
        or 0xF900 <= code <= 0xFAFF   # CJK compatibility ideographs
        or 0x20000 <= code <= 0x2FA1F  # CJK extensions B..
    )


def normalise(text: str) -> str:
    """The comparable form of a line: folded, letters, digits and marks only."""
    return "".join(ch for ch in fold(text) if unicodedata.category(ch)[0] in _KEPT)


@dataclass(frozen=True)
class Words:
    """OCR words in one reading order, with their normalised characters.

    `chars[k]` came from `words[owner[k]]`; `cuts[k]` says whether a word boundary lies
    before `chars[k]` (`cuts` has one more item, for the end).
    """

    words: tuple[str, ...]
    chars: str
    owner: tuple[int, ...]
    cuts: tuple[bool, ...]

    @classmethod
    def of(cls, words: Sequence[str]) -> Words:
        chars: list[str] = []
        owner: list[int] = []
        cuts: list[bool] = []
        for index, word in enumerate(words):
            boundary = True  # a new word starts a window
            for ch in fold(word):
                if unicodedata.category(ch)[0] not in _KEPT:
                    boundary = True  # "Trams-Canal": "Canal" may start a window
                    continue
                cjk = is_cjk(ch)
                chars.append(ch)
                owner.append(index)
                cuts.append(boundary or cjk)
                boundary = cjk
        cuts.append(True)
        return cls(tuple(words), "".join(chars), tuple(owner), tuple(cuts))

    def span(self, start: int, end: int) -> str:
        """The OCR words holding normalised characters start..end, as read."""
        if end <= start:
            return ""
        return " ".join(self.words[self.owner[start]:self.owner[end - 1] + 1])


@dataclass(frozen=True)
class Match:
    """The best window of the OCR text for one expected line."""

    score: float
    distance: int
    read: str


def align(expected: str, text: str, cuts: Sequence[bool]) -> tuple[int, list[tuple[int, int]]]:
    """Edit distance from `expected` to the nearest windows `text[start:end]`, with `start`
    and `end` where `cuts` is true. Returns (distance, [(start, end), ...]): every window
    at that distance, in text order.

    Dynamic programming column by column over `text` (O(len(expected) * len(text)));
    each cell carries the start of its best path so the window can be reported.
    """
    m = len(expected)
    # Column j: cost[i] aligns expected[:i] with a window ending at text position j.
    cost = list(range(m + 1))
    begin = [0] * (m + 1)
    best, windows = cost[m], [(0, 0)]
    for j in range(1, len(text) + 1):
        ch = text[j - 1]
        new_cost = [0] * (m + 1)
        new_begin = [0] * (m + 1)
        if cuts[j]:
            new_cost[0], new_begin[0] = 0, j  # a window may start here for free
        else:
            new_cost[0], new_begin[0] = cost[0] + 1, begin[0]  # inside a word: pay
        for i in range(1, m + 1):
            diag = cost[i - 1] + (expected[i - 1] != ch)
            up = new_cost[i - 1] + 1     # an expected character missing from the text
            left = cost[i] + 1           # an extra character in the text
            if diag <= up and diag <= left:
                new_cost[i], new_begin[i] = diag, begin[i - 1]
            elif up <= left:
                new_cost[i], new_begin[i] = up, new_begin[i - 1]
            else:
                new_cost[i], new_begin[i] = left, begin[i]
        cost, begin = new_cost, new_begin
        if cuts[j] and cost[m] <= best:
            if cost[m] < best:
                best, windows = cost[m], []
            windows.append((begin[m], j))
    return best, windows


def levenshtein(a: str, b: str) -> int:
    """The edit distance between two strings (insertions, deletions, substitutions)."""
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _cased(text: str) -> str:
    """Like `normalise`, keeping the case (to break ties between equally close windows)."""
    text = unicodedata.normalize("NFKC", text).translate(_FOLD)
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in _KEPT)


def match_line(expected: str, words: Words) -> Match:
    """Score one expected line (as written) against OCR words in one reading order.

    Of windows equally close, the one closest in case too is reported (a headline in
    capitals rather than the same words in a small caption), then the earliest.
    """
    target = normalise(expected)
    if not target:
        return Match(1.0, 0, "")
    if not words.chars:
        return Match(0.0, len(target), "")
    distance, windows = align(target, words.chars, words.cuts)
    cased = _cased(expected)
    start, end = min(windows[:20], key=lambda w: (
        levenshtein(cased, _cased(words.span(*w))) if len(windows) > 1 else 0))
    length = max(len(target), end - start)
    return Match(round(1.0 - distance / length, 4), distance, words.span(start, end))
