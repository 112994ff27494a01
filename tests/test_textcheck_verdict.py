"""The text check's verdict, on strings and fake engines (no OCR): one wrong letter is red
whatever the line's length, what cannot be read with confidence is unreadable, and the
cache, the time limit and the absence of RapidOCR behave as documented."""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from qwenbuild.store import Store
from qwenbuild.textcheck import (
    CHECK_VERSION,
    LineResult,
    TextChecker,
    TextResult,
    engines,
)
from qwenbuild.textcheck.engines import OcrEngineMissing, OcrWord
from qwenbuild.textcheck.score import Words, edit_script, match_line, match_places, normalise
from qwenbuild.textcheck.verdict import (
    RIGHT,
    UNDECIDED,
    UNREADABLE,
    WRONG,
    Evidence,
    agree,
    decide,
)

SUBTITLE = "Fresh fruit and flowers every Sunday morning"  # 36 letters


def evidence(expected: str, read: str, engine: str = "rapidocr", source: str = "rapid",
             conf: float = 0.99) -> Evidence:
    words = read.split()
    return Evidence(source, engine, match_line(expected, Words.of(words, [conf] * len(words))),
                    len(normalise(expected)))


# -- matching reports what differs, where, and how sure the engine was there -----------------


def test_the_edits_name_the_letters_that_differ_and_where() -> None:
    found = match_line("SUMMER MARKET", Words.of(["Fresh", "SUMNER", "MARKET"]))
    assert found.distance == 1 and len(found.edits) == 1
    assert found.edits[0][0] in (2, 3) and found.edits[0][1:] == ("m", "n")
    dropped = match_line("SUMMER", Words.of(["SUMER"]))
    assert dropped.edits[0][1:] == ("m", "")
    assert edit_script("abc", "abxc") == [(2, 2, "", "x")]


def test_the_confidence_where_a_line_differs_is_that_of_the_differing_letters() -> None:
    words = Words.of(["SUMNER"], [[0.99, 0.99, 0.99, 0.42, 0.99, 0.99]])
    found = match_line("SUMMER", words)
    assert found.diff_conf == 0.42 and found.conf == 0.42
    sure = match_line("SUMMER", Words.of(["SUMNER", "x"], [[0.5, 0.99, 0.99, 0.99, 0.99, 0.6],
                                                           0.1]))
    assert sure.diff_conf == 0.99 and sure.conf == 0.5  # unsure elsewhere, sure where it differs
    # Tesseract gives a confidence per word: it holds for each of its letters.
    assert match_line("SUMMER", Words.of(["SUMMER"], [0.87])).conf == 0.87


def test_a_doubled_chinese_character_at_a_line_end_is_a_difference() -> None:
    """CJK windows may end between any two characters; a repeat across the edge, in the
    same OCR word, still counts (the window does not stop short of it)."""
    found = match_line("预订座位请扫码", Words.of(["预订座位请扫码码"]))
    assert found.distance == 1 and [e[1:] for e in found.edits] == [("", "码")]
    assert match_line("限时优惠", Words.of(["限限时优惠"])).distance == 1
    assert match_line("春の光祭", Words.of(["京都春の光祭2026"])).distance == 0


def test_letters_lost_at_a_reading_end_are_no_evidence_unless_whole_words() -> None:
    """A reading that lost the end of a line (text running onto a darker shape) does not
    object; a whole word missing does."""
    cut = match_line("Fresh fruit every Sunday", Words.of("Fresh fruit every Su".split()))
    assert cut.distance == 4 and cut.edits == () and cut.diff_conf == 0.0
    dropped = match_line("FRESH FRUIT EVERY SUNDAY", Words.of("FRESH FRUIT EVERY".split()))
    assert dropped.distance == 6 and len(dropped.edits) == 6 and dropped.diff_conf == 1.0
    inside = match_line("SUMMER MARKET", Words.of(["SUMMER", "MARKT"]))
    assert inside.edits == ((10, "e", ""),)


