"""`build --verify-text`: images whose text reads wrong are generated again with new seeds.

Against the AI/ML API fake (a real HTTP server) scripted to answer a poster with the
headline misspelled first and the right one next; Tesseract reads them. Skipped without
Tesseract, failing instead in CI (see test_textcheck.py).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from qwenbuild.textcheck.choices import reroll_seed

from .conftest import SIMPLE_TEMPLATE, build_file_tree
from .fakes.aimlapi import FAKE_KEY, FakeAimlapi
from .fakes.server import FakeServer, Reply
from .test_textcheck import CAMPAIGN as PREVIEW_CAMPAIGN
from .test_textcheck import TEMPLATE, SpyEngine, needs_ocr, ocr_spy, poster_png

pytestmark = needs_ocr

CAMPAIGN = """\
[campaign]
name = "verify"

[brand]
name = "Acme"

[providers.ai]
kind = "aimlapi"
max_retries = 0

[[assets]]
id = "market"
template = "poster.j2"
aspects = ["1:1"]
providers = ["ai"]
seeds = [5]
[assets.copy]
headline = "SUMMER MARKET"
subtitle = "Fresh fruit every Sunday"
"""

OUTPUT = "1x1/ai/market.png"
# At the size the job asks for (AI/ML API 1:1): an image of another size fails its job.
GOOD = poster_png(["SUMMER MARKET", "Fresh fruit every Sunday"], (1440, 1440))
MISSPELLED = poster_png(["SUMNER MAKRET", "Fresh fruit every Sunday"], (1440, 1440))
WORSE = poster_png(["SXMNER MXKRXT", "Fresh fruit every Sunday"], (1440, 1440))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAimlapi]:
    app = FakeAimlapi()
    with FakeServer(app) as server:
        monkeypatch.setenv("AIMLAPI_BASE_URL", server.url)
        monkeypatch.setenv("AIMLAPI_API_KEY", FAKE_KEY)
        yield app


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> SpyEngine:
    return ocr_spy(monkeypatch)


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE, "campaign.toml": CAMPAIGN})
    return tmp_path / "campaign.toml"


def answer(app: FakeAimlapi, *images: bytes) -> None:
    """The next answers to the campaign's prompt: these images, in order."""
    for image in images:
        url = app.add_file(f"poster-{len(app.files)}.png", image)
        app.prompt_faults.append(("SUMMER MARKET", Reply(200, {
            "created": 1, "data": [{"url": url}],
            "meta": {"usage": {"credits_used": 91000, "usd_spent": 0.0455}}})))


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB").tobytes()


def manifest_entry(campaign: Path) -> dict[str, Any]:
    manifest = json.loads((campaign.parent / "out" / "manifest.json").read_text())
    return manifest["outputs"][OUTPUT]


