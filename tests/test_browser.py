"""The review page in a real headless browser: Debian's chromium, driven by Playwright.

Skipped only on a machine without chromium or Playwright, and never in CI (`CI` set):
there a missing browser fails, so the tests cannot silently stop running.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .test_watch import WatchThread, edit, report_latency

CHROMIUM = Path(os.environ.get("QWENBUILD_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
MISSING = [what for what, ok in (
    (f"chromium ({CHROMIUM})", CHROMIUM.is_file()),
    ("playwright (pip install playwright)", importlib.util.find_spec("playwright") is not None),
) if not ok]

pytestmark = pytest.mark.skipif(
    bool(MISSING) and not IN_CI,
    reason=f"needs {' and '.join(MISSING)}; in CI (CI set) this fails instead",
)

#: Generous bounds for a loaded CI machine; the measured latency is printed.
WAIT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if MISSING:  # only reached in CI, where the skip does not apply
        pytest.fail(f"browser tests need {' and '.join(MISSING)} "
                    "(bash scripts/test installs them)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield instance
        instance.close()


def ready(tab: Any, url: str) -> None:
    """Open the page and wait until its first screen is drawn (data loaded, cards made)."""
    tab.goto(url)
    tab.wait_for_selector("html[data-ready='1']", state="attached")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # Tall enough that every lazily loaded image of the small project is in view.
    context = browser.new_context(viewport={"width": 1400, "height": 3000})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.set_default_timeout(WAIT_MS)
    yield tab
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def two_providers(project: Path) -> Path:
    """The shared project with hero also built by a second provider: 9 outputs."""
    edit(project, '[[assets]]\nid = "hero"\nproviders = ["small"]',
         '[providers.draft]\nkind = "preview"\nscale = 0.1\n\n'
         '[[assets]]\nid = "hero"\nproviders = ["small", "draft"]')
    return project


@pytest.fixture
def served(two_providers: Path) -> Iterator[tuple[str, WatchThread]]:
    """`qwenbuild watch` in a thread, serving on a free port, first build done."""
    with WatchThread(two_providers, serve=True, port=0) as w:
        url = w.next("serving").url
        w.built()
        assert url is not None
        yield url, w


def _images_loaded(page: Any) -> None:
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('figure.output img')];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }")


def test_page_shows_every_output_and_opens_the_large_view(served: Any, page: Any) -> None:
    url, _ = served
    ready(page, url)
    figures = page.locator("figure.output")
    assert figures.count() == 9
    _images_loaded(page)
    story = page.locator('figure[data-output="9x16/small/story.png"]')
    text = story.inner_text()
    for shown in ("generated", "seed", "small · preview", "free", '"SECOND STORY"'):
        assert shown in text, shown
    assert "×" in text  # the size
    assert page.locator("#qb-live").inner_text() == "live: updates on save"

    story.locator("button.thumb").click()
    dialog = page.locator("#qb-viewer")
    assert dialog.is_visible()
    details = dialog.inner_text()
    assert "9x16/small/story.png" in details and '"SECOND STORY"' in details
    assert "negative prompt" in details and "provider reported" in details
    page.wait_for_function("() => document.getElementById('qb-viewer-img').naturalWidth > 0")
    dialog.locator("[data-step='1']").click()
    assert "9x16/small/story.png" not in dialog.inner_text()  # moved on to the next output
    page.keyboard.press("Escape")
    assert not dialog.is_visible()


def test_filters_hide_and_show_cells(served: Any, page: Any) -> None:
    url, _ = served
    ready(page, url)
    small = page.locator('figure[data-provider="small"]')
    draft = page.locator('figure[data-provider="draft"]')
    square = page.locator('figure[data-aspect="1:1"]')
    assert small.count() == 5 and draft.count() == 4 and square.count() == 4

    page.locator('label.chip:has(input[name="provider"][value="draft"])').click()
    assert all(not draft.nth(i).is_visible() for i in range(draft.count()))
    assert all(small.nth(i).is_visible() for i in range(small.count()))
    page.locator('label.chip:has(input[name="aspect"][value="1:1"])').click()
    assert all(not square.nth(i).is_visible() for i in range(square.count()))
    assert page.locator('#asset-hero th[data-aspect="1:1"]').is_hidden()  # the column too
    assert page.locator('figure:visible').count() == 3  # hero 9:16 x 2 seeds, story

    page.locator('label.chip:has(input[name="provider"][value="draft"])').click()
    page.locator('label.chip:has(input[name="aspect"][value="1:1"])').click()
    assert page.locator('figure:visible').count() == 9


def test_page_updates_itself_after_an_edit_and_shows_errors(served: Any, page: Any,
                                                             record_property: Any) -> None:
    url, w = served
    project = w.campaign
    ready(page, url)
    page.wait_for_selector('#qb-live[data-state="live"]')  # connected for updates
    saved = time.monotonic()
    edit(project, "SECOND STORY", "SECOND STORY, LIVE")
    # No reload from here: the page must update by itself.
    page.wait_for_function("() => document.body.innerText.includes('SECOND STORY, LIVE')")
    report_latency(record_property, "save_to_page_updated_s", time.monotonic() - saved)
    story = page.locator('figure[data-output="9x16/small/story.png"]')
    assert story.get_attribute("data-changed") == "changed"
    assert story.locator(".mark").inner_text().lower() == "changed"

    banner = page.locator("#qb-live-error")
    assert banner.is_hidden()
    edit(project, 'headline = "HELLO WORLD"', "headline = ")
    banner.wait_for(state="visible")
    assert "campaign.toml" in banner.inner_text() and "Rebuild failed" in banner.inner_text()
    assert page.locator("figure.output").count() == 9  # the last good build stays

    edit(project, "headline = \n", 'headline = "HELLO AGAIN"\n')
    page.wait_for_function("() => document.body.innerText.includes('HELLO AGAIN')")
    assert banner.is_hidden()


def test_page_works_from_the_file_system(served: Any, page: Any) -> None:
    _, w = served
    index = w.campaign.parent / "out" / "index.html"
    ready(page, index.as_uri())  # the data comes by <script src>, which file:// allows
    assert page.locator("figure.output").count() == 9
    _images_loaded(page)  # relative URLs (with their ?v= hash) load from file://
    assert page.locator("#qb-live").is_hidden()  # no server: no live reload
    # Read-only, and it says so: no decision can be made from here.
    assert page.locator("#qb-readonly").is_visible()
    assert "Read-only" in page.locator("#qb-readonly").inner_text()
    approve = page.locator('figure.output button[data-action="approve"]')
    assert approve.count() == 9 and all(approve.nth(i).is_disabled() for i in range(9))
    page.locator("figure.output button.thumb").first.click()
    assert page.locator("#qb-viewer").is_visible()
    assert page.locator("#qb-comment").is_disabled()
    assert page.locator("#qb-compare").is_hidden()  # before/after needs the server
    page.keyboard.press("a")  # the shortcut too: nothing is written
    assert "Read-only" in page.locator("#qb-toast").inner_text()
    assert not (w.campaign.parent / "review.toml").exists()


# -- design reviews (issue 13) ------------------------------------------------------------


@pytest.fixture(autouse=True)
def _reviewer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWENBUILD_REVIEWER", "Ana Lima")


def _review(project: Path) -> dict[str, Any]:
    path = project.parent / "review.toml"
    return tomllib.loads(path.read_text()) if path.is_file() else {}


def _decision(project: Path, output: str) -> dict[str, Any]:
    return _review(project).get("outputs", {}).get(output, {})


def _sha(project: Path, output: str) -> str:
    manifest = json.loads((project.parent / "out" / "manifest.json").read_text())
    return str(manifest["outputs"][output]["sha256"])


def _wait_for(condition: Any, what: str, timeout: float = WAIT_MS / 1000) -> None:
    """Wait until `condition()` holds (a file written by the server, say)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def cli(*args: str | Path) -> int:
    """The CLI in a thread of its own (Playwright's sync API holds an event loop in this
    one, and a build runs one of its own)."""
    from qwenbuild.cli import main

    found: list[int] = []
    thread = threading.Thread(target=lambda: found.append(main([str(a) for a in args])))
    thread.start()
    thread.join(120)
    assert found, f"qwenbuild {args} did not finish"
    return found[0]


