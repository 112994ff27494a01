"""The preview comp's font fallback chain: real glyphs for every character of the demo and
scaffold copy, one warning for characters no font has, and a cache key that follows the
fonts a comp can use.

The coverage checks do not take the renderer's word for it: each character's font is
asked through fontTools (an independent cmap reader) and the glyph drawn is compared with
that font's missing-glyph box.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw

from qwenbuild.campaign import load_campaign
from qwenbuild.plan import plan
from qwenbuild.providers import preview_fonts as pf
from qwenbuild.providers.font_cmap import read_cmap
from qwenbuild.providers.preview_render import (
    drawn_texts,
    fonts_key,
    layout_boxes,
    render_comp,
    render_png,
)
from qwenbuild.scaffold import EXAMPLE_CAMPAIGN, init

from .conftest import REPO, build_file_tree

LOGGER = "qwenbuild.providers.preview_fonts"
DEMOS = sorted((REPO / "projects").glob("*/*.toml"))
CJK = "\u6b22\u8fce\u5149\u4e34"  # 欢迎光临


@pytest.fixture(autouse=True)
def _fresh_chain() -> Iterator[None]:
    """Each test starts from the machine's real chain, with no warning given yet."""
    pf.set_chain(None)
    yield
    pf.set_chain(None)


@pytest.fixture(scope="module")
def cmaps() -> dict[pf.FontFace, set[int]]:
    """fontTools' reading of every face of the chain: code points mapped to a real glyph."""
    out = {}
    for face in pf.chain():
        source = io.BytesIO(face.data) if face.data is not None else face.path
        with TTFont(source, fontNumber=face.index & 0xFFFF, lazy=True) as font:
            notdef = font.getGlyphOrder()[0]
            best = font.getBestCmap() or {}
            out[face] = {cp for cp, name in best.items() if name != notdef}
    return out


def _face(name: str) -> pf.FontFace:
    return next(f for f in pf.chain() if f.name == name)