def test_a_misspelled_image_is_rerolled_and_the_correct_one_kept(
        campaign: Path, run: Callable[..., Any], fake: FakeAimlapi, spy: SpyEngine,
        cache_dir: Path) -> None:
    answer(fake, MISSPELLED, GOOD)
    result = run("build", campaign, "--verify-text", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["generated"] == 1 and report["cost_usd"] == pytest.approx(0.091)
    assert [body["seed"] for body in fake.generations()] == [5, reroll_seed("market", 5, 1)]
    output = campaign.parent / "out" / OUTPUT
    assert pixels(output.read_bytes()) == pixels(GOOD)

    planned_key = run("plan", campaign, "--json").json()["jobs"][0]["key"]
    entry = manifest_entry(campaign)
    assert entry["key"] == planned_key and entry["seed"] == 5
    text_check = entry["text_check"]
    assert text_check["status"] == "green" and text_check["chosen"] == 1
    attempts = text_check["attempts"]
    assert [(a["attempt"], a["seed"], a["score"], a["cost_usd"]) for a in attempts] == [
        (0, 5, 0.75, 0.0455), (1, reroll_seed("market", 5, 1), 1.0, 0.0455)]
    assert attempts[0]["key"] == planned_key != attempts[1]["key"]
    assert len(list((cache_dir / "objects").rglob("*.png"))) == 2  # every attempt is kept

    # A rerun neither reads nor pays again; nor does a check of the output.
    reads, posts = spy.reads, len(fake.generations())
    rerun = run("build", campaign, "--verify-text", "--json")
    assert rerun.code == 0 and rerun.json()["up_to_date"] == 1
    assert run("check", campaign).code == 0
    assert (spy.reads, len(fake.generations())) == (reads, posts)

    # A restore from the cache brings back the chosen image, not the planned seed's.
    output.unlink()
    restored = run("build", campaign, "--json")
    assert restored.code == 0 and restored.json()["cached"] == 1
    assert pixels(output.read_bytes()) == pixels(GOOD)
    restored_entry = manifest_entry(campaign)
    assert restored_entry["key"] == planned_key
    assert restored_entry["text_check"]["chosen"] == 1  # same bytes: the check still holds
    assert run("plan", campaign, "--json").json()["up_to_date"] == 1
    assert len(fake.generations()) == posts

    # --force replaces the planned image in the cache, which voids the old choice: a
    # restore then brings back the new planned image.
    answer(fake, WORSE)
    assert run("build", campaign, "--force").code == 0
    output.unlink()
    assert run("build", campaign).code == 0
    assert pixels(output.read_bytes()) == pixels(WORSE)


def test_rerolls_stop_at_the_maximum_keep_the_best_and_resume_with_a_higher_one(
        campaign: Path, run: Callable[..., Any], fake: FakeAimlapi, spy: SpyEngine,
        caplog: pytest.LogCaptureFixture) -> None:
    answer(fake, MISSPELLED, WORSE, GOOD)
    result = run("build", campaign, "--verify-text", "--max-rerolls", "1")
    assert result.code == 0, result.err
    assert len(fake.generations()) == 2
    output = campaign.parent / "out" / OUTPUT
    assert pixels(output.read_bytes()) == pixels(MISSPELLED)  # the better of the two
    # (on stderr as a WARNING line outside the tests)
    assert "text reads wrong (score 0.75, min 1.00) after 1 rerolls" in caplog.text
    assert "SUMNER MAKRET" in caplog.text
    text_check = manifest_entry(campaign)["text_check"]
    assert text_check["status"] == "red" and text_check["chosen"] == 0
    assert run("check", campaign).code == 1

    # One more reroll allowed: the two first attempts come from the cache, the third is new.
    again = run("build", campaign, "--verify-text", "--max-rerolls", "2", "--json")
    assert again.code == 0, again.err
    assert [body["seed"] for body in fake.generations()] == [
        5, reroll_seed("market", 5, 1), reroll_seed("market", 5, 2)]
    assert again.json()["cost_usd"] == pytest.approx(0.0455)
    assert pixels(output.read_bytes()) == pixels(GOOD)
    assert manifest_entry(campaign)["text_check"]["chosen"] == 2
    assert run("check", campaign).code == 0


def test_a_reroll_over_the_budget_is_not_sent(campaign: Path, run: Callable[..., Any],
                                              fake: FakeAimlapi, spy: SpyEngine,
                                              caplog: pytest.LogCaptureFixture) -> None:
    answer(fake, MISSPELLED, GOOD)
    result = run("build", campaign, "--verify-text", "--budget", "0.06")
    assert result.code == 0, result.err
    assert len(fake.generations()) == 1
    assert "over the budget of $0.06" in caplog.text
    assert manifest_entry(campaign)["text_check"]["status"] == "red"


def test_a_broken_expect_text_stops_the_build_before_anything_is_generated(
        campaign: Path, run: Callable[..., Any], fake: FakeAimlapi) -> None:
    campaign.write_text(campaign.read_text().replace(
        'seeds = [5]\n', 'seeds = [5]\nexpect_text = ["{{ copy.headline", "x"]\n'))
    result = run("build", campaign, "--verify-text")
    assert result.code == 2
    assert "asset market: expect_text[0]: syntax error" in result.err
    assert fake.generations() == [] and not (campaign.parent / "out").exists()


def test_preview_images_pass_at_the_first_attempt(tmp_path: Path, run: Callable[..., Any],
                                                  spy: SpyEngine) -> None:
    build_file_tree(tmp_path, {"templates/poster.j2": TEMPLATE,
                               "campaign.toml": PREVIEW_CAMPAIGN})
    campaign = tmp_path / "campaign.toml"
    result = run("build", campaign, "--verify-text", "--json")
    assert result.code == 0, result.err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    text_check = manifest["outputs"]["1x1/half/market.png"]["text_check"]
    assert text_check["status"] == "green"
    assert [a["attempt"] for a in text_check["attempts"]] == [0]


def test_verifying_an_up_to_date_build_leaves_the_manifest_and_prints_the_results(
        tmp_path: Path, run: Callable[..., Any], spy: SpyEngine) -> None:
    """A read-only check must not dirty a committed manifest; it says what it read."""
    build_file_tree(tmp_path, {"templates/poster.j2": TEMPLATE,
                               "campaign.toml": PREVIEW_CAMPAIGN})
    campaign = tmp_path / "campaign.toml"
    assert run("build", campaign).code == 0  # built without a text check
    manifest = tmp_path / "out" / "manifest.json"
    before = manifest.read_bytes()

    result = run("build", campaign, "--verify-text")
    assert result.code == 0, result.err
    assert manifest.read_bytes() == before
    assert "  green 1.00  out/1x1/half/market.png" in result.out
    assert "text: 1 green (min score 1.00)" in result.out
    as_json = run("build", campaign, "--verify-text", "--json").json()
    assert as_json["jobs"][0]["text_check"]["status"] == "green"
    assert manifest.read_bytes() == before

    # Asked to, it records the scores.
    assert run("build", campaign, "--verify-text", "--record").code == 0
    assert json.loads(manifest.read_text())["outputs"]["1x1/half/market.png"][
        "text_check"]["status"] == "green"
    assert run("build", campaign, "--record").code == 2  # only with --verify-text
