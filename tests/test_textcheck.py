"""`qwenbuild check`: the text read back from each image, compared with the copy.

Matching and the verdict are tested on strings (no OCR, here and in
test_textcheck_verdict.py); the rest reads real images with RapidOCR and Tesseract. Those
tests are skipped on a machine without them, and never in CI (`CI` set): there a missing
engine fails, so the tests cannot silently stop running.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from qwenbuild.store import Store
from qwenbuild.textcheck import plan_languages, reading_orders
from qwenbuild.textcheck.engines import Engines, OcrWord, default_engine
from qwenbuild.textcheck.score import Words, align, levenshtein, match_line, normalise

from .conftest import build_file_tree

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
OCR_MISSING = [what for what, ok in (
    ("tesseract (apt-get install tesseract-ocr tesseract-ocr-eng)",
     shutil.which("tesseract") is not None),
    ("pytesseract", importlib.util.find_spec("pytesseract") is not None),
    ("rapidocr and onnxruntime (pip install -e '.[ocr]')",
     importlib.util.find_spec("rapidocr") is not None
     and importlib.util.find_spec("onnxruntime") is not None),
) if not ok]
needs_ocr = pytest.mark.skipif(
    bool(OCR_MISSING) and not IN_CI,
    reason=f"needs {' and '.join(OCR_MISSING)}; in CI (CI set) this fails instead")


def ocr_spy(monkeypatch: pytest.MonkeyPatch) -> SpyEngine:
    """The real engines counting the readings they make, made the engines of `check` and
    `build --verify-text` (a missing engine fails here, in CI, where the skip does not
    apply)."""
    if OCR_MISSING:
        pytest.fail(f"the text check tests need {' and '.join(OCR_MISSING)} "
                    "(bash scripts/test installs them)")
    engine = SpyEngine()
    monkeypatch.setattr("qwenbuild.textcheck.engines.default_engine", lambda: engine)
    return engine


class SpyEngine(Engines):
    """The real engines, counting calls: a result served from the cache reads nothing."""

    def __init__(self) -> None:
        real = default_engine()
        assert real.rapid is not None and real.tesseract is not None
        super().__init__(real.rapid, real.tesseract)
        self.reads = 0
        self.calls: list[str] = []
        for engine, name in ((real.rapid, "detect"), (real.rapid, "recognise"),
                             (real.tesseract, "read_with")):
            setattr(engine, name, self._counting(getattr(engine, name), name))

    def _counting(self, method: Callable[..., Any], name: str) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            self.calls.append(name)
            return method(*args, **kwargs)
        return counted


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> SpyEngine:
    return ocr_spy(monkeypatch)


def poster_png(lines: Sequence[str], size: tuple[int, int] = (900, 420)) -> bytes:
    """Large dark text on white, one line per item (the first larger), as a PNG."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    y = 50
    for i, line in enumerate(lines):
        font = ImageFont.load_default(size=64 if i == 0 else 44)
        draw.text((40, y), line, fill=(20, 20, 30), font=font)
        y += 120
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _words(text: str) -> Words:
    return Words.of(text.split())


# -- scoring, on strings --------------------------------------------------------------------


def test_normalising_ignores_case_white_space_and_typographic_punctuation() -> None:
    expected = "Orbit Trams \u2022 Canal Ferries \u2022 Solar Funiculars"
    for read in ("ORBIT TRAMS - CANAL FERRIES - SOLAR FUNICULARS",
                 "Orbit Trams · Canal Ferries · Solar Funiculars",
                 "orbit trams canal ferries solar funiculars"):
        assert normalise(read) == normalise(expected)
    assert normalise("March 28\u2013April 12") == normalise("march 28-april 12")
    assert normalise("\u201cIt\u2019s\u201d") == normalise('"It\'s"') == "its"
    assert normalise("ＫＹＯＴＯ") == "kyoto"  # full-width letters (NFKC)


@pytest.mark.parametrize("expected, read, low, high", [
    ("THE CITY FLOATS", "story-teaser 9:16 THE CITY FLOATS Launch day", 1.0, 1.0),
    ("AURELIA SKYLINE TRANSIT", "AURELIA | Fares | ... ", 0.4, 0.5),
    ("SUMMER MARKET", "SUMNER MAKRET", 0.7, 0.8),
    ("HELLO", "HELLO", 1.0, 1.0),
    ("NEW", "NEWS TODAY", 0.6, 0.8),  # a window starts and ends at word boundaries
    ("Canal Ferries", "Orbit Trams-Canal Ferries-Solar", 1.0, 1.0),
])
def test_a_line_scores_its_best_window_of_the_ocr_text(expected: str, read: str, low: float,
                                                       high: float) -> None:
    found = match_line(expected, _words(read))
    assert low <= found.score <= high, found