def test_characters_printed_alike_are_one() -> None:
    assert normalise("春のひかリ") == normalise("春のひかり")  # katakana ri, hiragana ri
    assert normalise("ロ") == normalise("口")
    assert normalise("SUMMER") != normalise("SUMNER")


# -- the verdict of one line --------------------------------------------------------------------


def test_one_wrong_letter_in_a_long_line_is_wrong_when_two_readings_agree() -> None:
    misspelled = SUBTITLE.replace("flowers", "flowars")
    rapid = evidence(SUBTITLE, misspelled)
    assert rapid.match.score > 0.97  # the old ratio score called this green
    assert decide([rapid], final=False)[0] == UNDECIDED  # one reading is not enough
    tess = evidence(SUBTITLE, misspelled, "tesseract", "tess-lines", 0.9)
    verdict, chosen = decide([rapid, tess], final=False)
    assert verdict == WRONG and chosen is not None and "flowars" in chosen.match.read


def test_a_confident_exact_reading_confirms_a_line_at_once() -> None:
    assert decide([evidence(SUBTITLE, SUBTITLE.upper())], final=False)[0] == RIGHT


def test_an_unconfident_exact_reading_does_not_confirm() -> None:
    unsure = evidence(SUBTITLE, SUBTITLE, conf=0.6)
    assert decide([unsure], final=False)[0] == UNDECIDED
    assert decide([unsure], final=True)[0] == UNREADABLE


def test_misreadings_that_differ_from_each_other_do_not_make_a_line_wrong() -> None:
    a = evidence("SUMMER MARKET", "SUMMER MAKKET", conf=0.95)
    b = evidence("SUMMER MARKET", "SUMMFR MARKET", "tesseract", "tess-lines", 0.9)
    assert not agree([a, b], [a, b])
    assert decide([a, b], final=False)[0] == UNDECIDED
    assert decide([a, b], final=True)[0] == UNREADABLE  # neither is "sure"


def test_a_very_sure_objection_stands_alone_after_the_last_reading() -> None:
    sure = evidence("SUMMER MARKET", "SUMMER MAKRET", conf=0.999)
    assert decide([sure], final=False)[0] == UNDECIDED
    assert decide([sure], final=True)[0] == WRONG


def test_a_reading_that_matches_blocks_a_wrong_verdict() -> None:
    wrong_a = evidence("SUMMER MARKET", "SUMMER MAKRET", "tesseract", "tess-lines", 0.9)
    wrong_b = evidence("SUMMER MARKET", "SUMMER MAKRET", "rapidocr", "rapid", 0.9)
    right_unsure = evidence("SUMMER MARKET", "SUMMER MARKET", conf=0.7)
    assert decide([wrong_a, wrong_b], final=False)[0] == WRONG
    assert decide([right_unsure, wrong_a, wrong_b], final=True)[0] == UNREADABLE


def test_a_doubled_letter_beats_a_reading_that_merged_it() -> None:
    merged = evidence("FAIR", "FAIR", conf=0.8)  # a recogniser merged "II"
    doubled_a = evidence("FAIR", "FAIIR", "tesseract", "tess-lines", 0.9)
    doubled_b = evidence("FAIR", "FAIIR", "tesseract", "tess-otsu", 0.85)
    assert doubled_a.adds_repeat
    assert decide([merged, doubled_a, doubled_b], final=False)[0] == WRONG


def test_a_doubled_character_counts_beside_other_objections() -> None:
    """Two readings of one engine agreeing on a doubled character are enough even when
    another reading objects to something else (it lost the end of the line)."""
    doubled_a = evidence("新年烟火晚会", "新新年烟火晚会", source="rapid")
    doubled_b = evidence("新年烟火晚会", "新新年烟火晚会", source="rapid-norm")
    lost_end = evidence("新年烟火晚会", "新 年 烟", "tesseract", "tess-lines", 0.9)
    merged = evidence("新年烟火晚会", "新 年 烟 火 晚会", "tesseract", "tess-sauvola", 0.92)
    assert lost_end.objects and not lost_end.adds_repeat
    assert decide([doubled_a, lost_end, doubled_b, merged], final=True)[0] == WRONG
    # Without the second reading of the doubled character: no verdict either way.
    assert decide([doubled_a, lost_end, merged], final=True)[0] == UNREADABLE


