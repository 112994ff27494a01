"""Scoring one expected line against what OCR read: normalisation and fuzzy alignment.

A line scores `1 - d / max(len(expected), len(match))`, where `d` is the Levenshtein
distance between the normalised expected line and the best-matching stretch of the
normalised OCR text. Normalising makes the comparison case, white-space and punctuation
insensitive, because OCR is noisy exactly there while a misspelled word is not:

- Unicode NFKC (full-width letters, ligatures), typographic punctuation folded to plain
  (`• · – — ‘ ’ “ ”`), characters printed identically folded together (katakana リ and
  hiragana り, katakana ロ and Han 口, ...), then `casefold()`;
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
    # Characters drawn the same in print, which no reader (OCR or human) can tell apart:
    # katakana and hiragana twins, katakana and Han twins.
    "\u30ea": "\u308a", "\u30d8": "\u3078", "\u30d9": "\u3079", "\u30da": "\u307a",  # リヘベペ
    "\u30ed": "\u53e3", "\u30cb": "\u4e8c", "\u30cf": "\u516b", "\u30ab": "\u529b",  # ロニハカ
    "\u30bf": "\u5915", "\u30a8": "\u5de5", "\u30c8": "\u535c", "\u30fc": "\u4e00",  # タエトー
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
    before `chars[k]` (`cuts` has one more item, for the end); `conf[k]` is the engine's
    confidence in `chars[k]`, 0..1 (1.0 when the engine gave none).
    """

    words: tuple[str, ...]
    chars: str
    owner: tuple[int, ...]
    cuts: tuple[bool, ...]
    conf: tuple[float, ...] = ()

    @classmethod
    def of(cls, words: Sequence[str],
           confidences: Sequence[Sequence[float] | float] | None = None) -> Words:
        """`confidences[i]`: word i's confidence (0..1), or one per character of it."""
        chars: list[str] = []
        owner: list[int] = []
        cuts: list[bool] = []
        conf: list[float] = []
        for index, word in enumerate(words):
            given = 1.0 if confidences is None else confidences[index]
            per_char = given if isinstance(given, Sequence) else None
            whole = 1.0 if isinstance(given, Sequence) else float(given)
            boundary = True  # a new word starts a window
            for position, raw in enumerate(word):
                c = float(per_char[position]) if per_char is not None and \
                    position < len(per_char) else whole
                for ch in fold(raw):
                    if unicodedata.category(ch)[0] not in _KEPT:
                        boundary = True  # "Trams-Canal": "Canal" may start a window
                        continue
                    cjk = is_cjk(ch)
                    chars.append(ch)
                    owner.append(index)
                    cuts.append(boundary or cjk)
                    conf.append(c)
                    boundary = cjk
        cuts.append(True)
        return cls(tuple(words), "".join(chars), tuple(owner), tuple(cuts), tuple(conf))

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
    #: The window's characters (normalised) and the engine's confidence in them:
    #: the lowest over the window, and the lowest where it differs from the line (1.0
    #: when it does not differ; for a missing character, its neighbours').
    chars: str = ""
    conf: float = 0.0
    diff_conf: float = 1.0
    #: What differs: (position in the normalised line, expected, read) for every edit,
    #: with "" for no character (a missing or an extra one).
    edits: tuple[tuple[int, str, str], ...] = ()
    #: The window: normalised characters start..end of the OCR words it was found in
    #: (`Words.owner` maps them to words, whose boxes say where the line is).
    start: int = 0
    end: int = 0
    #: Whether the window is a run of whole OCR lines that reads as a near miss of the
    #: line (`near_miss`) and no closer to another expected line: a wrong rendition of the
    #: line in its own place, which the line read right elsewhere does not excuse.
    near_miss: bool = False


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