def test_a_line_split_over_ocr_lines_reads_whole() -> None:
    found = match_line("AURELIA SKYLINE TRANSIT", Words.of(["AURELIA", "SKYLINE", "TRANSIT"]))
    assert found.score == 1.0 and found.read == "AURELIA SKYLINE TRANSIT"


def test_the_report_shows_the_misspelled_words() -> None:
    found = match_line("SUMMER MARKET", _words("Fresh fruit SUMNER MAKRET open daily"))
    assert found.read == "SUMNER MAKRET"
    assert found.score == pytest.approx(1 - 3 / 12, abs=1e-3)


def test_of_equal_windows_the_one_in_the_same_case_is_reported() -> None:
    found = match_line("THE CITY", _words("The City guide THE CITY"))
    assert found.score == 1.0 and found.read == "THE CITY"


def test_cjk_characters_are_words_of_their_own() -> None:
    assert match_line("春の光祭", Words.of(["京都", "春の", "光祭", "2026"])).score == 1.0
    assert match_line("春の光祭", Words.of(["京都春の光祭2026"])).score == 1.0
    assert match_line("春の光祭", Words.of(["春の米祭"])).score == 0.75


@settings(max_examples=60, deadline=None)
@given(st.text("abcx", min_size=1, max_size=6), st.lists(st.text("abcx ", max_size=6),
                                                         max_size=5))
def test_alignment_finds_the_nearest_window_at_word_boundaries(
        expected: str, words: list[str]) -> None:
    text = Words.of([w for w in " ".join(words).split() if w])
    distance, windows = align(expected, text.chars, text.cuts)
    cuts = [i for i, cut in enumerate(text.cuts) if cut]
    brute = min(levenshtein(expected, text.chars[s:e]) for s in cuts for e in cuts if e >= s)
    assert distance == brute
    assert all(levenshtein(expected, text.chars[s:e]) == distance for s, e in windows)


def test_reading_orders_follow_columns_and_rows() -> None:
    def word(text: str, left: int, top: int, line: int) -> OcrWord:
        return OcrWord(text, left, top, 100, 40, line)

    # Sparse OCR of a headline at the left with a panel beside it, read row by row.
    words = [word("AURELIA", 10, 10, 0), word("Fares", 500, 12, 1), word("SKYLINE", 10, 60, 2),
             word("Day", 500, 62, 3), word("TRANSIT", 10, 110, 4)]
    orders = [" ".join(order) for order in reading_orders(words)]
    assert "AURELIA SKYLINE TRANSIT Fares Day" in orders
    assert orders[0] == "AURELIA Fares SKYLINE Day TRANSIT"  # the engine's own order first


def test_languages_for_cjk_lines_or_the_reason_they_are_skipped() -> None:
    lines = ["SPRING LIGHT", "春光节", "春の光"]
    langs, skipped = plan_languages(lines, frozenset({"eng", "chi_sim"}))
    assert langs == ("eng", "chi_sim")
    assert set(skipped) == {"春の光"} and "tesseract-ocr-jpn" in skipped["春の光"]
    langs, skipped = plan_languages(lines, frozenset({"eng"}))
    assert langs == ("eng",)
    assert "tesseract-ocr-chi-sim" in skipped["春光节"]
    assert plan_languages(["•••"], frozenset({"eng"}))[1] == {"•••": "no letters or digits "
                                                                      "to read"}


CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")  # fonts-wqy-microhei


@needs_ocr
def test_chinese_copy_reads_with_the_chinese_language_data(tmp_path: Path,
                                                           spy: SpyEngine) -> None:
    engine = spy
    missing = [what for what, ok in (("tesseract-ocr-chi-sim", "chi_sim" in engine.languages()),
                                     ("fonts-wqy-microhei", CJK_FONT.is_file())) if not ok]
    if missing and not IN_CI:
        pytest.skip(f"needs {' and '.join(missing)} (bash scripts/test installs them)")
    assert not missing, f"needs {' and '.join(missing)} (bash scripts/test installs them)"
    from qwenbuild.textcheck import TextChecker

    def draw(headline: str) -> Path:
        img = Image.new("RGB", (900, 420), "white")
        draw = ImageDraw.Draw(img)
        draw.text((40, 50), headline, fill=(20, 20, 30), font=ImageFont.truetype(str(CJK_FONT), 72))
        draw.text((40, 190), "SPRING LIGHT 2026", fill=(20, 20, 30),
                  font=ImageFont.truetype(str(CJK_FONT), 44))
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.png"
        img.save(path)
        return path

    checker = TextChecker(engine, Store(tmp_path / "cache"))
    lines = ["春季灯光节", "SPRING LIGHT 2026"]
    good = checker.check(draw("春季灯光节"), "good", lines)
    assert good.languages[:2] == ("eng", "chi_sim")
    assert good.status() == "green", good
    assert {line.verdict for line in good.lines} == {"right"}
    wrong = checker.check(draw("春季灯火节"), "wrong", lines)  # one character of five
    assert wrong.status() == "red", wrong
    assert wrong.worst is not None and "灯火" in wrong.worst.read
    assert wrong.worst.verdict == "wrong"


