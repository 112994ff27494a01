"""The text check reads each locale's copy with that language's OCR data when installed,
and says when it is not (`textcheck/locales.py`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qwenbuild.textcheck.engines import TesseractEngine
from qwenbuild.textcheck.locales import plan_reading, tesseract_language

from .conftest import build_file_tree
from .test_textcheck import IN_CI, needs_ocr

# -- locales to languages, without OCR ----------------------------------------------------------


@pytest.mark.parametrize("locale, language", [
    ("en", "eng"), ("en-GB", "eng"), ("de", "deu"), ("de-AT", "deu"), ("fr-CA", "fra"),
    ("pt-BR", "por"), ("ja", "jpn"), ("ko", "kor"), ("zh-Hans", "chi_sim"),
    ("zh-CN", "chi_sim"), ("zh", "chi_sim"), ("zh-Hant", "chi_tra"), ("zh-TW", "chi_tra"),
    ("zh-Hant-HK", "chi_tra"), ("ru", "rus"), ("el", "ell"), ("xx", None), (None, None),
])
def test_a_locale_maps_to_its_tesseract_language(locale: str | None,
                                                 language: str | None) -> None:
    assert tesseract_language(locale) == language


LATIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789äöüÄÖÜß")


def test_the_locales_language_leads_when_installed_and_is_noted_when_not() -> None:
    lines = ["SOMMERMARKT IN KÖLN"]
    found = plan_reading(lines, {"eng", "deu"}, "de", LATIN)
    assert (found.languages, found.skipped, found.notes) == (("deu", "eng"), {}, ())
    missing = plan_reading(lines, {"eng"}, "de", LATIN)
    assert missing.languages == ("eng",) and missing.skipped == {}  # read anyway
    assert missing.notes == ("locale de: Tesseract's German data (deu) not installed: "
                             "install tesseract-ocr-deu",)
    # Without a locale nothing is asked for, nothing noted.
    assert plan_reading(lines, {"eng", "deu"}, None, LATIN).languages == ("eng",)


def test_a_script_rapidocr_cannot_read_needs_its_tesseract_data() -> None:
    line = "ЛЕТНИЙ РЫНОК"  # Cyrillic: not in RapidOCR's dictionary
    skipped = plan_reading([line], {"eng"}, "ru", LATIN)
    assert skipped.skipped == {line: "no Tesseract language data for Russian (rus); install "
                                     "tesseract-ocr-rus to check it"}
    read = plan_reading([line], {"eng", "rus"}, "ru", LATIN)
    assert read.languages == ("rus", "eng") and not read.skipped
    assert read.tesseract_only == {line}  # RapidOCR's reading of it says nothing
    # Chinese: eng first, as without a locale (Latin lines read better), the CJK data for
    # the CJK lines; Japanese prefers jpn for Han-only lines.
    zh = plan_reading(["夏日市集", "SUMMER"], {"eng", "chi_sim", "jpn"}, "zh-Hans", None)
    assert zh.languages == ("eng", "chi_sim")
    assert plan_reading(["夏日市集"], {"eng", "chi_sim", "jpn"}, "ja", None).languages == (
        "eng", "jpn")


# -- reading German copy ------------------------------------------------------------------------

HAS_DEU = shutil.which("tesseract") is not None and "deu" in subprocess.run(
    ["tesseract", "--list-langs"], capture_output=True, text=True).stdout.split()
needs_deu = pytest.mark.skipif(not HAS_DEU and not IN_CI,
                               reason="needs tesseract-ocr-deu; in CI this fails instead")

CAMPAIGN = """\
[campaign]
name = "locales"
locales = ["en", "de"]

[brand]
name = "Acme"
palette = ["white", "ink black"]

[providers.half]
kind = "preview"
scale = 0.5