def _figure(page: Any, output: str) -> Any:
    return page.locator(f'figure.output[data-output="{output}"]')


def test_approve_pick_and_comment_write_the_review_file_and_a_reload_shows_them(
        served: Any, page: Any) -> None:
    url, w = served
    project = w.campaign
    ready(page, url)
    hero = _figure(page, "1x1/small/hero-v1.png")
    assert hero.get_attribute("data-review") == "unreviewed"

    hero.locator('button[data-action="approve"]').click()
    _wait_for(lambda: _decision(project, "1x1/small/hero-v1.png").get("decision") == "approved",
              "the approval in review.toml")
    decision = _decision(project, "1x1/small/hero-v1.png")
    assert decision["by"] == "Ana Lima"
    assert decision["sha256"] == _sha(project, "1x1/small/hero-v1.png")  # the image seen
    page.wait_for_function("() => document.querySelector('figure.output[data-output="
                           "\"1x1/small/hero-v1.png\"]').dataset.review === 'approved'")

    # Pick v2 among the 9:16 variants, then change our mind: v1 is the pick.
    _figure(page, "9x16/small/hero-v2.png").locator('button[data-action="pick"]').click()
    _wait_for(lambda: _decision(project, "9x16/small/hero-v2.png").get("decision") == "picked",
              "the pick of v2")
    page.wait_for_function("() => document.querySelector('figure.output[data-output="
                           "\"9x16/small/hero-v2.png\"]').dataset.review === 'picked'")
    _figure(page, "9x16/small/hero-v1.png").locator('button[data-action="pick"]').click()
    _wait_for(lambda: _decision(project, "9x16/small/hero-v1.png").get("decision") == "picked",
              "the pick of v1")
    assert "decision" not in _decision(project, "9x16/small/hero-v2.png")  # one pick per group

    # A comment, from the large view.
    _figure(page, "9x16/small/story.png").locator("button.thumb").click()
    page.locator("#qb-comment").fill("Footer too close to the edge <b>really</b>")
    page.locator("#qb-comment-form button").click()
    _wait_for(lambda: _decision(project, "9x16/small/story.png").get("comments"),
              "the comment in review.toml")
    comment = _decision(project, "9x16/small/story.png")["comments"][0]
    assert comment["text"] == "Footer too close to the edge <b>really</b>"
    assert comment["by"] == "Ana Lima" and comment["sha256"] == _sha(project,
                                                                      "9x16/small/story.png")
    page.keyboard.press("Escape")
    page.locator("#qb-viewer").wait_for(state="hidden")
    # The large view is in the URL only while open (the dialog's close event says so).
    page.wait_for_function("() => !location.hash.includes('open=')")

    # A reload shows it all, from the file.
    page.reload()
    page.wait_for_selector("html[data-ready='1']", state="attached")
    page.wait_for_function("() => document.querySelector('figure.output[data-output="
                           "\"1x1/small/hero-v1.png\"]').dataset.review === 'approved'")
    assert _figure(page, "9x16/small/hero-v1.png").get_attribute("data-review") == "picked"
    assert _figure(page, "9x16/small/hero-v2.png").get_attribute("data-review") == "unreviewed"
    assert _figure(page, "9x16/small/hero-v1.png").locator(
        'button[data-action="pick"]').get_attribute("aria-pressed") == "true"
    story = _figure(page, "9x16/small/story.png")
    assert "1 comment" in story.inner_text()
    story.locator("button.thumb").click()
    thread = page.locator("#qb-thread").inner_text()
    assert "Footer too close to the edge <b>really</b>" in thread and "Ana Lima" in thread
    assert page.locator("#qb-thread b").count() == 0  # text, never markup
    assert "reviewing as Ana Lima" in page.locator("#qb-who").inner_text()