def _glyph_mask(face: pf.FontFace, text: str, size: int = 40) -> bytes:
    font = face.font(size)
    img = Image.new("L", (size * 3, size * 2), 0)
    ImageDraw.Draw(img).text((size // 2, size // 2), text, font=font, fill=255)
    return img.tobytes()


# -- the chain and its cmap reader ------------------------------------------------------------

def test_chain_starts_with_the_builtin_font_then_fontconfigs_fonts() -> None:
    faces = pf.chain()
    assert faces[0].path is None and "Aileron" in faces[0].name
    assert len(faces) > 1, "the test machine has system fonts (bash scripts/test installs them)"
    listed = subprocess.run(
        ["fc-match", "--sort", "--format", "%{file}:%{index}\n", "sans-serif:lang=en"],
        capture_output=True, text=True, check=True).stdout.split("\n")
    order = [listed.index(f"{f.path}:{f.index}") for f in faces[1:]]
    assert order == sorted(order)  # fontconfig's fallback order, kept
    assert all(f.path.endswith((".ttf", ".otf", ".ttc", ".otc")) for f in faces[1:])


def test_cmap_reader_agrees_with_fonttools_on_every_font(
        cmaps: dict[pf.FontFace, set[int]]) -> None:
    for face, expected in cmaps.items():
        mine: set[int] = set()
        for lo, hi in face.ranges:
            mine.update(range(lo, hi + 1))
        assert mine == expected, face.name
    assert read_cmap(b"not a font") == ()
    assert read_cmap("/nonexistent/font.ttf") == ()


def test_the_chain_covers_the_scripts_ci_installs_fonts_for() -> None:
    """scripts/test installs DejaVu (Latin, Greek, Cyrillic, symbols) and WenQuanYi (CJK)."""
    for ch in "\u00e9\u00df\u03a9\u0416\u00a5\u2013\u2022" + CJK + "\u3042\ud55c":
        assert any(f.covers(ord(ch)) for f in pf.chain()[1:]), f"U+{ord(ch):04X}"


# -- every character of the demo and scaffold copy -----------------------------------------

def _scaffold_campaign(tmp_path: Path) -> Path:
    init(tmp_path / "repo")
    return tmp_path / "repo" / EXAMPLE_CAMPAIGN


def _designs(path: Path) -> list[dict[str, Any]]:
    return [dict(job.request.design) for job in plan(load_campaign(path)).jobs]


def _check_every_character(designs: list[dict[str, Any]],
                           cmaps: dict[pf.FontFace, set[int]]) -> set[str]:
    checked: set[str] = set()
    for design in designs:
        for text in drawn_texts(design):
            drawn = pf.runs(text)
            # Nothing replaced by a stand-in, nothing dropped: the runs spell the copy.
            assert "".join(t for _, t in drawn) == text
            for face, run in drawn:
                notdef = _glyph_mask(face, "\U0010fffd")  # in no font's cmap: glyph 0
                for ch in set(run) - checked:
                    if ch.isspace():
                        continue
                    assert ord(ch) in cmaps[face], f"{ch!r} U+{ord(ch):04X} not in {face.name}"
                    assert _glyph_mask(face, ch) != notdef, f"{ch!r} drew {face.name}'s box"
                    checked.add(ch)
    return checked


@pytest.mark.parametrize("path", DEMOS, ids=[f"{p.parent.name}/{p.name}" for p in DEMOS])
def test_every_character_of_the_demo_copy_has_a_glyph(
        path: Path, cmaps: dict[pf.FontFace, set[int]]) -> None:
    designs = _designs(path)
    checked = _check_every_character(designs, cmaps)
    assert checked
    if path.parent.name == "lantern-nights":
        assert set(CJK + "\u2013") <= checked  # 欢迎光临, the en dash
        if path.name == "campaign.toml":
            assert "\u00a5" in checked  # the menu's yen sign


def test_every_character_of_the_scaffold_copy_has_a_glyph(
        tmp_path: Path, cmaps: dict[pf.FontFace, set[int]]) -> None:
    checked = _check_every_character(_designs(_scaffold_campaign(tmp_path)), cmaps)
    assert "\u00e9" in checked  # "Find your café"


@pytest.mark.parametrize("path", DEMOS, ids=[f"{p.parent.name}/{p.name}" for p in DEMOS])
def test_demo_comps_render_without_a_missing_glyph(
        path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    for job in plan(load_campaign(path)).jobs:
        w, h = max(128, job.width // 4), max(128, job.height // 4)
        assert render_comp(w, h, job.seed, job.request.design).size == (w, h)
    assert not [r for r in caplog.records if r.name == LOGGER]


def test_scaffold_comps_render_without_a_missing_glyph(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    for job in plan(load_campaign(_scaffold_campaign(tmp_path))).jobs:
        render_comp(job.width // 2, job.height // 2, job.seed, job.request.design)
    assert not [r for r in caplog.records if r.name == LOGGER]


def test_an_element_is_drawn_in_one_font_when_one_font_has_it_all() -> None:
    (face, text), = pf.runs("OCT 18\u201320")  # not 'OCT' in one font, '18–20' in another
    assert face.path and text == "OCT 18\u201320"
    (face, _), = pf.runs(f"{CJK} Welcome")
    assert face.covers(ord(CJK[0])) and face.covers(ord("W"))
    (face, _), = pf.runs("Welcome")
    assert face.path is None  # ASCII stays in the built-in font


def test_without_one_font_for_all_each_word_keeps_one_font() -> None:
    def face_of(text: str, word: str) -> pf.FontFace:
        (face,) = {f for f, t in pf.runs(text, prefer=0) if word in t}
        return face

    text = f"{CJK} Welcome caf\u00e9 \u00a528"
    assert face_of(text, "Welcome").path is None
    assert face_of(text, CJK).path and all(face_of(text, CJK).covers(ord(c)) for c in CJK)
    assert face_of(text, "caf\u00e9").path  # the whole word in one font, not 'caf' + 'é'
    assert face_of(text, "\u00a528").path  # the yen sign itself, not 'JPY'
    assert "".join(t for _, t in pf.runs(text, prefer=0)) == text


def test_runs_of_several_fonts_share_a_baseline() -> None:
    text = f"Hamburg {CJK}"
    (fa, a), (fb, b) = pf.runs(text, prefer=0)
    assert a.strip() == "Hamburg" and b == CJK and fa != fb
    x0, y0, x1, y1 = pf.line_bbox(40, text)
    assert x1 - x0 > pf.advance(40, "Hamburg ") and y1 - y0 < 2 * 40
    img = Image.new("L", (600, 120), 0)
    pf.draw_line(ImageDraw.Draw(img), (10, 20), 40, text, 255)
    bbox = img.getbbox()
    assert bbox is not None and bbox[1] >= 20 + y0 - 1 and bbox[3] <= 20 + y1 + 1
    # The Latin and the CJK glyphs stand on one line: their lowest ink rows are close.
    left, right = img.crop((0, 0, 10 + round(pf.advance(40, "Hamburg")), 120)), img.crop(
        (10 + round(pf.advance(40, "Hamburg ")), 0, 600, 120))
    assert abs((left.getbbox() or (0, 0, 0, 0))[3] - (right.getbbox() or (0, 0, 0, 0))[3]) < 8


# -- characters no font has -----------------------------------------------------------------

def test_a_missing_glyph_is_warned_once_with_the_package_to_install(
        caplog: pytest.LogCaptureFixture) -> None:
    pf.set_chain([pf.builtin_face(), _face("DejaVu Sans Book")])  # no CJK font
    caplog.set_level(logging.WARNING)
    design = {"copy": {"headline": f"Lantern {CJK}", "footer": "Caf\u00e9"}}
    for seed in (1, 2, 3):
        render_comp(320, 240, seed, design)
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1
    assert all(f"U+{ord(c):04X}" in warnings[0] for c in CJK)
    assert "fonts-noto-cjk" in warnings[0] and "\u00e9" not in warnings[0]
    # Another character missing later: one more warning, naming only it.
    render_comp(320, 240, 1, {"copy": {"headline": "\u0e01\u0e02 \u0378"}})  # Thai, unassigned
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 2 and CJK[0] not in warnings[1]
    assert "fonts-noto-core" in warnings[1] and "U+0E01" in warnings[1]
    assert "U+0378" in warnings[1] and "unassigned" in warnings[1]


def test_without_system_fonts_stand_ins_replace_boxes_and_the_warning_says_why(
        caplog: pytest.LogCaptureFixture) -> None:
    pf.set_chain([pf.builtin_face()])
    caplog.set_level(logging.WARNING)
    assert [t for _, t in pf.runs("Dumplings \u00a528")] == ["Dumplings JPY28"]
    render_comp(320, 240, 1, {"copy": {"headline": "Dumplings \u00a528 caf\u00e9"}})
    (message,) = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "U+00A5" in message and "U+00E9" in message and "fonts-noto-core" in message


def test_missing_characters_outside_the_copy_are_not_reported() -> None:
    assert pf.missing(["plain ascii", f"{CJK} caf\u00e9"]) == []
    assert pf.missing(["\u0378x\u0378"]) == ["\u0378"]


# -- the key ----------------------------------------------------------------------------------

def test_fonts_key_names_only_the_fonts_the_copy_can_use() -> None:
    ascii_key = fonts_key({"copy": {"headline": "Night trains"}, "label": "a \u00b7 3:4"})
    assert len(ascii_key["faces"]) == 1 and ascii_key["missing"] == ""
    cjk_key = fonts_key({"copy": {"headline": CJK}})
    names = [n.rsplit(" ", 1)[0] for n in cjk_key["faces"]]
    first_cjk = next(i for i, f in enumerate(pf.chain()) if f.covers(ord(CJK[0]))
                     and all(f.covers(ord(c)) for c in CJK + pf.ELLIPSIS))
    assert names == [f.name for f in pf.chain()[: first_cjk + 1]]
    missing = fonts_key({"copy": {"headline": "x \u0378"}})
    assert missing["missing"] == "\u0378" and len(missing["faces"]) == len(pf.chain())


def test_fonts_key_follows_the_font_files_content() -> None:
    faces = pf.chain()
    key = fonts_key({"copy": {"headline": CJK}})
    digest = hashlib.sha256(Path(faces[len(key["faces"]) - 1].path or "").read_bytes())
    assert key["faces"][-1].endswith(digest.hexdigest()[:16])
    assert fonts_key({"copy": {"headline": CJK}}) == key  # stable


CAMPAIGN = """\
[campaign]
name = "fonts"

[brand]
name = "Acme"
palette = ["teal", "cream"]

[defaults]
template = "poster.j2"
aspects = ["1:1"]

[providers.small]
kind = "preview"
scale = 0.1

[[assets]]
id = "latin"
providers = ["small"]
[assets.copy]
headline = "HELLO"

[[assets]]
id = "chinese"
providers = ["small"]
[assets.copy]
headline = "欢迎光临"
"""


def test_changing_the_fonts_makes_only_the_comps_that_use_them_stale(
        tmp_path: Path, run: Any) -> None:
    build_file_tree(tmp_path, {"templates/poster.j2": "{{ copy.headline }}",
                               "campaign.toml": CAMPAIGN})
    campaign = tmp_path / "campaign.toml"
    assert run("build", campaign).code == 0
    statuses = {a["output"]: a for a in run("plan", campaign, "--json").json()["jobs"]}
    assert {a["status"] for a in statuses.values()} == {"up_to_date"}

    # The CJK font goes away (uninstalled): the planner's key memo must notice.
    pf.set_chain([f for f in pf.chain() if not f.covers(ord(CJK[0]))])
    after = {a["output"]: a for a in run("plan", campaign, "--json").json()["jobs"]}
    changed = {out: a["reason"] for out, a in after.items() if a["status"] != "up_to_date"}
    assert list(changed) == [o for o in after if "chinese" in o]
    assert "preview fonts changed" in next(iter(changed.values()))

    pf.set_chain(None)  # and back: the first build's comps are current again
    again = run("plan", campaign, "--json").json()["jobs"]
    assert {a["status"] for a in again} == {"up_to_date"}


def test_comps_with_fallback_fonts_are_deterministic_across_processes() -> None:
    design = {"brand": {"name": "Lantern Nights", "palette": ["rich lantern red", "gold"]},
              "copy": {"headline": f"{CJK} Welcome", "subtitle": "\u03a9\u03bc\u03ad\u03b3\u03b1"
                       " \u041f\u0440\u0438\u0432\u0435\u0442 Stra\u00dfe",
                       "footer": "Dumplings \u00a528 \u2013 caf\u00e9"}}
    script = textwrap.dedent(
        """
        import hashlib, json, sys
        from qwenbuild.providers.preview_render import render_png
        design = json.loads(sys.stdin.read())
        sys.stdout.write(hashlib.sha256(render_png(480, 640, 3, design)).hexdigest())
        """
    )
    # A bare environment (no PATH, other hash seed) finds the same fonts.
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(design),
                         capture_output=True, text=True, check=True, timeout=120,
                         env={"PYTHONHASHSEED": "99", "PATH": ""})
    assert out.stdout == hashlib.sha256(render_png(480, 640, 3, design)).hexdigest()
    texts = [t for t, _ in layout_boxes(480, 640, 3, design)]
    assert any(CJK in t for t in texts)
