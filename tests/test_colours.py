"""Brand palette names: a real colour-name table (CSS + XKCD survey), checked with CIEDE2000.

The colour distance is implemented here from Sharma, Wu and Dalal (2005), "The CIEDE2000
color-difference formula: implementation notes, supplementary test data, and mathematical
observations", and checked against that paper's test pairs before it is used.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwenbuild.campaign import load_campaign
from qwenbuild.providers import colours
from qwenbuild.providers.preview_render import render_comp
from qwenbuild.scaffold import EXAMPLE_CAMPAIGN, init

from .conftest import REPO

LOGGER = "qwenbuild.providers.colours"
Lab = tuple[float, float, float]


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    colours.reset_warnings()
    yield
    colours.reset_warnings()


def de2000(lab1: Lab, lab2: Lab) -> float:
    """CIEDE2000 colour difference (kL = kC = kH = 1)."""
    (L1, a1, b1), (L2, a2, b2) = lab1, lab2
    cbar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(cbar**7 / (cbar**7 + 25**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if c2p else 0.0
    dlp, dcp = L2 - L1, c2p - c1p
    if c1p * c2p == 0:
        dhp = 0.0
    elif abs(h2p - h1p) <= 180:
        dhp = h2p - h1p
    else:
        dhp = h2p - h1p - 360 if h2p - h1p > 180 else h2p - h1p + 360
    dhh = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dhp / 2))
    lbar, cbarp = (L1 + L2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        hbar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        hbar = (h1p + h2p) / 2
    else:
        hbar = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(hbar - 30)) + 0.24 * math.cos(math.radians(2 * hbar))
         + 0.32 * math.cos(math.radians(3 * hbar + 6))
         - 0.20 * math.cos(math.radians(4 * hbar - 63)))
    dtheta = 30 * math.exp(-(((hbar - 275) / 25) ** 2))
    rc = 2 * math.sqrt(cbarp**7 / (cbarp**7 + 25**7))
    sl = 1 + 0.015 * (lbar - 50) ** 2 / math.sqrt(20 + (lbar - 50) ** 2)
    sc, sh = 1 + 0.045 * cbarp, 1 + 0.015 * cbarp * t
    rt = -math.sin(math.radians(2 * dtheta)) * rc
    return math.sqrt((dlp / sl) ** 2 + (dcp / sc) ** 2 + (dhh / sh) ** 2
                     + rt * (dcp / sc) * (dhh / sh))


def de(rgb1: tuple[int, int, int], rgb2: tuple[int, int, int]) -> float:
    return de2000(colours.lab(rgb1), colours.lab(rgb2))


def rgb(hex_value: str) -> tuple[int, int, int]:
    v = hex_value.lstrip("#")
    return (int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16))


# Sharma et al. (2005), table 1: pairs 1-4, 7, 9, 11, 13, 17-21, 25, 26, 34.
SHARMA = [
    ((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
    ((50, 3.1571, -77.2803), (50, 0, -82.7485), 2.8615),
    ((50, 2.8361, -74.0200), (50, 0, -82.7485), 3.4412),
    ((50, -1.3802, -84.2814), (50, 0, -82.7485), 1.0000),
    ((50, 0, 0), (50, -1, 2), 2.3669),
    ((50, 2.49, -0.001), (50, -2.49, 0.0009), 7.1792),
    ((50, 2.49, -0.001), (50, -2.49, 0.0011), 7.2195),
    ((50, -0.001, 2.49), (50, 0.0009, -2.49), 4.8045),
    ((50, 2.5, 0), (73, 25, -18), 27.1492),
    ((50, 2.5, 0), (61, -5, 29), 22.8977),
    ((50, 2.5, 0), (56, -27, -3), 31.9030),
    ((50, 2.5, 0), (58, 24, 15), 19.4535),
    ((50, 2.5, 0), (50, 3.1736, 0.5854), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.mark.parametrize(("lab1", "lab2", "expected"), SHARMA)
def test_ciede2000_matches_the_published_test_data(lab1: Lab, lab2: Lab, expected: float) -> None:
    assert de2000(lab1, lab2) == pytest.approx(expected, abs=1e-4)
    assert de2000(lab2, lab1) == pytest.approx(expected, abs=1e-4)


def test_srgb_to_lab_matches_reference_values() -> None:
    for value, expected in [((255, 255, 255), (100, 0, 0)), ((0, 0, 0), (0, 0, 0)),
                            ((255, 0, 0), (53.24, 80.09, 67.20)),
                            ((0, 0, 255), (32.30, 79.19, -107.86)),
                            ((128, 128, 128), (53.59, 0, 0))]:
        assert colours.lab(value) == pytest.approx(expected, abs=0.02)


# Common palette names and their colours, typed from the CSS Color 4 spec (keywords) and
# the XKCD survey's rgb.txt (names as people write them; the survey wins where both have
# a name, so "brown" is the survey's brown, not CSS's red-brown #a52a2a).
COMMON = {
    "teal": "#029386", "navy": "#01153e", "gold": "#dbb40c", "coral": "#fc5a50",
    "ivory": "#ffffcb", "cream": "#ffffc2", "sage green": "#88b378", "sage": "#87ae73",
    "midnight blue": "#020035", "rose pink": "#f7879a", "copper": "#b66325",
    "saffron": "#feb209", "terracotta": "#ca6641", "burgundy": "#610023",
    "mustard": "#ceb301", "lavender": "#c79fef", "olive": "#6e750e", "beige": "#e6daa6",
    "charcoal": "#343837", "maroon": "#650021", "turquoise": "#06c2ac", "black": "#000000",
    "white": "#ffffff", "red": "#e50000", "green": "#15b01a", "blue": "#0343df",
    "brown": "#653700", "orange": "#f97306", "purple": "#7e1e9c", "pink": "#ff81c0",
    "yellow": "#ffff14", "grey": "#929591", "gray": "#929591", "forest green": "#06470c",
    "indigo": "#380282", "jade green": "#2baf6a", "rust red": "#aa2704", "mint": "#9ffeb0",
    "peach": "#ffb07c", "plum": "#580f41", "emerald": "#01a049", "sky blue": "#75bbfd",
    "off white": "#ffffe4", "slate": "#516572", "sand": "#e2ca76", "crimson": "#8c000f",
    "blush": "#f29e8e", "dusty rose": "#c0737a", "light blue": "#95d0fc",
    "dark green": "#033500", "rebeccapurple": "#663399", "papayawhip": "#ffefd5",
    "midnightblue": "#191970", "cornflowerblue": "#6495ed", "#1a2b3c": "#1a2b3c",
    "rgb(10, 20, 30)": "#0a141e",
}


@pytest.mark.parametrize("name", sorted(COMMON))
def test_common_names_land_on_their_named_colour(name: str) -> None:
    got = colours.palette_colour(name)
    assert got is not None
    assert de(got, rgb(COMMON[name])) < 0.5
    # Any case and any separator.
    spelled = name.upper().replace(" ", "-") if not name.startswith(("#", "rgb")) else name
    assert colours.palette_colour(spelled) == got


def _xkcd() -> dict[str, tuple[int, int, int]]:
    text = (Path(colours.__file__).parent / "data" / "colour_names.tsv").read_text("utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    return {colours.normalise(n): rgb(v) for n, v, src in rows if src == "xkcd"}


def test_the_table_has_the_css_and_survey_names_with_its_sources_noted() -> None:
    text = (Path(colours.__file__).parent / "data" / "colour_names.tsv").read_text("utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    assert sum(src == "css" for _, _, src in rows) == 148
    assert sum(src == "xkcd" for _, _, src in rows) == 949
    assert "CC0" in text and "css-color-4" in text and "xkcd.com/color/rgb.txt" in text


def test_modifiers_match_what_the_survey_calls_light_dark_pale_and_deep() -> None:
    """Applied to the survey's "<colour>", "light"/"dark"/... land near its own
    "light <colour>"/"dark <colour>": measured on every such pair in the survey."""
    xkcd = _xkcd()
    for word in ("light", "dark", "pale", "deep", "bright", "dusty", "soft", "muted"):
        pairs = [(xkcd[n.split(" ", 1)[1]], xkcd[n]) for n in xkcd
                 if n.startswith(word + " ") and n.split(" ", 1)[1] in xkcd]
        assert len(pairs) >= 4, word
        modelled = statistics.mean(de(colours._modify(h, [word]), t) for h, t in pairs)
        unmodified = statistics.mean(de(h, t) for h, t in pairs)
        assert modelled <= 11, (word, modelled)
        assert modelled < unmodified, (word, modelled, unmodified)


# Multi-word names not in the table: (name, the colour it must land near, max CIEDE2000).
COMPOUND = [
    ("espresso brown", "#653700", 1.0),  # brown, and an unknown word changes nothing
    ("ink black", "#000000", 1.0),
    ("rich lantern red", "#e50000", 10.0),
    ("warm white", "#ffffff", 8.0),
    ("deep forest green", "#06470c", 10.0),
    ("deep indigo", "#380282", 10.0),
    ("dusty sage green", "#88b378", 10.0),
    ("muted mustard", "#ceb301", 12.0),
    ("bright coral", "#fc5a50", 8.0),
    ("coffee brown", "#653700", 15.0),  # brown, tinted towards the survey's coffee
    ("pale sage", "#87ae73", 20.0),
]
# Basic colour terms (Berlin and Kay) at the survey's values: a name must stay in its family.
BASIC = {"black": "#000000", "white": "#ffffff", "red": "#e50000", "green": "#15b01a",
         "yellow": "#ffff14", "blue": "#0343df", "brown": "#653700", "purple": "#7e1e9c",
         "pink": "#ff81c0", "orange": "#f97306", "grey": "#929591"}
FAMILY = {"espresso brown": "brown", "coffee brown": "brown", "ink black": "black",
          "rich lantern red": "red", "warm white": "white", "deep indigo": "purple",
          "bright coral": "red"}


@pytest.mark.parametrize(("name", "near", "limit"), COMPOUND)
def test_multi_word_names_resolve_by_their_head_colour(name: str, near: str, limit: float,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    got = colours.palette_colour(name)
    assert got is not None and de(got, rgb(near)) <= limit
    if name in FAMILY:
        nearest = min(BASIC, key=lambda k: de(got, rgb(BASIC[k])))
        assert nearest == FAMILY[name], (name, got)
    assert not caplog.records  # resolved, so nothing to warn about


def test_modifiers_move_the_colour_the_way_they_say() -> None:
    base = colours.lab(rgb("#029386"))  # teal
    light = colours.lab(colours._modify(rgb("#029386"), ["light"]))
    dark = colours.lab(colours._modify(rgb("#029386"), ["dark"]))
    pale = colours.lab(colours._modify(rgb("#029386"), ["pale"]))
    assert light[0] > base[0] + 10 and dark[0] < base[0] - 10
    assert math.hypot(*pale[1:]) < 0.7 * math.hypot(*base[1:])
    warm = colours.lab(colours.palette_colour("warm white") or (0, 0, 0))
    cool = colours.lab(colours._modify((255, 255, 255), ["cool"]))
    assert warm[2] > 2 and cool[2] < -2  # yellower and bluer than white


def test_every_demo_and_scaffold_palette_name_is_known(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    init(tmp_path / "repo")
    files = sorted((REPO / "projects").glob("*/*.toml")) + [tmp_path / "repo" / EXAMPLE_CAMPAIGN]
    caplog.set_level(logging.WARNING)
    names = set()
    for path in files:
        names.update(load_campaign(path).brand["palette"])
    assert {"espresso brown", "rich lantern red", "warm white", "deep indigo"} <= names
    for name in names:
        assert colours.resolve(name) is not None, name
    assert not caplog.records


def test_an_unknown_name_warns_once_naming_the_closest_known_ones(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert colours.palette_colour("zzz unknown") is None
    assert colours.palette_colour("Teel") == colours.palette_colour("steel")  # a near miss
    assert colours.palette_colour("teel") == colours.palette_colour("steel")  # warned once
    assert colours.palette_colour("blorple") is not None
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 3
    zzz, teel, blorple = messages
    assert "'zzz unknown'" in zzz and "closest known: none" in zzz and "leaving it out" in zzz
    assert "'steel'" in teel and "'teal'" in teel and "using 'steel'" in teel
    assert "'blurple'" in blorple and "using 'blurple'" in blorple


def test_an_unknown_name_in_a_comp_is_left_out_and_warned(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    design = {"brand": {"palette": ["#ff0000", "flibbertigibbet"]}, "copy": {"headline": "Red"}}
    img = render_comp(200, 200, 1, design)
    found = {c for _, c in img.getcolors(maxcolors=200 * 200) or []}
    assert (255, 0, 0) in found
    assert any("flibbertigibbet" in r.getMessage() for r in caplog.records if r.name == LOGGER)


def test_espresso_brown_comes_out_brown_in_the_comp() -> None:
    design = {"brand": {"palette": ["espresso brown"]}, "copy": {"headline": "Coffee"}}
    img = render_comp(240, 240, 1, design)
    counts = sorted(img.getcolors(maxcolors=240 * 240) or [], reverse=True)
    dominant = counts[0][1]
    assert de(dominant, rgb("#653700")) < 8  # the background: brown (its gradient edge aside)