def test_two_rapidocr_readings_agreeing_on_a_chinese_character_are_enough() -> None:
    """Tesseract's Chinese reading is no second opinion: RapidOCR reading 曰 for 日 in
    both its renditions of the line is wrong, unless a reading matches the line."""
    rapid = evidence("夏日音乐会", "夏曰音乐会", source="rapid", conf=0.83)
    norm = evidence("夏日音乐会", "夏曰音乐会", source="rapid-norm", conf=0.81)
    unsure = evidence("夏日音乐会", "夏 日 音乐 会", "tesseract", "tess-lines", 0.0)
    assert decide([rapid, unsure, norm], final=False)[0] == WRONG
    sure = evidence("夏日音乐会", "夏 日 音乐 会", "tesseract", "tess-lines", 0.77)
    assert decide([rapid, sure, norm], final=True)[0] == UNREADABLE  # they contradict
    # One RapidOCR reading alone is not enough; nor, for Latin letters, are two.
    assert decide([rapid, unsure], final=True)[0] == UNREADABLE
    latin = [evidence("SUMMER MARKET", "SUMNER MARKET", source=s, conf=0.9)
             for s in ("rapid", "rapid-norm")]
    assert decide(latin, final=True)[0] == UNREADABLE


def test_a_character_the_other_engine_cannot_output_needs_no_second_engine() -> None:
    """Tesseract's Chinese model has ~4,000 characters: it reads 耒 (drawn for 来) as
    来, which is no evidence; two RapidOCR readings of the line agreeing on 耒 make it
    wrong. Where Tesseract knows the character, its match still counts."""
    rapid = evidence("老港口广场等你来", "老港口广场等你耒", source="rapid")
    norm = evidence("老港口广场等你来", "老港口广场等你耒", source="rapid-norm")
    tess = evidence("老港口广场等你来", "老 港口 广场 等 你 来", "tesseract", "tess-lines", 0.83)
    assert rapid.match.edits == ((7, "来", "耒"),)  # a substitution, not a drop at the end
    charsets = {"rapidocr": frozenset("老港口广场等你来耒"),
                "tesseract": frozenset("老港口广场等你来")}
    assert decide([rapid, tess, norm], final=True, charsets=charsets)[0] == WRONG
    assert decide([rapid, tess, norm], final=True)[0] == UNREADABLE  # charsets unknown
    knows = {**charsets, "tesseract": frozenset("老港口广场等你来耒")}
    assert decide([rapid, tess, norm], final=True, charsets=knows)[0] == UNREADABLE
    # A reading of the objecting engine that matches still blocks.
    sure_match = evidence("老港口广场等你来", "老港口广场等你来", source="rapid-gray", conf=0.7)
    assert decide([rapid, tess, norm, sure_match], final=True,
                  charsets=charsets)[0] == UNREADABLE
    # Latin letters are never taken for another engine's blind spot.
    latin = [evidence("Cafe", "Café", source=s, conf=0.9) for s in ("rapid", "rapid-norm")]
    assert decide(latin, final=True, charsets={"rapidocr": frozenset("cafeé"),
                                              "tesseract": frozenset("cafe")})[0] != WRONG


def test_a_reading_that_did_not_find_the_line_has_no_opinion() -> None:
    lost = evidence("SUMMER MARKET", "TICKETS 25 DOORS 7PM")
    assert not lost.found and not lost.objects
    assert decide([lost], final=True)[0] == UNREADABLE


# -- the image's status -------------------------------------------------------------------------


def _result(*verdicts: tuple[str, float]) -> TextResult:
    return TextResult(tuple(LineResult(f"line {i}", "x", score, verdict)
                            for i, (verdict, score) in enumerate(verdicts)))