def test_a_second_tab_sees_a_decision_without_reloading(served: Any, browser: Any,
                                                        page: Any) -> None:
    url, w = served
    other = browser.new_context(viewport={"width": 1400, "height": 3000}).new_page()
    other.set_default_timeout(WAIT_MS)
    try:
        ready(page, url)
        ready(other, url)
        other.wait_for_selector('#qb-live[data-state="live"]')
        other.evaluate("window.__notReloaded = true")
        _figure(page, "9x16/small/story.png").locator('button[data-action="reject"]').click()
        other.wait_for_function("() => document.querySelector('figure.output[data-output="
                                "\"9x16/small/story.png\"]').dataset.review === 'rejected'")
        assert other.evaluate("window.__notReloaded") is True  # updated in place
        # A decision made in a terminal reaches open pages too.
        assert cli("approve", w.campaign.parent / "out/1x1/small/hero-v2.png",
                   "--by", "Ben") == 0
        other.wait_for_function("() => document.querySelector('figure.output[data-output="
                                "\"1x1/small/hero-v2.png\"]').dataset.review === 'approved'")
    finally:
        other.context.close()


def test_keyboard_shortcuts_decide_on_the_image_in_focus(served: Any, page: Any) -> None:
    url, w = served
    ready(page, url)
    page.keyboard.press("j")  # the first image
    first = page.evaluate("document.activeElement.closest('figure').dataset.output")
    page.keyboard.press("j")
    second = page.evaluate("document.activeElement.closest('figure').dataset.output")
    assert first != second
    page.keyboard.press("a")
    _wait_for(lambda: _decision(w.campaign, second).get("decision") == "approved",
              "the approval by keyboard")
    page.wait_for_function(f"() => document.querySelector('figure.output[data-output="
                           f"\"{second}\"]').dataset.review === 'approved'")
    page.keyboard.press("a")  # again: undo
    _wait_for(lambda: "decision" not in _decision(w.campaign, second), "the undo")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "qb-search"


