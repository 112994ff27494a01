"""The verdict on one expected line, from every reading of it: right, wrong or unreadable.

Each reading gives the line's places (`score.match_places`): its best window, then every
other place that reads as the line or as a near miss of it. For each: the letters that
differ (edits, at their place in the line), the engine's confidence in the window's
characters and in the characters where it differs (for a missing character, in its
neighbours). A reading (of one place)

- *confirms the line* when its window is the line exactly (case, spaces and punctuation
  aside) and the engine is confident in every character of it (`RIGHT_CONF`);
- *objects* when its window differs in at most half the line's letters (beyond that the
  reading did not find the line: no opinion) and the engine is confident in the
  characters that differ (`WRONG_CONF`).

An objection is *corroborated* when another reading from the other engine (with one
engine installed: another reading) shares one of its edits, even with low confidence
(`SUPPORT_CONF`): the same letter, at the same place in the line, read as the same other
letter (or missing, or extra). Two engines rarely misread a letter the same way, while a
letter really wrong on the poster is read wrong the same way by both.

- **right**: a reading confirms, none objects; or, after the last reading, two readings
  match with some confidence (`TWICE_CONF`) and none objects;
- **wrong**: an objection is corroborated (or, after the last reading, one engine objects
  with very high confidence, `SURE_CONF`), and no reading matches the line, even with
  low confidence (`MATCH_CONF`); for a near miss in a place of its own
  (`Match.near_miss`), no reading *in that place* (`same_place`): the line read right
  elsewhere does not excuse it. Two exceptions, where two readings of one engine
  (different renditions of the line) may corroborate instead:
  - a doubled letter the line does not have ("SUMMMER" for "SUMMER"): a matching reading
    does not count, as a recogniser can merge a doubled letter but does not invent one;
  - a Han, kana or Hangul character read by RapidOCR (`CJK_ENGINES`) where the line has
    another one (or none): Tesseract's Chinese model is no second opinion there (on
    the bench's correct Chinese lines RapidOCR read every line exactly in both its
    readings, Tesseract's best reading 79% of them; it reads a rare character as the
    common one it resembles, or not at all), so RapidOCR's two readings agreeing is
    enough, unless a reading that could tell matches the line. One that cannot tell is
    an engine whose model cannot output the character RapidOCR read (not in its
    character set, `Charsets`: Tesseract's Chinese model holds about 4,000 characters,
    RapidOCR's about 18,000): it reads the nearest character it knows, so its match is
    no evidence (`耒` drawn for `来`, read `来` by Tesseract);
- **unreadable**: anything else after the last reading: no confident reading, or
  readings that contradict each other.

The readings are made one by one (`read.py`) until every line has its verdict, so most
posters cost one reading (RapidOCR's), and a disagreement costs more readings.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass

from .score import Match, is_cjk

RIGHT, WRONG, UNREADABLE, UNDECIDED = "right", "wrong", "unreadable", "undecided"

#: Lowest confidence (0..1) of every character of an exact window for it to confirm.
RIGHT_CONF = {"rapidocr": 0.90, "tesseract": 0.60}
#: An exact window at least this confident blocks a "wrong" verdict (not a doubled letter).
MATCH_CONF = {"rapidocr": 0.50, "tesseract": 0.40}
#: Lowest confidence (0..1) of the differing characters for a reading to object.
WRONG_CONF = {"rapidocr": 0.80, "tesseract": 0.70}
#: An objection this confident stands alone after the last reading, if nothing matched.
SURE_CONF = {"rapidocr": 0.985, "tesseract": 0.96}
#: Another reading sharing an edit supports an objection down to this confidence.
SUPPORT_CONF = 0.3
#: After the last reading, two exact windows this confident, never contradicted, confirm.
TWICE_CONF = {"rapidocr": 0.60, "tesseract": 0.50}
#: A window differing in more than this share of the line's letters did not find it.
FOUND_SHARE = 0.5
#: Engines whose two readings of a line may corroborate each other on a CJK difference.
CJK_ENGINES = frozenset({"rapidocr"})


@dataclass(frozen=True)
class Evidence:
    """One reading's best window for one line."""

    source: str
    engine: str
    match: Match
    length: int  # letters in the expected line (normalised)
    #: Where the window is in the image (x0, y0, x1, y1, the file's pixels), if known.
    box: tuple[int, int, int, int] | None = None

    @property
    def found(self) -> bool:
        return self.match.distance <= max(1, int(self.length * FOUND_SHARE))

    def _conf(self, table: dict[str, float], default: float) -> float:
        return table.get(self.engine, default)

    @property
    def confirms(self) -> bool:
        return (self.match.distance == 0 and self.length > 0
                and self.match.conf >= self._conf(RIGHT_CONF, 0.9))

    @property
    def matches(self) -> bool:
        return (self.match.distance == 0 and self.length > 0
                and self.match.conf >= self._conf(MATCH_CONF, 0.5))

    @property
    def objects(self) -> bool:
        return (self.found and self.match.distance > 0
                and self.match.diff_conf >= self._conf(WRONG_CONF, 0.8))

    @property
    def sure(self) -> bool:
        return self.objects and self.match.diff_conf >= self._conf(SURE_CONF, 0.985)

    @property
    def near_miss(self) -> bool:
        """A wrong rendition of the line in a place of its own (`Match.near_miss`)."""
        return self.match.near_miss

    @property
    def adds_repeat(self) -> bool:
        """Whether every difference is an extra copy of a neighbouring letter (a doubled
        letter the line does not have)."""
        edits = self.match.edits
        if not edits or any(was for _, was, _ in edits):
            return False
        return all(now and now * 2 in self.match.chars for _, _, now in edits)


