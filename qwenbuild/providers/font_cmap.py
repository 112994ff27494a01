"""Which characters a font has: the code points its ``cmap`` table maps to a real glyph.

Only that one table is needed to choose fallback fonts, so it is read here directly (a
TrueType/OpenType file or collection, from a path or bytes) rather than through a font
library; the tests check it against fontTools on every installed font.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

log = logging.getLogger(__name__)


def _cmap_ranges(read: Callable[[int, int], bytes], index: int) -> tuple[tuple[int, int], ...]:
    """Code point ranges [lo, hi] the font maps to a real glyph (not glyph 0), from its
    Unicode cmap subtable: format 12 when there is one, else format 4."""
    tag = read(0, 4)
    base = 0
    if tag == b"ttcf":  # a collection: the face's own table directory
        (count,) = struct.unpack(">I", read(8, 4))
        face = index & 0xFFFF  # the high bits name a variable font's named instance
        if face >= count:
            return ()
        (base,) = struct.unpack(">I", read(12 + 4 * face, 4))
    (num_tables,) = struct.unpack(">H", read(base + 4, 2))
    directory = read(base + 12, 16 * num_tables)
    cmap_at = cmap_len = None
    for i in range(num_tables):
        t, _, off, length = struct.unpack(">4sIII", directory[16 * i : 16 * i + 16])
        if t == b"cmap":
            cmap_at, cmap_len = off, length
    if cmap_at is None or not cmap_len:
        return ()
    cmap = read(cmap_at, cmap_len)
    (n,) = struct.unpack(">H", cmap[2:4])
    best: tuple[int, int] | None = None  # (preference, offset)
    for i in range(n):
        plat, enc, off = struct.unpack(">HHI", cmap[4 + 8 * i : 12 + 8 * i])
        if not (plat == 0 or (plat == 3 and enc in (1, 10))) or off + 2 > len(cmap):
            continue
        (fmt,) = struct.unpack(">H", cmap[off : off + 2])
        pref = {12: 2, 4: 1}.get(fmt)
        if pref and (best is None or pref > best[0]):
            best = (pref, off)
    if best is None:
        return ()
    off = best[1]
    ranges: list[tuple[int, int]] = []
    if best[0] == 2:
        (length, _, groups) = struct.unpack(">IIII", cmap[off : off + 16])[1:]
        for g in range(groups):
            lo, hi, glyph = struct.unpack(">III", cmap[off + 16 + 12 * g : off + 28 + 12 * g])
            if glyph == 0:
                lo += 1  # the first code point of the group maps to the missing glyph
            if lo <= hi:
                ranges.append((lo, min(hi, 0x10FFFF)))
    else:
        (seg2,) = struct.unpack(">H", cmap[off + 6 : off + 8])
        seg = seg2 // 2
        ends = struct.unpack(f">{seg}H", cmap[off + 14 : off + 14 + seg2])
        starts = struct.unpack(f">{seg}H", cmap[off + 16 + seg2 : off + 16 + 2 * seg2])
        deltas = struct.unpack(f">{seg}h", cmap[off + 16 + 2 * seg2 : off + 16 + 3 * seg2])
        ro_at = off + 16 + 3 * seg2
        range_offsets = struct.unpack(f">{seg}H", cmap[ro_at : ro_at + seg2])
        for s in range(seg):
            lo, hi, delta, ro = starts[s], ends[s], deltas[s], range_offsets[s]
            if lo > hi or lo == 0xFFFF:
                continue
            run_lo = None
            for cp in range(lo, hi + 1):
                if ro == 0:
                    glyph = (cp + delta) & 0xFFFF
                else:
                    at = ro_at + 2 * s + ro + 2 * (cp - lo)
                    glyph = struct.unpack(">H", cmap[at : at + 2])[0] if at + 2 <= len(cmap) else 0
                    glyph = (glyph + delta) & 0xFFFF if glyph else 0
                if glyph and run_lo is None:
                    run_lo = cp
                elif not glyph and run_lo is not None:
                    ranges.append((run_lo, cp - 1))
                    run_lo = None
            if run_lo is not None:
                ranges.append((run_lo, hi))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def read_cmap(source: str | bytes, index: int = 0) -> tuple[tuple[int, int], ...]:
    """Covered code point ranges of a font file (path) or font bytes; () if unreadable."""
    try:
        if isinstance(source, bytes):
            view = memoryview(source)

            def read_bytes(at: int, n: int) -> bytes:
                if at + n > len(view):
                    raise ValueError("truncated font")
                return bytes(view[at : at + n])

            return _cmap_ranges(read_bytes, index)
        with open(source, "rb") as fh:

            def read_file(at: int, n: int) -> bytes:
                fh.seek(at)
                data = fh.read(n)
                if len(data) != n:
                    raise ValueError("truncated font")
                return data

            return _cmap_ranges(read_file, index)
    except (OSError, ValueError, struct.error) as exc:
        log.debug("preview fonts: cannot read the cmap of %s: %s", source if isinstance(
            source, str) else "built-in font", exc)
        return ()