def test_filters_and_search_are_kept_in_the_url(served: Any, page: Any) -> None:
    url, w = served
    ready(page, url)
    _figure(page, "9x16/small/story.png").locator('button[data-action="approve"]').click()
    page.wait_for_function("() => document.querySelector('figure.output[data-output="
                           "\"9x16/small/story.png\"]').dataset.review === 'approved'")
    page.locator('label.chip:has(input[name="status"][value="unreviewed"])').click()
    assert page.locator("figure.output:visible").count() == 8
    page.locator("#qb-search").fill("her")
    page.wait_for_function("() => location.hash.includes('q=her')")
    assert page.locator("figure.output:visible").count() == 8  # all of hero
    assert page.locator("#asset-story").is_hidden()
    page.locator('label.chip:has(input[name="status"][value="approved"])').click()
    assert page.locator("figure.output:visible").count() == 0
    page.locator("#qb-search").fill("story")
    assert page.locator("figure.output:visible").count() == 1
    shared = page.url
    assert "status=approved" in shared and "q=story" in shared
    # The same address in another tab shows the same view.
    page.goto("about:blank")
    ready(page, shared)
    assert page.locator("figure.output:visible").count() == 1
    assert page.locator("#qb-search").input_value() == "story"
    assert page.locator('input[name="status"][value="approved"]').is_checked()


@pytest.fixture
def git_project(project: Path) -> Path:
    """The shared project in a git repository, built and committed."""
    root = project.parent
    assert cli("build", project) == 0
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm",
                  "first"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return project


def test_before_after_against_git_head_and_zoom_to_100(git_project: Path, page: Any) -> None:
    project = git_project
    out = project.parent / "out"
    committed = (out / "9x16/small/story.png").read_bytes()
    with WatchThread(project, serve=True, port=0) as w:
        url = w.next("serving").url
        w.built()
        edit(project, "SECOND STORY", "A NEW STORY")
        w.built()
        assert (out / "9x16/small/story.png").read_bytes() != committed
        ready(page, url)
        story = _figure(page, "9x16/small/story.png")
        story.locator("button.thumb").click()
        page.wait_for_function("() => document.getElementById('qb-viewer-img').naturalWidth > 0")
        # Before/after: the image committed in HEAD under the new one, split by a slider.
        page.locator("#qb-compare").click()
        page.wait_for_function("() => document.getElementById('qb-before-img').naturalWidth > 0")
        assert "git HEAD" in page.locator("#qb-compare-note").inner_text()
        before = page.evaluate("""async () => {
            const src = document.getElementById('qb-before-img').src;
            return Array.from(new Uint8Array(await (await fetch(src)).arrayBuffer())); }""")
        assert bytes(before) == committed
        assert page.locator("#qb-before-img").is_visible()
        page.locator("#qb-split").fill("20")
        assert page.evaluate("getComputedStyle(document.getElementById('qb-frame'))"
                             ".getPropertyValue('--split').trim()") == "20%"
        page.keyboard.press("b")  # the shortcut toggles it off
        assert page.locator("#qb-before-img").is_hidden()
        # An output unchanged since the commit has no "before" in git: it says so.
        page.keyboard.press("ArrowRight")
        page.locator("#qb-compare").click()
        page.wait_for_function("() => document.getElementById('qb-compare-note').textContent")
        note = page.locator("#qb-compare-note").inner_text()
        if "HEAD" in note and "unchanged" not in note:
            raise AssertionError(note)

        # Zoom: fit scales the image to the stage; 100 % shows one image pixel per pixel.
        natural = page.evaluate("document.getElementById('qb-viewer-img').naturalWidth")
        fitted = page.evaluate("document.getElementById('qb-viewer-img')"
                               ".getBoundingClientRect().width")
        assert abs(fitted - natural) > 1  # 96 px wide: fit scales it up
        page.keyboard.press("z")
        page.wait_for_function("() => document.getElementById('qb-stage')"
                               ".classList.contains('actual')")
        shown = page.evaluate("document.getElementById('qb-viewer-img')"
                              ".getBoundingClientRect().width")
        assert shown == natural
        page.keyboard.press("z")
        assert page.evaluate("document.getElementById('qb-viewer-img')"
                             ".getBoundingClientRect().width") == fitted