#: Two windows overlapping by this share of the smaller one's box are one place.
SAME_PLACE = 0.5


def same_place(a: Evidence, b: Evidence) -> bool:
    """Whether two readings' windows are the same place of the image (True when either
    box is unknown)."""
    if a.box is None or b.box is None:
        return True
    w = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
    h = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
    if w <= 0 or h <= 0:
        return False
    area = min((box[2] - box[0]) * (box[3] - box[1]) for box in (a.box, b.box))
    return w * h >= SAME_PLACE * max(1, area)


def excused(objection: Evidence, matching: Sequence[Evidence]) -> list[Evidence]:
    """The matching readings that speak against `objection`: any of them, but only those
    in its place for a near miss in a place of its own (the line read right elsewhere
    does not make a wrong rendition of it right)."""
    return [m for m in matching if not objection.near_miss or same_place(m, objection)]


def agree(objecting: Sequence[Evidence], others: Sequence[Evidence],
          across_engines: bool = True) -> bool:
    """Whether a confident objection shares an edit with another reading that differs
    (`others`, confident or not, `SUPPORT_CONF`): one from another engine (two readings
    by one engine share its blind spots), or with `across_engines` False (one engine
    installed) from another reading."""
    for e in objecting:
        edits = set(e.match.edits)
        for o in others:
            if o is e or o.match.diff_conf < SUPPORT_CONF or not o.found:
                continue
            if (o.engine != e.engine if across_engines else o.source != e.source) and \
                    edits & set(o.match.edits):
                return True
    return False


#: The characters each engine can output (folded like the line, `score.fold`), by engine
#: name; an engine missing here is taken to read anything.
Charsets = Mapping[str, Container[str]]


def cjk_difference(e: Evidence) -> bool:
    """Whether every edit of `e` is a Han, kana or Hangul character (read where the line
    has another one or none, or missing where the line has one)."""
    return bool(e.match.edits) and all(
        any(is_cjk(ch) for ch in was + now) and all(is_cjk(ch) for ch in was + now)
        for _, was, now in e.match.edits)


def blind_to(e: Evidence, charsets: Charsets | None) -> set[str]:
    """The other engines that cannot output any character `e` reads in the place of the
    line's (a CJK difference; see the module's docstring)."""
    if not charsets or not cjk_difference(e):
        return set()
    nows = [now for _, _, now in e.match.edits]
    if not all(nows):
        return set()
    return {engine for engine, chars in charsets.items()
            if engine != e.engine and not any(now in chars for now in nows)}


def decide(evidence: Sequence[Evidence], final: bool,
           across_engines: bool = True,
           charsets: Charsets | None = None) -> tuple[str, Evidence | None]:
    """The line's verdict so far (UNDECIDED while more readings may help; never after
    the last one, `final`) and the reading it rests on (the one to report).
    `across_engines`: objections must come from two engines to agree (False when one
    engine is installed). `charsets`: what each engine can output (see `blind_to`)."""
    confirming = [e for e in evidence if e.confirms]
    objecting = [e for e in evidence if e.objects]
    matching = [e for e in evidence if e.matches]
    differing = [e for e in evidence if e.match.distance > 0]
    if confirming and not objecting:
        return RIGHT, confirming[0]
    if objecting:
        repeats = [e for e in objecting if e.adds_repeat]
        # A doubled letter: the reading that merged it does not count, and two readings
        # of one engine may agree (the other engine's blind spot).
        if repeats and agree(repeats, differing, across_engines=False):
            return WRONG, _best(repeats)
        # A CJK difference RapidOCR read: two of its readings may agree, unless a reading
        # that could tell (not one whose model lacks the character read) matches.
        for e in objecting:
            if across_engines and e.engine in CJK_ENGINES and cjk_difference(e):
                blind = blind_to(e, charsets)
                if not any(m.engine not in blind for m in excused(e, matching)) and agree(
                        [e], differing, across_engines=False):
                    return WRONG, _best([e])
        # Objections no matching reading speaks against (with every window in one place,
        # all of them when nothing matches, none when something does).
        standing = [e for e in objecting if not excused(e, matching)]
        if len(repeats) < len(objecting) and standing and \
                agree(standing, differing, across_engines):
            return WRONG, _best(standing)
        if final and any(e.sure for e in standing):
            return WRONG, _best(standing)
    if not final:
        return UNDECIDED, None
    if not objecting and len({e.source for e in matching if e.match.conf >= TWICE_CONF.get(
            e.engine, 0.6)}) >= 2:
        return RIGHT, matching[0]  # matched twice, never contradicted
    # A near miss in a place of its own is what makes the line unreadable, if any.
    found = [e for e in objecting if e.near_miss] or \
        [e for e in evidence if e.found] or list(evidence)
    return UNREADABLE, _best(found) if found else None


def _best(evidence: Sequence[Evidence]) -> Evidence:
    """The reading to report: fewest differences, then most confident, then first."""
    return min(evidence, key=lambda e: (e.match.distance, -e.match.diff_conf, -e.match.conf))