def edit_script(a: str, b: str) -> list[tuple[int, int, str, str]]:
    """A shortest edit script from `a` to `b`: (i, j, a-part, b-part) for every edit,
    where i and j are positions in `a` and `b` (a substitution has one character on each
    side, a deletion an empty b-part, an insertion an empty a-part)."""
    m, n = len(a), len(b)
    d = [[0] * (n + 1) for _ in range(m + 1)]
    for i in range(m + 1):
        d[i][0] = i
    for j in range(n + 1):
        d[0][j] = j
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    out: list[tuple[int, int, str, str]] = []
    i, j = m, n
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            if a[i - 1] != b[j - 1]:
                out.append((i - 1, j - 1, a[i - 1], b[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and d[i][j] == d[i - 1][j] + 1:
            out.append((i - 1, j, a[i - 1], ""))
            i -= 1
        else:
            out.append((i, j - 1, "", b[j - 1]))
            j -= 1
    out.reverse()
    return out


def _word_starts(expected: str) -> frozenset[int]:
    """Positions in `normalise(expected)` where a word starts (and its length)."""
    words = Words.of(expected.split())
    return frozenset(k for k, cut in enumerate(words.cuts) if cut)


def _lost_ends(script: Sequence[tuple[int, int, str, str]], length: int,
               starts: frozenset[int]) -> set[int]:
    """Indexes in `script` of the missing letters at the start and end of the line that
    do not make whole words of it."""
    lost: set[int] = set()
    k = 0
    while k < len(script) and not script[k][3] and script[k][0] == k:
        k += 1  # the first k letters of the line are missing
    if k and k not in starts:
        lost.update(range(k))
    end = len(script)
    n = 0
    while end > 0 and not script[end - 1][3] and script[end - 1][0] == length - 1 - n:
        end, n = end - 1, n + 1  # the last n letters are missing
    if n and (length - n) not in starts:
        lost.update(range(end, len(script)))
    return lost


def match_line(expected: str, words: Words) -> Match:
    """Score one expected line (as written) against OCR words in one reading order.

    Of windows equally close, the one closest in case too is reported (a headline in
    capitals rather than the same words in a small caption), then the one closest in
    length to the line (a character read in the place of another is a substitution, not
    a character missing at the window's edge: `你耒` for `你来`), then the earliest.
    """
    return match_places(expected, words)[0]


def _primary(expected: str, target: str, words: Words, distance: int,
             windows: Sequence[tuple[int, int]]) -> Match:
    """`match_line`'s window of those `align` found (see `match_line`)."""
    cased = _cased(expected)
    start, end = min(windows[:20], key=lambda w: (
        levenshtein(cased, _cased(words.span(*w))) if len(windows) > 1 else 0,
        abs(w[1] - w[0] - len(target))))
    # A CJK character repeated across the window's edge, in the same OCR word, is a
    # doubled character (CJK windows may end between any two characters).
    chars, owner = words.chars, words.owner
    grown = False
    while 0 < end < len(chars) and chars[end] == chars[end - 1] and \
            owner[end] == owner[end - 1] and is_cjk(chars[end]):
        end, grown = end + 1, True
    while 0 < start < end and chars[start - 1] == chars[start] and \
            owner[start - 1] == owner[start] and is_cjk(chars[start]):
        start, grown = start - 1, True
    if grown:
        distance = levenshtein(target, chars[start:end])
    return _window(expected, target, words, start, end, distance)


def _window(expected: str, target: str, words: Words, start: int, end: int,
            distance: int, near_miss: bool = False) -> Match:
    """The Match of window start..end of `words`, `distance` edits from `target` (the
    line, normalised)."""
    length = max(len(target), end - start)
    window = words.chars[start:end]
    confs = words.conf[start:end] if words.conf else (1.0,) * len(window)
    conf = min(confs, default=0.0)
    diff_conf = 1.0
    edits: list[tuple[int, str, str]] = []
    if distance:
        script = edit_script(target, window)
        starts = _word_starts(expected)
        # Letters missing at either end of the window, when they are not whole words of
        # the line: the reading lost the end of a line (text running onto a busier
        # background, a cut-off box), which says nothing about its spelling.
        lost = _lost_ends(script, len(target), starts)
        near: list[float] = []
        for k, (i, j, was, now) in enumerate(script):
            if k in lost:
                continue
            edits.append((i, was, now))
            if now:  # a character read where the line has another, or none
                near.append(confs[j])
            else:  # a character of the line missing: how sure the reading is around it
                near.extend(confs[x] for x in (j - 1, j) if 0 <= x < len(confs))
        diff_conf = min(near, default=0.0)
    return Match(round(1.0 - distance / length, 4), distance, words.span(start, end),
                 window, conf, diff_conf, tuple(edits), start, end, near_miss)


#: Letter edits (a wrong, missing or extra letter; a swap is two) within which a run of
#: whole OCR lines is a near miss of a line (`near_miss`), at most a third of its letters.
NEAR_EDITS = 2


def _split(chars: str, cuts: Sequence[bool], start: int, end: int) -> list[str]:
    """The words (normalised) of characters start..end, split where `cuts` says."""
    out: list[str] = []
    for k in range(start, end):
        if cuts[k] or not out:
            out.append(chars[k])
        else:
            out[-1] += chars[k]
    return out


def near_miss(target: Sequence[str], read: Sequence[str], distance: int) -> bool:
    """Whether words `read` (normalised) are a near miss of the line's words `target`,
    `distance` letter edits apart: at most NEAR_EDITS edits (and a third of the line's
    letters: one in a 3-5 letter line, none in a shorter one) of the kinds a misspelling
    makes (a wrong, missing, doubled or swapped letter; not any extra letter: `NEWS` is
    no misspelling of `NEW`), or the line with one whole word missing and at least two
    left."""
    letters = sum(len(w) for w in target)
    if distance == 0:
        return False
    if distance <= min(NEAR_EDITS, letters // 3):
        line, seen = "".join(target), "".join(read)
        return all(was or seen[j - 1:j] == now or seen[j + 1:j + 2] == now
                   for _, j, was, now in edit_script(line, seen))
    return len(read) == len(target) - 1 >= 2 and any(
        list(target[:i]) + list(target[i + 1:]) == list(read) for i in range(len(target)))


def match_places(expected: str, words: Words, lines: Sequence[tuple[int, int]] = (),
                 others: Sequence[str] = ()) -> list[Match]:
    """Every place of the OCR text that reads as the line: its best window first (what
    `match_line` returns), then, apart from it and from each other,

    - every other window that reads exactly as the line (the line drawn twice);
    - every run of whole OCR lines (`lines`: each OCR line's characters start..end in
      `words`, in reading order) that reads as a near miss of the line (`near_miss`),
      unless it reads closer to another expected line (`others`, as written): two
      expected lines one word apart are not near misses of each other.

    A run of whole lines keeps apart a rendition of the line from the same words inside
    other text (`SKYLINE` in `SKYLINE TRANSIT`, `NEW` in `NEWS`). The best window is
    marked `near_miss` too when it is such a run."""
    target = normalise(expected)
    if not target or not words.chars:
        return [_nothing(target)]
    chars, cuts = words.chars, words.cuts
    distance, windows = align(target, chars, cuts)
    primary = _primary(expected, target, words, distance, windows)
    mine = Words.of(expected.split())
    target_words = _split(mine.chars, mine.cuts, 0, len(mine.chars))
    rivals = [t for t in (normalise(o) for o in others) if t and t != target]
    starts = {s for s, _ in lines}
    ends = {e for _, e in lines}

    def judged(start: int, end: int, edits: int) -> bool:
        """Whether window start..end, `edits` from the line, is a near miss of it."""
        if start not in starts or end not in ends:
            return False
        read = chars[start:end]
        if not near_miss(target_words, _split(chars, cuts, start, end), edits):
            return False
        return not any(abs(len(r) - len(read)) < edits and levenshtein(r, read) < edits
                       for r in rivals)

    if primary.distance and judged(primary.start, primary.end, primary.distance):
        primary = _window(expected, target, words, primary.start, primary.end,
                          primary.distance, near_miss=True)
    out = [primary]
    taken = [(primary.start, primary.end)]

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    if distance == 0:
        for start, end in windows:
            if free(start, end):
                out.append(_window(expected, target, words, start, end, 0))
                taken.append((start, end))
    spans = [(s, e) for s, e in lines if e > s]
    most = len(target) + NEAR_EDITS
    longest = max(len(w) for w in target_words)
    for i, (start, _) in enumerate(spans):
        for _, end in spans[i:]:
            if end - start > most:
                break
            if not free(start, end):
                continue
            read = chars[start:end]
            gap = len(target) - len(read)
            if gap > NEAR_EDITS and (len(target_words) < 3 or gap > longest):
                continue  # too short for a near miss (or for the line less a word)
            edits = levenshtein(target, read)
            if judged(start, end, edits):
                out.append(_window(expected, target, words, start, end, edits,
                                   near_miss=True))
                taken.append((start, end))
    return out


def _nothing(target: str) -> Match:
    """The Match of a line with nothing to compare it with (or of an empty line)."""
    if not target:
        return Match(1.0, 0, "", conf=1.0)
    return Match(0.0, len(target), "")