def test_zoomed_to_100_a_large_image_pans_by_dragging(tmp_path: Path, page: Any) -> None:
    from .conftest import SIMPLE_TEMPLATE, build_file_tree

    build_file_tree(tmp_path, {
        "templates/poster.j2": SIMPLE_TEMPLATE,
        "campaign.toml": '[campaign]\nname = "big"\n[brand]\nname = "Acme"\n'
                         '[providers.full]\nkind = "preview"\n'
                         '[[assets]]\nid = "poster"\ntemplate = "poster.j2"\n'
                         'aspects = ["16:9"]\nproviders = ["full"]\n'
                         '[assets.copy]\nheadline = "SMALL PRINT MATTERS"\n'})
    assert cli("build", tmp_path / "campaign.toml") == 0
    page.set_viewport_size({"width": 1200, "height": 800})
    ready(page, (tmp_path / "out" / "index.html").as_uri())  # zoom works from file:// too
    page.locator("figure.output button.thumb").click()
    page.wait_for_function("() => document.getElementById('qb-viewer-img').naturalWidth > 0")
    natural = page.evaluate("document.getElementById('qb-viewer-img').naturalWidth")
    assert natural > 1200
    page.locator("#qb-zoom").click()
    stage = page.locator("#qb-stage")
    assert page.evaluate("document.getElementById('qb-viewer-img')"
                         ".getBoundingClientRect().width") == natural
    start = page.evaluate("[document.getElementById('qb-stage').scrollLeft,"
                          " document.getElementById('qb-stage').scrollTop]")
    box = stage.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 150, cy + 80, steps=5)
    page.mouse.up()
    end = page.evaluate("[document.getElementById('qb-stage').scrollLeft,"
                        " document.getElementById('qb-stage').scrollTop]")
    assert end[0] == start[0] - 150 and end[1] == start[1] - 80


def test_exports_show_their_crop_and_are_approved_on_their_own(project: Path,
                                                                page: Any) -> None:
    edit(project, "[[assets]]\nid = \"hero\"", '[[exports]]\nname = "banner"\naspect = "1:1"\n'
         'width = 64\nheight = 32\nformat = "png"\n\n[[assets]]\nid = "hero"')
    with WatchThread(project, serve=True, port=0) as w:
        url = w.next("serving").url
        w.built()
        ready(page, url)
        hero = _figure(page, "1x1/small/hero-v1.png")
        assert "exports: banner 64×32" in hero.inner_text()
        hero.locator("button.thumb").click()
        exports = page.locator("#qb-exports figure")
        assert exports.count() == 1 and "keeps 100 % × 50 % of the image" in exports.inner_text()
        page.keyboard.press("e")
        crop = page.locator("#qb-frame .crop")
        assert crop.count() == 1 and "banner 64×32" in crop.inner_text()
        frame = page.locator("#qb-frame").bounding_box()
        box = crop.bounding_box()
        assert abs(box["width"] - frame["width"]) < 2 and abs(
            box["height"] - frame["height"] / 2) < 2
        exports.locator('button[data-export-action="approve"]').click()
        rel = "exports/banner/small/hero-v1.png"
        _wait_for(lambda: _decision(project, rel).get("decision") == "approved",
                  "the export's approval")
        assert "decision" not in _decision(project, "1x1/small/hero-v1.png")