@needs_ocr
def test_without_tesseract_data_rapidocr_still_reads_chinese(tmp_path: Path,
                                                             spy: SpyEngine) -> None:
    """A line Tesseract has no data for (kana without tesseract-ocr-jpn) is read by
    RapidOCR alone instead of being skipped."""
    from qwenbuild.textcheck import TextChecker

    img = Image.new("RGB", (900, 300), "white")
    ImageDraw.Draw(img).text((40, 80), "春のはなび", fill=(20, 20, 30),
                             font=ImageFont.truetype(str(CJK_FONT), 96))
    path = tmp_path / "kana.png"
    img.save(path)
    result = TextChecker(spy, Store(tmp_path / "cache")).check(path, "kana", ["春のはなび"])
    assert result.skipped == ()
    assert result.status() == "green", result


# -- the command, on real images ------------------------------------------------------------

CAMPAIGN = """\
[campaign]
name = "textcheck"

[brand]
name = "Acme"
palette = ["cream", "midnight blue"]

[defaults]
template = "poster.j2"
aspects = ["1:1"]

[providers.half]
kind = "preview"
scale = 0.5

[[assets]]
id = "market"
providers = ["half"]
[assets.copy]
headline = "SUMMER MARKET"
subtitle = "Fresh fruit every Sunday"
"""

TEMPLATE = 'A poster. Headline: "{{ copy.headline }}".'


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    build_file_tree(tmp_path, {"templates/poster.j2": TEMPLATE, "campaign.toml": CAMPAIGN})
    return tmp_path / "campaign.toml"


def _entry(campaign: Path, rel: str) -> dict[str, Any]:
    manifest = json.loads((campaign.parent / "out" / "manifest.json").read_text())
    return manifest["outputs"][rel]


@needs_ocr
def test_preview_outputs_pass_and_their_scores_land_in_the_manifest(
        campaign: Path, run: Callable[..., Any], spy: SpyEngine) -> None:
    assert run("build", campaign).code == 0
    manifest = (campaign.parent / "out" / "manifest.json").read_bytes()
    result = run("check", campaign)
    assert result.code == 0, result.out + result.err
    assert "green 1.00  out/1x1/half/market.png" in result.out
    assert ("1 images: 1 green (min score 1.00); 1 read, 0 from the check cache; "
            "manifest.json left as it is (--record writes the scores)") in result.out
    assert "engines: rapidocr " in result.out and " + tesseract " in result.out
    # A check changes no committed file: the manifest is as the build left it.
    assert (campaign.parent / "out" / "manifest.json").read_bytes() == manifest
    recorded = run("check", campaign, "--record")
    assert "scores saved in manifest.json" in recorded.out
    text_check = _entry(campaign, "1x1/half/market.png")["text_check"]
    assert text_check["status"] == "green" and text_check["score"] == 1.0
    assert [line["expected"] for line in text_check["lines"]] == [
        "SUMMER MARKET", "Fresh fruit every Sunday"]
    assert [line["verdict"] for line in text_check["lines"]] == ["right", "right"]
    assert text_check["engine"].startswith("rapidocr ")
    assert text_check["min_score"] == 1.0

    # Another check costs nothing: every result comes from the cache.
    reads = spy.reads
    again = run("check", campaign, "--json")
    assert again.code == 0 and spy.reads == reads
    report = again.json()
    assert (report["read"], report["cached"], report["green"]) == (0, 1, 1)
    assert report["images"][0]["cached"] is True