def test_status_red_wins_then_unreadable_then_green() -> None:
    assert _result((RIGHT, 1.0), (RIGHT, 1.0)).status() == "green"
    assert _result((RIGHT, 1.0), (WRONG, 0.97)).status() == "red"
    assert _result((UNREADABLE, 0.5), (RIGHT, 1.0)).status() == "unreadable"
    assert _result((UNREADABLE, 0.5), (WRONG, 0.9)).status() == "red"
    assert TextResult(()).status() == "none"
    assert TextResult((), error="cannot read the image").status() == "error"
    timed_out = TextResult((LineResult("a", "a", 1.0, RIGHT),), unreadable="not read within 8s")
    assert timed_out.status() == "unreadable"


def test_a_lower_min_score_tolerates_a_wrong_line_as_amber() -> None:
    result = _result((RIGHT, 1.0), (WRONG, 0.97))
    assert result.status(0.95) == "amber"
    assert result.status(0.98) == "red"
    assert _result((UNREADABLE, 0.5), (WRONG, 0.97)).status(0.95) == "unreadable"


def test_rank_orders_attempts_green_amber_unreadable_red() -> None:
    green, red = _result((RIGHT, 1.0)), _result((WRONG, 0.5))
    unreadable, amber = _result((UNREADABLE, 0.2)), _result((WRONG, 0.97))
    ranked = sorted([red, unreadable, green, amber], key=lambda r: r.rank(0.95), reverse=True)
    assert ranked == [green, amber, unreadable, red]
    assert _result((WRONG, 0.9)).rank() > _result((WRONG, 0.5)).rank()  # closer is better


# -- the checker with a fake engine: cache, time, network ---------------------------------------


class ScriptedEngine:
    """An engine that reads the same words from any image, counting its reads."""

    name = "scripted"

    def __init__(self, words: Sequence[str], conf: float = 96.0) -> None:
        self.words = [OcrWord(w, 10 + 100 * i, 10, 90, 40, 0, conf) for i, w in enumerate(words)]
        self.reads = 0

    def identity(self) -> str:
        return "scripted 1"

    def languages(self) -> frozenset[str]:
        return frozenset({"eng"})

    def read(self, image: Any, languages: Sequence[str]) -> list[OcrWord]:
        self.reads += 1
        return list(self.words)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "poster.png"
    Image.new("RGB", (300, 200), "white").save(path)
    return path