[[assets]]
id = "market"
template = "poster.j2"
aspects = ["1:1"]
providers = ["half"]
[assets.copy]
headline = "SUMMER MARKET"
subtitle = "Fresh apples for everyone"
[assets.locales.de]
headline = "SOMMERMARKT IN KÖLN"
subtitle = "Frische Äpfel für alle Größen"
"""
GERMAN = "1x1/half/de/market.png"


@needs_ocr
@needs_deu
def test_german_copy_reads_with_the_german_data_and_a_missing_one_is_said(
        tmp_path: Path, run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    if not HAS_DEU:
        pytest.fail("the locale tests need tesseract-ocr-deu (see .ci/run)")
    # Tesseract alone: RapidOCR reads umlauts itself; the German data is Tesseract's need.
    monkeypatch.setenv("QWENBUILD_OCR", "tesseract")
    build_file_tree(tmp_path, {"templates/poster.j2": 'A poster: "{{ copy.headline }}".',
                               "campaign.toml": CAMPAIGN})
    campaign = tmp_path / "campaign.toml"
    assert run("build", campaign).code == 0
    result = run("check", campaign, "--locale", "de", "--json")
    assert result.code == 0, result.out + result.err
    image = result.json()["images"][0]
    assert (image["locale"], image["status"], image["languages"]) == ("de", "green",
                                                                      ["deu", "eng"])
    assert "notes" not in result.json()

    # The German data hidden: the check still runs (with eng), and says what to install.
    real = TesseractEngine.languages
    monkeypatch.setattr(TesseractEngine, "languages",
                        lambda self: real(self) - {"deu"})
    plain = run("check", campaign, "--locale", "de")
    assert "note: locale de: Tesseract's German data (deu) not installed: install " \
           "tesseract-ocr-deu" in plain.out
    data = json.loads(run("check", campaign, "--locale", "de", "--json").out)
    assert data["notes"] == ["locale de: Tesseract's German data (deu) not installed: "
                             "install tesseract-ocr-deu"]
    assert "deu" not in data["images"][0].get("languages", ["eng"])


def test_ci_installs_the_german_data() -> None:
    """The test set-up (scripts/test, which .ci/run calls) installs what the locale test
    reads with."""
    script = (Path(__file__).resolve().parents[1] / "scripts" / "test").read_text()
    assert "tesseract-ocr-deu" in script and "grep -qx deu" in script
    assert os.access(Path(__file__).resolve().parents[1] / ".ci" / "run", os.X_OK)


# -- what each engine can output ---------------------------------------------------------------


def _traineddata(unicharset: str) -> bytes:
    """A `.traineddata` container with one component, the LSTM character set (21)."""
    import struct

    count = 24
    body = unicharset.encode()
    start = 4 + 8 * count
    offsets = [-1] * count
    offsets[21] = start
    return struct.pack(f"<i{count}q", count, *offsets) + body


def test_tesseracts_character_set_is_read_from_its_language_data(tmp_path: Path) -> None:
    from qwenbuild.textcheck.engines import lstm_characters

    path = tmp_path / "xyz.traineddata"
    path.write_bytes(_traineddata("5\nNULL 0 Common 0\n来 1 0,255 Han 2\n日 1 0,255 Han 3\n"
                                  "Joined 7 0,255 Latin 1\nA 5 0,255 Latin 4\n"))
    assert lstm_characters(path) == {"来", "日", "A"}
    (tmp_path / "bad.traineddata").write_bytes(b"not a container")
    assert lstm_characters(tmp_path / "bad.traineddata") is None
    assert lstm_characters(tmp_path / "missing.traineddata") is None


@needs_ocr
def test_the_installed_engines_say_what_they_can_output() -> None:
    from qwenbuild.textcheck.engines import default_engine

    engines = default_engine()
    charsets = engines.charsets(("eng", "chi_sim"))
    assert {"rapidocr", "tesseract"} <= set(charsets)
    assert all(ch in charsets["tesseract"] for ch in "abc来日")
    assert "ä" not in charsets["tesseract"]  # English and Chinese data have no umlaut
    assert all(ch in charsets["rapidocr"] for ch in "abcäé来日耒")