@needs_ocr
def test_a_misspelled_headline_fails_and_the_report_shows_the_wrong_word(
        campaign: Path, run: Callable[..., Any], spy: SpyEngine) -> None:
    assert run("build", campaign).code == 0
    # Swap the output for a drawn poster with the headline misspelled, as if the model had
    # drawn it so (the manifest describes it, so the check records its scores).
    output = campaign.parent / "out/1x1/half/market.png"
    output.write_bytes(poster_png(["SUMNER MAKRET", "Fresh fruit every Sunday"]))
    manifest_file = campaign.parent / "out" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    import hashlib

    manifest["outputs"]["1x1/half/market.png"]["sha256"] = hashlib.sha256(
        output.read_bytes()).hexdigest()
    manifest_file.write_text(json.dumps(manifest))
    result = run("check", campaign, "--record")
    assert result.code == 1
    assert "red 0.75  out/1x1/half/market.png  worst: 'SUMMER MARKET' read 'SUMNER MAKRET'" \
        in result.out
    text_check = _entry(campaign, "1x1/half/market.png")["text_check"]
    assert text_check["status"] == "red"
    assert (text_check["worst_line"], text_check["read"]) == ("SUMMER MARKET", "SUMNER MAKRET")
    assert [line["verdict"] for line in text_check["lines"]] == ["wrong", "right"]
    assert text_check["lines"][1]["score"] == 1.0
    # A lower threshold passes it, amber.
    assert run("check", campaign, "--min-score", "0.7", "--record").code == 0
    assert _entry(campaign, "1x1/half/market.png")["text_check"]["status"] == "amber"


def _replace_output(campaign: Path, data: bytes) -> None:
    """Put `data` in place of the built output, as if the model had drawn it (the
    manifest describes it, so the check records its verdict)."""
    import hashlib

    output = campaign.parent / "out/1x1/half/market.png"
    output.write_bytes(data)
    manifest_file = campaign.parent / "out" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["outputs"]["1x1/half/market.png"]["sha256"] = hashlib.sha256(data).hexdigest()
    manifest_file.write_text(json.dumps(manifest))


@needs_ocr
def test_one_wrong_letter_in_a_long_subtitle_is_red(campaign: Path, run: Callable[..., Any],
                                                   spy: SpyEngine) -> None:
    """The old ratio score gave this 0.97, green: the verdict counts errors, not ratios."""
    subtitle = "Fresh fruit and flowers every Sunday"
    campaign.write_text(campaign.read_text().replace("Fresh fruit every Sunday", subtitle))
    assert run("build", campaign).code == 0
    _replace_output(campaign, poster_png(["SUMMER MARKET", subtitle.replace("flowers",
                                                                            "flowars")]))
    result = run("check", campaign, "--json")
    assert result.code == 1, result.out + result.err
    image = result.json()["images"][0]
    assert image["status"] == "red"
    assert image["worst_line"] == subtitle and "flowars" in image["read"]
    assert image["score"] > 0.95


@needs_ocr
def test_an_image_without_the_text_is_unreadable_exit_3(campaign: Path,
                                                        run: Callable[..., Any],
                                                        spy: SpyEngine) -> None:
    """Nothing confident to go by: neither green nor a false alarm."""
    assert run("build", campaign).code == 0
    blank = io.BytesIO()
    Image.new("RGB", (600, 400), (200, 200, 200)).save(blank, "PNG")
    _replace_output(campaign, blank.getvalue())
    result = run("check", campaign, "--record")
    assert result.code == 3, result.out + result.err
    assert "unreadable" in result.out
    assert _entry(campaign, "1x1/half/market.png")["text_check"]["status"] == "unreadable"


@needs_ocr
def test_checking_the_same_image_again_gives_the_same_verdict(tmp_path: Path,
                                                              spy: SpyEngine) -> None:
    from qwenbuild.textcheck import TextChecker

    path = tmp_path / "poster.png"
    path.write_bytes(poster_png(["SUMNER MARKET", "Fresh fruit every Sunday"]))
    lines = ["SUMMER MARKET", "Fresh fruit every Sunday"]
    first = TextChecker(spy, Store(tmp_path / "one")).check(path, "x" * 64, lines)
    second = TextChecker(spy, Store(tmp_path / "two")).check(path, "x" * 64, lines)
    assert not second.cached
    assert first == second and first.status() == "red"


