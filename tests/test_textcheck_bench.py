"""The text-check bench's corpus generator (bench/textposters.py): each misspelled poster
carries exactly one error of its kind, and the dev and held-out font sets are disjoint.
No OCR and no timing here: `python bench/textcheck.py` measures."""

from __future__ import annotations

import random
import sys

import pytest

from qwenbuild.textcheck.score import levenshtein, normalise

from .conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import textposters  # noqa: E402


@pytest.mark.parametrize("kind", textposters.LATIN_ERRORS)
def test_each_latin_error_is_one_error_of_its_kind(kind: str) -> None:
    rng = random.Random(7)
    line = "SUMMER NIGHT MARKET TICKETS"
    made = 0
    for _ in range(40):
        wrong = textposters.latin_error(rng, line, kind)
        if wrong is None:
            continue
        made += 1
        d = levenshtein(normalise(line), normalise(wrong))
        if kind in ("substitute", "drop_letter", "double_letter"):
            assert d == 1, (kind, wrong)
        elif kind == "swap_letters":
            assert d == 2 and sorted(wrong) == sorted(line), wrong
        elif kind == "drop_word":
            assert len(wrong.split()) == len(line.split()) - 1
            assert all(w in line.split() for w in wrong.split())
        else:  # a real word one look away from another
            changed = [(a, b) for a, b in zip(line.split(), wrong.split(), strict=True)
                       if a != b]
            assert len(changed) == 1
            assert textposters.LOOKALIKES[changed[0][0].lower()] == changed[0][1].lower()
    assert made, kind


@pytest.mark.parametrize("kind", textposters.CJK_ERRORS)
def test_each_chinese_error_is_one_error_of_its_kind(kind: str) -> None:
    rng = random.Random(3)
    for _ in range(20):
        wrong = textposters.cjk_error(rng, "春季灯光节", kind)
        assert wrong is not None and wrong != "春季灯光节"
        assert levenshtein("春季灯光节", wrong) == (2 if kind == "swap_letters" else 1)


def test_the_held_out_fonts_are_never_the_dev_fonts() -> None:
    dev = {p for group in textposters.DEV_FONTS.values() for p, _ in group}
    held = {p for group in textposters.HELDOUT_FONTS.values() for p, _ in group}
    assert dev and held and not dev & held
