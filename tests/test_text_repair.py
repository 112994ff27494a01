"""`build --verify-text --repair` and `check --repair`: an image whose text reads wrong is
first repaired by an edit request on its own provider, then rerolled if that fails.

Offline with the preview provider (whose "repair" draws the copy again over the image),
and against the fakes: AI/ML API (an edit with the image as reference) and Runware's
runware:108@1 (inpainting: the image as seedImage, a mask over the wrong line). Real OCR
reads every image (skipped without it, failing instead in CI, see test_textcheck.py).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from qwenbuild.providers import preview_render
from qwenbuild.textcheck import LineResult
from qwenbuild.textcheck.choices import reroll_seed
from qwenbuild.textcheck.repair import instruction, mask_png

from . import test_verify_text as verify
from .conftest import SIMPLE_TEMPLATE, build_file_tree
from .fakes.aimlapi import FakeAimlapi
from .fakes.server import Reply, source_bytes
from .test_textcheck import SpyEngine, needs_ocr, ocr_spy, poster_png
from .test_verify_text import GOOD, MISSPELLED, OUTPUT, WORSE

# -- the instruction and the mask, without OCR -----------------------------------------------


def test_the_instruction_names_what_was_read_and_what_the_copy_says() -> None:
    wrong = [LineResult("SUMMER MARKET", "SUMNER MAKRET", 0.75, "wrong")]
    assert instruction(wrong) == ("Change the text 'SUMNER MAKRET' to 'SUMMER MARKET'; "
                                  "keep everything else exactly as it is.")
    two = [*wrong, LineResult("Kids' corner", "Kids' comer", 0.9, "wrong")]
    assert instruction(two) == (
        "Change the text 'SUMNER MAKRET' to 'SUMMER MARKET' and the text \"Kids' comer\" "
        "to \"Kids' corner\"; keep everything else exactly as it is.")


def test_the_mask_is_the_wrong_lines_boxes_padded_white_on_black() -> None:
    data = mask_png((200, 100), [(50, 40, 150, 60)])
    with Image.open(io.BytesIO(data)) as mask:
        assert mask.mode == "L" and mask.size == (200, 100)
        assert mask.getpixel((100, 50)) == 255  # inside the box
        assert mask.getpixel((45, 35)) == 255  # in the padding (8 px at least)
        assert mask.getpixel((20, 50)) == 0 and mask.getpixel((100, 90)) == 0
        assert sorted(c for _, c in mask.getcolors()) == [0, 255]
    assert mask_png((200, 100), [(50, 40, 150, 60)]) == data  # deterministic


# -- offline: the preview provider -------------------------------------------------------------

PREVIEW_CAMPAIGN = """\
[campaign]
name = "repair"

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
subtitle = "Fresh fruit every Sunday"
"""


def _manifest(campaign: Path) -> dict[str, Any]:
    return json.loads((campaign.parent / "out" / "manifest.json").read_text())


def _misspelling_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    """The preview draws 'SUMNER MAKRET' where the copy says 'SUMMER MARKET' (as a model
    might), except in an edit (a repair), which draws the copy as it is."""
    real = preview_render.render_png

    def misspelled(width: int, height: int, seed: int, design: dict[str, Any]) -> bytes:
        copy = {**design["copy"], "headline": "SUMNER MAKRET"}
        return real(width, height, seed, {**design, "copy": copy})

    monkeypatch.setattr(preview_render, "render_png", misspelled)


@needs_ocr
def test_offline_a_red_preview_is_repaired_by_an_edit_and_restored_as_repaired(
        tmp_path: Path, run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
        cache_dir: Path) -> None:
    spy = ocr_spy(monkeypatch)
    _misspelling_preview(monkeypatch)
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE,
                               "campaign.toml": PREVIEW_CAMPAIGN})
    campaign = tmp_path / "campaign.toml"
    output = tmp_path / "out" / "1x1" / "half" / "market.png"

    # Without --repair the misspelled comp is red (the preview is free: rerolls are
    # misspelled too).
    plain = run("build", campaign, "--verify-text", "--max-rerolls", "0")
    assert plain.code == 0, plain.err
    assert _manifest(campaign)["outputs"]["1x1/half/market.png"]["text_check"]["status"] == \
        "red"
    misspelled = output.read_bytes()

    result = run("build", campaign, "--verify-text", "--repair", "--json")
    assert result.code == 0, result.err
    entry = _manifest(campaign)["outputs"]["1x1/half/market.png"]
    text_check = entry["text_check"]
    assert text_check["status"] == "green" and text_check["chosen"] == 1
    attempts = text_check["attempts"]
    assert [(a["attempt"], a["kind"], a["how"], a["status"]) for a in attempts] == [
        (0, "planned", "generated", "red"), (1, "repair", "repaired from attempt 0", "green")]
    assert attempts[1]["instruction"] == ("Change the text 'SUMNER MAKRET' to 'SUMMER "
                                          "MARKET'; keep everything else exactly as it is.")
    assert attempts[1]["key"] != attempts[0]["key"] == entry["key"]
    repaired = output.read_bytes()
    assert repaired != misspelled
    # The output's provenance is the repair's: its prompt is the instruction.
    with Image.open(io.BytesIO(repaired)) as img:
        assert img.text["qwenbuild:prompt"] == attempts[1]["instruction"]
        assert img.text["qwenbuild:key"] == attempts[1]["key"]
    choice = json.loads(next((cache_dir / "textcheck" / "choices").glob("*.json")).read_text())
    assert (choice["v"], choice["kind"], choice["key"]) == (2, "repair", attempts[1]["key"])

    # Up to date: nothing read, nothing made; `check` agrees from the cache.
    reads = spy.reads
    again = run("build", campaign, "--verify-text", "--repair", "--json")
    assert again.code == 0 and again.json()["up_to_date"] == 1
    assert run("check", campaign).code == 0
    assert spy.reads == reads

    # A restore from the cache brings back the repaired image, not the planned one.
    output.unlink()
    restored = run("build", campaign, "--json")
    assert restored.code == 0 and restored.json()["cached"] == 1
    assert output.read_bytes() == repaired
    assert run("plan", campaign, "--json").json()["up_to_date"] == 1


@needs_ocr
@pytest.mark.parametrize("command", ["build", "check"])
def test_children_of_a_repaired_image_are_made_again_from_it(
        tmp_path: Path, run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
        command: str) -> None:
    """A parent found up to date, then repaired by the text step: its children, found up
    to date with the old image, are made again from the repaired one in the same run."""
    ocr_spy(monkeypatch)
    _misspelling_preview(monkeypatch)
    derived = PREVIEW_CAMPAIGN + (
        '\n[[assets]]\nid = "story"\nfrom = "market"\ntemplate = "poster.j2"\n'
        'aspects = ["9:16"]\nproviders = ["half"]\n')
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE,
                               "campaign.toml": derived})
    campaign = tmp_path / "campaign.toml"
    assert run("build", campaign).code == 0
    story = tmp_path / "out" / "9x16" / "half" / "story.png"
    before = story.read_bytes()
    if command == "build":
        result = run("build", campaign, "--verify-text", "--repair", "--json")
        assert result.code == 0, result.err
        report = result.json()
        assert report["generated"] == 2  # the repair, then the story made from it
    else:
        # check --repair never makes a job afresh: it names what is now out of date.
        result = run("check", campaign, "--repair")
        assert "repair: 1 output made from a repaired image is now out of date (parent " \
               "changed); `qwenbuild build` makes them again:" in result.out
        assert "outdated  out/9x16/half/story.png" in result.out
        assert story.read_bytes() == before
        assert run("plan", campaign, "--check").code == 1
        assert run("build", campaign).code == 0
    manifest = _manifest(campaign)["outputs"]
    assert manifest["1x1/half/market.png"]["text_check"]["chosen"] == 1
    assert story.read_bytes() != before
    checked = run("plan", campaign, "--check")
    assert checked.code == 0, checked.out  # nothing left stale: the story is from the repair


@needs_ocr
def test_check_repair_repairs_what_it_finds_red_offline(
        tmp_path: Path, run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    ocr_spy(monkeypatch)
    _misspelling_preview(monkeypatch)
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE,
                               "campaign.toml": PREVIEW_CAMPAIGN})
    campaign = tmp_path / "campaign.toml"
    assert run("build", campaign).code == 0
    assert run("check", campaign).code == 1  # red; a plain check changes nothing
    result = run("check", campaign, "--repair")
    assert result.code == 0, result.out + result.err
    assert "repair: 1 red image: at most 2 new images each (repairs, then rerolls)" in \
        result.out
    assert "repaired from attempt 0" in result.out
    assert "green 1.00  out/1x1/half/market.png" in result.out
    assert "scores saved in manifest.json" in result.out  # the repair rewrote its entry
    assert "left as it is" not in result.out
    text_check = _manifest(campaign)["outputs"]["1x1/half/market.png"]["text_check"]
    assert text_check["status"] == "green" and text_check["chosen"] == 1
    assert run("check", campaign).code == 0


# -- against the AI/ML API fake: an edit with the image as reference ---------------------------


# The campaign (AI/ML API, one 1:1 poster), its posters and fixtures are the reroll
# tests' (test_verify_text.py): the fake AI/ML API, the OCR spy, the campaign folder.
fake = verify.fake
spy = verify.spy
campaign = verify.campaign
pixels = verify.pixels
SIZE = (1440, 1440)
PRICE = 0.0455
FIX = "Change the text 'SUMNER MAKRET' to 'SUMMER MARKET'; keep everything else exactly as it is."


def derived_poster(lines: list[str], source: bytes) -> bytes:
    """A poster as the fakes answer an edit: marked `derived-from` its input image."""
    with Image.open(io.BytesIO(poster_png(lines, SIZE))) as img:
        info = PngImagePlugin.PngInfo()
        info.add_text("derived-from", hashlib.sha256(source).hexdigest())
        buf = io.BytesIO()
        img.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def answer(app: FakeAimlapi, prompt_part: str, *images: bytes) -> None:
    """The next answers to valid requests whose prompt holds `prompt_part`: these images."""
    for image in images:
        url = app.add_file(f"poster-{len(app.files)}.png", image)
        app.prompt_faults.append((prompt_part, Reply(200, {
            "created": 1, "data": [{"url": url}],
            "meta": {"usage": {"credits_used": 91000, "usd_spent": PRICE}}})))


GENERATION = "Headline reading exactly"  # in the campaign's prompt, not in an instruction


def sent(app: FakeAimlapi) -> list[tuple[str, int, str | None]]:
    """What each request asked: ("edit" or "new", seed, the reference's sha256)."""
    out = []
    for body in app.generations():
        refs = body.get("image_urls") or []
        ref = hashlib.sha256(source_bytes(refs[0])).hexdigest() if refs else None
        out.append(("edit" if refs else "new", body["seed"], ref))
    return out


def entry_of(campaign: Path) -> dict[str, Any]:
    return _manifest(campaign)["outputs"][OUTPUT]


@needs_ocr
def test_a_repair_is_tried_before_a_reroll_and_one_that_fixes_the_text_stops_there(
        campaign: Path, run: Callable[..., Any], fake: FakeAimlapi, spy: SpyEngine,
        cache_dir: Path) -> None:
    answer(fake, GENERATION, MISSPELLED)
    answer(fake, FIX, derived_poster(["SUMMER MARKET", "Fresh fruit every Sunday"],
                                     MISSPELLED))
    result = run("build", campaign, "--verify-text", "--repair", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["generated"] == 1 and report["cost_usd"] == pytest.approx(2 * PRICE)
    # The second request is an edit of the first image, with the instruction as prompt,
    # and nothing is rerolled: the repair reads right.
    assert sent(fake) == [("new", 5, None),
                          ("edit", 5, hashlib.sha256(MISSPELLED).hexdigest())]
    assert fake.generations()[1]["prompt"] == FIX
    assert "negative_prompt" not in fake.generations()[1]
    output = campaign.parent / "out" / OUTPUT
    repaired = output.read_bytes()
    assert pixels(repaired) == pixels(GOOD)
    with Image.open(io.BytesIO(repaired)) as img:  # the fake's mark survives provenance
        assert img.text["derived-from"] == hashlib.sha256(MISSPELLED).hexdigest()

    entry = entry_of(campaign)
    planned_key = run("plan", campaign, "--json").json()["jobs"][0]["key"]
    assert entry["key"] == planned_key and entry["seed"] == 5
    text_check = entry["text_check"]
    assert text_check["status"] == "green" and text_check["chosen"] == 1
    assert [(a["attempt"], a["how"], a["status"], a["cost_usd"])
            for a in text_check["attempts"]] == [
        (0, "generated", "red", PRICE), (1, "repaired from attempt 0", "green", PRICE)]
    assert text_check["attempts"][1]["source"] == 0

    # A rerun pays nothing and reads nothing; neither does `check`.
    reads, posts = spy.reads, len(fake.generations())
    rerun = run("build", campaign, "--verify-text", "--repair", "--json")
    assert rerun.code == 0 and rerun.json()["up_to_date"] == 1
    assert rerun.json()["cost_usd"] == 0
    assert run("check", campaign).code == 0
    assert (spy.reads, len(fake.generations())) == (reads, posts)

    # The output gone: a restore brings back the repaired image, for nothing.
    output.unlink()
    restored = run("build", campaign, "--json")
    assert restored.code == 0 and restored.json()["cached"] == 1
    assert pixels(output.read_bytes()) == pixels(GOOD)
    assert entry_of(campaign)["text_check"]["chosen"] == 1
    assert run("plan", campaign, "--json").json()["up_to_date"] == 1

    # The manifest gone too (a fresh checkout with the team's cache): the attempts are
    # found in the store and the result cache; nothing is paid for or read again.
    (campaign.parent / "out" / "manifest.json").unlink()
    output.unlink()
    again = run("build", campaign, "--verify-text", "--repair", "--json")
    assert again.code == 0, again.err
    assert again.json()["cost_usd"] == 0 and len(fake.generations()) == posts
    assert pixels(output.read_bytes()) == pixels(GOOD)
    assert [a["how"] for a in entry_of(campaign)["text_check"]["attempts"]] == [
        "restored", "repaired from attempt 0"]
    assert spy.reads == reads


@needs_ocr
def test_a_failed_repair_is_followed_by_a_reroll(
        campaign: Path, run: Callable[..., Any], fake: FakeAimlapi, spy: SpyEngine) -> None:
    answer(fake, GENERATION, MISSPELLED, GOOD)
    answer(fake, FIX, derived_poster(["SXMNER MXKRXT", "Fresh fruit every Sunday"],
                                     MISSPELLED))
    result = run("build", campaign, "--verify-text", "--repair", "--json")
    assert result.code == 0, result.err
    assert result.json()["cost_usd"] == pytest.approx(3 * PRICE)
    assert sent(fake) == [("new", 5, None),
                          ("edit", 5, hashlib.sha256(MISSPELLED).hexdigest()),
                          ("new", reroll_seed("market", 5, 1), None)]
    output = campaign.parent / "out" / OUTPUT
    assert pixels(output.read_bytes()) == pixels(GOOD)
    text_check = entry_of(campaign)["text_check"]
    assert [(a["attempt"], a["kind"], a["how"], a["status"])
            for a in text_check["attempts"]] == [
        (0, "planned", "generated", "red"), (1, "repair", "repaired from attempt 0", "red"),
        (2, "reroll", "reroll 1", "green")]
    assert text_check["chosen"] == 2

    # Restored from the cache: the reroll (the choice record of format 2 names it).
    output.unlink()
    assert run("build", campaign).code == 0
    assert pixels(output.read_bytes()) == pixels(GOOD)


@needs_ocr
def test_max_rerolls_caps_repairs_and_rerolls_together(
        campaign: Path, run: Callable[..., Any], fake: FakeAimlapi, spy: SpyEngine,
        caplog: pytest.LogCaptureFixture) -> None:
    answer(fake, GENERATION, MISSPELLED, GOOD)
    answer(fake, FIX, derived_poster(["SXMNER MXKRXT", "Fresh fruit every Sunday"],
                                     MISSPELLED))
    result = run("build", campaign, "--verify-text", "--repair", "--max-rerolls", "1")
    assert result.code == 0, result.err
    assert [kind for kind, _, _ in sent(fake)] == ["new", "edit"]  # one new image, no more
    assert "text reads wrong (score 0.75, min 1.00) after 1 repair;" in caplog.text
    text_check = entry_of(campaign)["text_check"]
    assert text_check["status"] == "red" and text_check["chosen"] == 0  # the better one
    assert pixels((campaign.parent / "out" / OUTPUT).read_bytes()) == pixels(MISSPELLED)

    # One more allowed: the repair comes from the cache, the reroll is new.
    again = run("build", campaign, "--verify-text", "--repair", "--max-rerolls", "2",
                "--json")
    assert again.code == 0, again.err
    assert again.json()["cost_usd"] == pytest.approx(PRICE)
    assert [kind for kind, _, _ in sent(fake)] == ["new", "edit", "new"]
    assert entry_of(campaign)["text_check"]["chosen"] == 2


@needs_ocr
def test_spending_stops_at_the_budget(campaign: Path, run: Callable[..., Any],
                                      fake: FakeAimlapi, spy: SpyEngine,
                                      caplog: pytest.LogCaptureFixture) -> None:
    answer(fake, GENERATION, MISSPELLED, GOOD)
    answer(fake, FIX, derived_poster(["SXMNER MXKRXT", "Fresh fruit every Sunday"],
                                     MISSPELLED))
    # Room for the image and one more: the repair goes, the reroll does not.
    result = run("build", campaign, "--verify-text", "--repair", "--budget", "0.1")
    assert result.code == 0, result.err
    assert [kind for kind, _, _ in sent(fake)] == ["new", "edit"]
    assert "reroll 1 not sent: it would bring the spending to $0.1365, over the budget " \
           "of $0.10" in caplog.text
    # No room even for the repair (of another image: this one's repair is stored).
    fake.requests.clear()
    fake.prompt_faults.clear()
    answer(fake, GENERATION, WORSE)
    assert run("build", campaign, "--verify-text", "--repair", "--regenerate",
               "--budget", "0.05").code == 0
    assert [kind for kind, _, _ in sent(fake)] == ["new"]
    assert "repair of attempt 0 not sent: it would bring the spending to $0.091, over " \
           "the budget of $0.05" in caplog.text


@needs_ocr
def test_an_image_regenerated_the_same_finds_its_repair_in_the_store(
        campaign: Path, run: Callable[..., Any], fake: FakeAimlapi, spy: SpyEngine) -> None:
    answer(fake, GENERATION, MISSPELLED, MISSPELLED)
    answer(fake, FIX, derived_poster(["SUMMER MARKET", "Fresh fruit every Sunday"],
                                     MISSPELLED))
    assert run("build", campaign, "--verify-text", "--repair").code == 0
    # --regenerate pays for the planned image again; the provider answers the same bytes,
    # whose repair is in the store: it is not paid for twice.
    result = run("build", campaign, "--verify-text", "--repair", "--regenerate", "--json")
    assert result.code == 0, result.err
    assert result.json()["cost_usd"] == pytest.approx(PRICE)
    assert [kind for kind, _, _ in sent(fake)] == ["new", "edit", "new"]
    assert entry_of(campaign)["text_check"]["chosen"] == 1


@needs_ocr
def test_a_stored_repair_is_used_again_without_repair_and_never_paid_twice(
        campaign: Path, run: Callable[..., Any], fake: FakeAimlapi, spy: SpyEngine) -> None:
    answer(fake, GENERATION, MISSPELLED)
    answer(fake, FIX, derived_poster(["SUMMER MARKET", "Fresh fruit every Sunday"],
                                     MISSPELLED))
    assert run("build", campaign, "--verify-text", "--repair").code == 0
    posts = len(fake.generations())
    (campaign.parent / "out" / "manifest.json").unlink()
    (campaign.parent / "out" / OUTPUT).unlink()
    # Without --repair (and a plain build first: the planned image is restored), the
    # stored repair is found and chosen; no reroll is paid for.
    assert run("build", campaign).code == 0
    result = run("build", campaign, "--verify-text", "--json")
    assert result.code == 0, result.err
    assert len(fake.generations()) == posts
    assert entry_of(campaign)["text_check"]["chosen"] == 1
    assert pixels((campaign.parent / "out" / OUTPUT).read_bytes()) == pixels(GOOD)


@needs_ocr
def test_check_repair_says_it_pays_respects_the_budget_and_records_the_repair(
        campaign: Path, run: Callable[..., Any], fake: FakeAimlapi, spy: SpyEngine,
        caplog: pytest.LogCaptureFixture) -> None:
    answer(fake, GENERATION, MISSPELLED)
    assert run("build", campaign).code == 0
    assert run("check", campaign).code == 1
    # Over the budget: nothing is sent, the check still says red.
    refused = run("check", campaign, "--repair", "--budget", "0.01")
    assert refused.code == 1
    assert "repair: 1 red image: at most 2 new images each (repairs, then rerolls), paid " \
           "at their provider; budget $0.01" in refused.out
    assert "repair of attempt 0 not sent: it would bring the spending to $0.0455, over the " \
           "budget of $0.01" in caplog.text
    assert "repair: paid $0.00" in refused.out
    assert len(fake.generations()) == 1

    answer(fake, FIX, derived_poster(["SUMMER MARKET", "Fresh fruit every Sunday"],
                                     MISSPELLED))
    result = run("check", campaign, "--repair", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["repair"]["cost_usd"] == pytest.approx(PRICE)
    assert report["repair"]["images"] == [{
        "output": f"out/{OUTPUT}", "status": "green", "chosen": 1,
        "how": "repaired from attempt 0", "repairs": 1, "rerolls": 0}]
    assert report["green"] == 1 and report["red"] == 0
    assert sent(fake)[1] == ("edit", 5, hashlib.sha256(MISSPELLED).hexdigest())
    assert entry_of(campaign)["text_check"]["chosen"] == 1


@needs_ocr
def test_an_approved_image_that_reads_wrong_is_neither_repaired_nor_rerolled(
        campaign: Path, run: Callable[..., Any], fake: FakeAimlapi, spy: SpyEngine) -> None:
    """The review file locks an approved image: repairs and rerolls would replace it, so
    neither `check --repair` nor `build --verify-text --repair` sends anything for it."""
    answer(fake, GENERATION, MISSPELLED)
    assert run("build", campaign).code == 0
    out = campaign.parent / "out"
    approved = (out / OUTPUT).read_bytes()
    assert run("approve", out / OUTPUT).code == 0

    checked = run("check", campaign, "--repair")
    assert checked.code == 1  # still red: the approved image stays
    assert "approved (or picked) in the review file, which locks it: `qwenbuild build " \
           "--unlock market` releases it" in checked.out
    assert "repair: paid $0.00" in checked.out
    built = run("build", campaign, "--verify-text", "--repair")
    assert built.code == 0, built.err
    assert "text: none checked; 1 approved or picked output not checked (the review locks " \
           "them; `qwenbuild check` reads them)" in built.out
    assert len(fake.generations()) == 1  # the first generation only
    assert (out / OUTPUT).read_bytes() == approved


# -- against the Runware fake: runware:108@1 repairs by inpainting ------------------------------

RUNWARE_CAMPAIGN = """\
[campaign]
name = "repair"

[brand]
name = "Acme"

[providers.rw]
kind = "runware"
model = "runware:108@1"
max_retries = 0

[[assets]]
id = "market"
template = "poster.j2"
aspects = ["1:1"]
providers = ["rw"]
seeds = [5]
[assets.copy]
headline = "SUMMER MARKET"
subtitle = "Fresh fruit every Sunday"
"""
RW_SIZE = (1328, 1328)
RW_MISSPELLED = poster_png(["SUMNER MAKRET", "Fresh fruit every Sunday"], RW_SIZE)
RW_GOOD = poster_png(["SUMMER MARKET", "Fresh fruit every Sunday"], RW_SIZE)


def inpainted(task: dict[str, Any], sources: list[bytes]) -> bytes:
    """What an inpainting model would do, roughly: the right poster where the mask is white,
    the starting image elsewhere; marked `derived-from` its inputs. A mask that missed the
    wrong line would leave it wrong."""
    seed_image, mask = sources
    with Image.open(io.BytesIO(seed_image)) as start, Image.open(io.BytesIO(mask)) as m, \
            Image.open(io.BytesIO(RW_GOOD)) as good:
        out = Image.composite(good.convert("RGB"), start.convert("RGB"), m.convert("L"))
    info = PngImagePlugin.PngInfo()
    info.add_text("derived-from", ",".join(hashlib.sha256(s).hexdigest() for s in sources))
    buf = io.BytesIO()
    out.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


@needs_ocr
def test_runware_108_repairs_by_inpainting_the_wrong_line(
        tmp_path: Path, run: Callable[..., Any], fake_providers: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spy = ocr_spy(monkeypatch)
    app = fake_providers["runware"]
    app.draw_when(GENERATION, lambda task, sources: RW_MISSPELLED)
    app.draw_when("SUMMER MARKET", inpainted)
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE,
                               "campaign.toml": RUNWARE_CAMPAIGN})
    campaign = tmp_path / "campaign.toml"
    result = run("build", campaign, "--verify-text", "--repair", "--json")
    assert result.code == 0, result.err
    tasks = app.tasks()
    assert len(tasks) == 2 and "inputs" not in tasks[0] and tasks[0]["seed"] == 5
    repair = tasks[1]
    inputs = repair["inputs"]
    assert set(inputs) == {"seedImage", "maskImage", "strength"}
    assert source_bytes(inputs["seedImage"]) == RW_MISSPELLED  # the image as it came
    assert inputs["strength"] == 0.9 and repair["maskMargin"] == 64
    assert repair["seed"] == 5 and "SUMMER MARKET" in repair["positivePrompt"]
    with Image.open(io.BytesIO(source_bytes(inputs["maskImage"]))) as mask:
        assert mask.size == RW_SIZE and mask.mode == "L"
        assert mask.getpixel((200, 80)) == 255  # the headline (drawn at y 50, 64 px)
        assert mask.getpixel((200, 195)) == 0  # the subtitle, right, is kept
        assert mask.getpixel((1000, 1000)) == 0
    output = tmp_path / "out" / "1x1" / "rw" / "market.png"
    assert pixels(output.read_bytes()) == pixels(RW_GOOD)
    text_check = _manifest(campaign)["outputs"]["1x1/rw/market.png"]["text_check"]
    assert [(a["how"], a["status"]) for a in text_check["attempts"]] == [
        ("generated", "red"), ("repaired from attempt 0", "green")]
    assert text_check["attempts"][1]["mode"] == "inpaint"

    # A rerun pays nothing; a restore brings the repaired image back.
    reads = spy.reads
    assert run("build", campaign, "--verify-text", "--repair").code == 0
    output.unlink()
    assert run("build", campaign).code == 0
    assert pixels(output.read_bytes()) == pixels(RW_GOOD)
    assert len(app.tasks()) == 2 and spy.reads == reads