def test_check_says_which_engine_it_ran_with_when_rapidocr_is_absent(
        campaign: Path, run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    if OCR_MISSING and not IN_CI:
        pytest.skip(f"needs {' and '.join(OCR_MISSING)}")
    monkeypatch.setenv("QWENBUILD_OCR", "tesseract")
    assert run("build", campaign).code == 0
    result = run("check", campaign, "--record")
    assert result.code == 0, result.out + result.err
    assert "engines: tesseract " in result.out and "one engine only" in result.out
    assert "rapidocr" not in _entry(campaign, "1x1/half/market.png")["text_check"]["engine"]


@needs_ocr
def test_expect_text_from_defaults_is_rendered_like_the_prompt(
        campaign: Path, run: Callable[..., Any], spy: SpyEngine) -> None:
    text = campaign.read_text().replace(
        '[defaults]\n', '[defaults]\nexpect_text = ["{{ copy.headline | title }}", '
                        '"{{ brand.name }} {{ asset.aspect }}"]\n')
    campaign.write_text(text)
    assert run("build", campaign).code == 0
    report = run("check", campaign, "--json").json()
    lines = report["images"][0]["lines"]
    assert [line["expected"] for line in lines] == ["Summer Market", "Acme 1:1"]
    assert lines[0]["score"] == 1.0  # case does not count


def test_a_broken_expect_text_template_is_an_input_error(campaign: Path,
                                                         run: Callable[..., Any]) -> None:
    campaign.write_text(campaign.read_text().replace(
        '[[assets]]\nid = "market"\n', '[[assets]]\nid = "market"\n'
                                       'expect_text = ["{{ copy.tagline }}"]\n'))
    assert run("build", campaign).code == 0  # a build without the check does not read it
    result = run("check", campaign)
    assert result.code == 2
    assert "asset market: expect_text[0]: undefined variable" in result.err
    assert "tagline" in result.err


def test_check_before_any_build_says_to_build_first(campaign: Path,
                                                    run: Callable[..., Any]) -> None:
    result = run("check", campaign)
    assert result.code == 2
    assert "run `qwenbuild build" in result.err and "manifest.json" in result.err


def test_a_missing_ocr_engine_says_how_to_install_it(campaign: Path, run: Callable[..., Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pytesseract = pytest.importorskip("pytesseract")
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "no-such-tesseract-here")
    monkeypatch.setenv("QWENBUILD_OCR", "tesseract")  # RapidOCR would read on alone
    assert run("build", campaign).code == 0
    result = run("check", campaign)
    assert result.code == 2
    assert "apt-get install tesseract-ocr" in result.err
    assert run("build", campaign, "--verify-text").code == 2


def test_min_score_must_be_a_fraction(campaign: Path, run: Callable[..., Any]) -> None:
    assert run("check", campaign, "--min-score", "80").code == 2
    assert run("build", campaign, "--verify-text", "--min-score", "-1").code == 2
    assert run("build", campaign, "--verify-text", "--max-rerolls", "-1").code == 2


@needs_ocr
def test_check_scores_reach_the_review_page(tmp_path: Path, run) -> None:
    """`check` writes each image's verdict into the page, as a green/amber/red badge."""
    from .conftest import SIMPLE_CAMPAIGN, SIMPLE_TEMPLATE, build_file_tree
    from .pagedata import read_page

    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE,
                               "campaign.toml": SIMPLE_CAMPAIGN.replace("scale = 0.1",
                                                                        "scale = 0.5")})
    campaign = tmp_path / "campaign.toml"
    assert run("build", campaign).code == 0
    assert set(read_page(tmp_path / "out").texts().values()) == {""}
    result = run("check", campaign)
    assert result.code == 0, result.out + result.err
    data = read_page(tmp_path / "out")
    statuses = {rel: (o["text"] or {}).get("status") for rel, o in data.outputs.items()}
    assert set(statuses.values()) == {"green"}, statuses
    assert set(data.texts().values()) == {"green"}  # what the filters and badges read


@needs_ocr
def test_a_damaged_output_fails_its_own_check_only(campaign: Path, run: Callable[..., Any],
                                                   spy: SpyEngine) -> None:
    text = campaign.read_text().replace('aspects = ["1:1"]', 'aspects = ["1:1", "3:4"]')
    campaign.write_text(text)
    assert run("build", campaign).code == 0
    damaged = campaign.parent / "out" / "3x4" / "half" / "market.png"
    damaged.write_bytes(damaged.read_bytes()[:400])
    result = run("check", campaign, "--json")
    assert result.code == 1, result.err
    statuses = {i["output"]: i["status"] for i in result.json()["images"]}
    assert statuses == {"out/1x1/half/market.png": "green",
                        "out/3x4/half/market.png": "error"}
    assert "Traceback" not in result.err


def test_the_cli_defaults_match_the_library() -> None:
    """The CLI declares --min-score without importing the text check (start-up time)."""
    from qwenbuild.cli import parser as make_parser
    from qwenbuild.textcheck import DEFAULT_MIN_SCORE

    parser = make_parser()
    assert parser.parse_args(["check", "c.toml"]).min_score == DEFAULT_MIN_SCORE
    assert parser.parse_args(["build", "c.toml"]).min_score == DEFAULT_MIN_SCORE