def test_results_are_cached_with_their_image_hash(tmp_path: Path, image: Path) -> None:
    engine = ScriptedEngine(["SUMMER", "MARKET"])
    checker = TextChecker(engine, Store(tmp_path / "cache"))
    first = checker.check(image, "a" * 64, ["SUMMER MARKET"])
    assert first.status() == "green" and not first.cached and engine.reads == 1
    again = checker.check(image, "a" * 64, ["SUMMER MARKET"])
    assert again.cached and again.lines == first.lines and engine.reads == 1
    files = list((tmp_path / "cache" / "textcheck" / "results").rglob("*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["image"] == "a" * 64 and data["v"] == CHECK_VERSION
    # Another image hash, other lines or another engine identity: read again.
    checker.check(image, "b" * 64, ["SUMMER MARKET"])
    assert engine.reads == 2
    checker.check(image, "a" * 64, ["SUMMER MARKETS"])
    assert engine.reads > 2
    reads = engine.reads
    other = ScriptedEngine(["SUMMER", "MARKET"])
    other.identity = lambda: "scripted 2"  # type: ignore[method-assign]
    TextChecker(other, Store(tmp_path / "cache")).check(image, "a" * 64, ["SUMMER MARKET"])
    assert other.reads == 1 and engine.reads == reads


def test_one_engine_reading_the_same_wrong_word_twice_is_red(tmp_path: Path,
                                                              image: Path) -> None:
    engine = ScriptedEngine(["SUMMER", "MAKRET"])
    result = TextChecker(engine, Store(tmp_path)).check(image, "c" * 64, ["SUMMER MARKET"])
    assert result.status() == "red"
    assert result.worst is not None and result.worst.read == "SUMMER MAKRET"
    assert result.readings[:2] == ("scripted-page", "scripted-inverted")


def test_unconfident_readings_make_an_unreadable_image(tmp_path: Path, image: Path) -> None:
    engine = ScriptedEngine(["SUMMER", "MARKET"], conf=20.0)
    result = TextChecker(engine, Store(tmp_path)).check(image, "d" * 64, ["SUMMER MARKET"])
    assert result.status() == "unreadable"
    assert result.lines[0].verdict == UNREADABLE


def test_an_image_out_of_time_is_unreadable_and_not_cached(tmp_path: Path, image: Path) -> None:
    engine = ScriptedEngine(["SUMMER", "MARKET"])
    checker = TextChecker(engine, Store(tmp_path), time_limit=0.0)
    result = checker.check(image, "e" * 64, ["SUMMER MARKET"])
    assert result.status() == "unreadable" and result.error is None
    assert result.unreadable is not None and "not read within" in result.unreadable
    assert engine.reads == 0
    assert not list(tmp_path.rglob("*.json"))  # tried again next time
    assert TextChecker(engine, Store(tmp_path)).check(image, "e" * 64, ["SUMMER MARKET"]).status() \
        == "green"


def test_rapidocr_without_its_models_is_not_used_and_nothing_is_downloaded(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rapidocr = pytest.importorskip("rapidocr")
    (tmp_path / "models").mkdir()
    (tmp_path / "__init__.py").write_text("")
    monkeypatch.setattr(rapidocr, "__file__", str(tmp_path / "__init__.py"))
    with pytest.raises(OcrEngineMissing, match="not inside the installed package"):
        engines.RapidOcrEngine()


def test_without_rapidocr_the_check_runs_on_tesseract_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pytesseract")
    monkeypatch.setenv("QWENBUILD_OCR", "tesseract")
    try:
        engine = engines.default_engine()
    except OcrEngineMissing:
        pytest.skip("Tesseract is not installed")
    assert engine.rapid is None and engine.names == ("tesseract",)
    assert engine.identity().startswith("tesseract ")


def test_an_uninstalled_rapidocr_leaves_tesseract_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    pytest.importorskip("pytesseract")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "rapidocr" else real(name, *a))
    with pytest.raises(OcrEngineMissing, match="qwenbuild\\[ocr\\]"):
        engines.RapidOcrEngine()
    try:
        engine = engines.default_engine()
    except OcrEngineMissing:
        pytest.skip("Tesseract is not installed")
    assert engine.names == ("tesseract",)


def test_checking_opens_no_network_connection(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """RapidOCR's models come from the wheel: loading and reading connect to nothing."""
    pytest.importorskip("rapidocr")
    from PIL import ImageDraw, ImageFont

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network connection attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    engine = engines.RapidOcrEngine()
    img = Image.new("RGB", (700, 200), "white")
    ImageDraw.Draw(img).text((30, 60), "HELLO RAPID", fill="black",
                             font=ImageFont.load_default(size=60))
    path = tmp_path / "hello.png"
    img.save(path)
    result = TextChecker(engines.Engines(engine, None), Store(tmp_path)).check(
        path, "f" * 64, ["HELLO RAPID"])
    assert result.status() == "green", result


# -- every place of the line ----------------------------------------------------------------


def _places(expected: str, ocr_lines: list[str], others: tuple[str, ...] = ()) -> list[str]:
    """What `match_places` finds, one OCR line per item: each place's reading, marked `~`
    for a near miss."""
    words = Words.of(ocr_lines)
    ranges = []
    for k in range(len(ocr_lines)):
        chars = [x for x, owner in enumerate(words.owner) if owner == k]
        ranges.append((chars[0], chars[-1] + 1))
    return [("~" if m.near_miss else "") + m.read
            for m in match_places(expected, words, ranges, others)]


def test_every_place_that_reads_as_the_line_or_a_near_miss_of_it_is_found() -> None:
    head = "AURELIA SKYLINE TRANSIT"
    assert _places(head, ["Aurelia Skyline Transit", "AURELIA SKYLTNE TRANSIT"]) == [
        "Aurelia Skyline Transit", "~AURELIA SKYLTNE TRANSIT"]
    assert _places(head, ["AURELIA TRANSIT", "Aurelia Skyline Transit"]) == [
        "Aurelia Skyline Transit", "~AURELIA TRANSIT"]  # a whole word missing
    assert _places(head, ["AURELIA SKYLINE TRANSIT", "Aurelia Skyline Transit"]) == [
        "AURELIA SKYLINE TRANSIT", "Aurelia Skyline Transit"]  # drawn twice, right
    # Not near misses: the line inside a longer line, a line of other words, a part of
    # another line, two letters wrong in a short line, one word left of two.
    assert _places("SKYLINE", ["SKYLINE", "SKYLINE TRANSIT", "SKYLINES ARE BLUE"]) == [
        "SKYLINE", "SKYLINE TRANSIT"]
    assert _places("NEW", ["NEW", "NOW", "NEWS"]) == ["NEW", "~NOW"]  # an extra letter
    assert _places("SUMMER", ["SUMMER", "SUMMMER", "SUMER"]) == [
        "SUMMER", "~SUMMMER", "~SUMER"]  # a doubled letter, a missing one
    assert _places("SUMMER", ["SUMMER", "SAMMAR"]) == ["SUMMER", "~SAMMAR"]
    assert _places("TRAM", ["TRAM", "TRUMP"]) == ["TRAM"]
    assert _places("SUMMER MARKET", ["SUMMER MARKET", "MARKET"]) == ["SUMMER MARKET"]


def test_a_place_closer_to_another_expected_line_is_not_a_near_miss() -> None:
    lines = ("GATE A OPENS", "GATE B OPENS")
    assert _places(lines[0], ["GATE A OPENS", "GATE B OPENS"], lines) == ["GATE A OPENS"]
    assert _places(lines[0], ["GATE A OPENS", "GATE B OPENS", "GATE A OPNES"], lines) == [
        "GATE A OPENS", "~GATE A OPNES"]
    lines = ("SUMMER NIGHT MARKET", "SUMMER MARKET")
    assert _places(lines[0], ["SUMMER NIGHT MARKET", "SUMMER MARKET"], lines) == [
        "SUMMER NIGHT MARKET"]
    assert _places(lines[0], ["SUMMER NIGHT MARKET", "SUMMER MARKET"]) == [
        "SUMMER NIGHT MARKET", "~SUMMER MARKET"]  # without the other line: a word missing


def _at(e: Evidence, box: tuple[int, int, int, int]) -> Evidence:
    return Evidence(e.source, e.engine, e.match, e.length, box)


def test_the_line_read_right_elsewhere_does_not_excuse_a_near_miss() -> None:
    head = "AURELIA SKYLINE TRANSIT"
    label, big = (10, 10, 200, 30), (10, 60, 800, 300)
    words = Words.of(["Aurelia Skyline Transit", "AURELIA SKYLTNE TRANSIT"], [0.99, 0.99])
    right, near = match_places(head, words, [(0, 21), (21, 42)])
    assert not right.distance and near.near_miss
    rapid = [Evidence("rapid", "rapidocr", right, 21, label),
             Evidence("rapid", "rapidocr", near, 21, big)]
    tess = [_at(evidence(head, "Aurelia Skyline Transit", "tesseract", "tess-lines"), label),
            Evidence("tess-lines", "tesseract", near, 21, big)]
    assert decide(rapid, final=False)[0] == UNDECIDED  # no longer right at once
    verdict, chosen = decide(rapid + tess, final=False)
    assert verdict == WRONG and chosen is not None and chosen.box == big
    # Read right in the same place by the other engine: the readings contradict.
    tess_right = [_at(evidence(head, "AURELIA SKYLINE TRANSIT", "tesseract", "tess-lines"),
                      big)]
    assert decide(rapid + tess_right, final=True)[0] == UNREADABLE
    # A near miss the engine is unsure of says nothing: the line is right.
    unsure = Evidence("rapid", "rapidocr", match_places(head, Words.of(
        ["Aurelia Skyline Transit", "AURELIA SKYLTNE TRANSIT"], [0.99, 0.4]),
        [(0, 21), (21, 42)])[1], 21, big)
    assert decide([rapid[0], unsure], final=False)[0] == RIGHT