class ReviewProcess:
    """`python -m qwenbuild review CAMPAIGN --port 0`: serve only, no build."""

    def __init__(self, campaign: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qwenbuild", "review", str(campaign), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + (self.proc.stderr.read() if self.proc.stderr else "")
        self.url = match.group(1)

    def close(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return err


def test_copy_edit_of_an_approved_asset_then_approving_the_candidate_on_the_page(
        project: Path, page: Any) -> None:
    """`qwenbuild review` serves the page (no build); builds run beside it and open pages
    follow them; approving the candidate on the page promotes it."""
    out = project.parent / "out"
    assert cli("build", project) == 0
    assert cli("approve", out / "9x16/small/story.png") == 0
    approved = (out / "9x16/small/story.png").read_bytes()
    edit(project, "SECOND STORY", "SECOND STORY, NEW COPY")
    server = ReviewProcess(project)
    try:
        ready(page, server.url)
        page.wait_for_selector('#qb-live[data-state="live"]')
        assert cli("build", project, "--candidates") == 0
        page.wait_for_selector('figure.output[data-output="9x16/small/story.candidate.png"]')
        story = _figure(page, "9x16/small/story.png")
        assert story.get_attribute("data-status") == "locked"
        assert "inputs changed" in story.inner_text()
        candidate = _figure(page, "9x16/small/story.candidate.png")
        new = (out / "9x16/small/story.candidate.png").read_bytes()
        assert (out / "9x16/small/story.png").read_bytes() == approved
        candidate.locator('button[data-action="approve"]').click()
        _wait_for(lambda: _decision(project, "9x16/small/story.png").get("sha256") ==
                  hashlib.sha256(new).hexdigest(), "the approval of the promoted image")
        assert _decision(project, "9x16/small/story.png")["decision"] == "approved"
        assert (out / "9x16/small/story.png").read_bytes() == new
        assert not (out / "9x16/small/story.candidate.png").exists()
        page.wait_for_function("() => !document.querySelector('figure.output[data-output="
                               "\"9x16/small/story.candidate.png\"]')")
        page.wait_for_function("() => document.querySelector('figure.output[data-output="
                               "\"9x16/small/story.png\"]')?.dataset.review === 'approved'")
    finally:
        err = server.close()
    assert "Traceback" not in err, err


@pytest.mark.parametrize(("name", "width", "height"), [("desktop", 1440, 900),
                                                       ("phone", 390, 844)])
def test_screenshots_at_desktop_and_phone_widths(served: Any, browser: Any, name: str,
                                                 width: int, height: int) -> None:
    """Screenshots for a person to look at (tests/screenshots/, not committed), and the
    layout checks a screenshot would show: nothing wider than the screen on a phone,
    every decision button reachable."""
    url, w = served
    assert cli("approve", w.campaign.parent / "out/1x1/small/hero-v1.png", "-m",
               "Approved for print.") == 0
    assert cli("pick", w.campaign.parent / "out/9x16/small/hero-v2.png") == 0
    context = browser.new_context(viewport={"width": width, "height": height},
                                  device_scale_factor=2 if name == "phone" else 1)
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    try:
        ready(tab, url)
        # The images on screen (the others load lazily, when scrolled to).
        tab.wait_for_function(
            "() => [...document.querySelectorAll('figure.output img')].filter(i => {"
            " const r = i.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; })"
            ".every(i => i.complete && i.naturalWidth > 0)")
        folder = Path(__file__).parent / "screenshots"
        folder.mkdir(exist_ok=True)
        tab.screenshot(path=str(folder / f"review-{name}.png"))
        assert tab.evaluate("document.documentElement.scrollWidth") <= width
        for button in tab.locator('figure.output:visible button[data-action]').all()[:6]:
            box = button.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        _figure(tab, "1x1/small/hero-v1.png").locator("button.thumb").click()
        tab.wait_for_function("() => document.getElementById('qb-viewer-img').naturalWidth > 0")
        tab.screenshot(path=str(folder / f"review-{name}-viewer.png"))
        assert tab.locator("#qb-viewer-decide button").first.is_visible()
        assert "Approved for print." in tab.locator("#qb-thread").inner_text()
    finally:
        context.close()
