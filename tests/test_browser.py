"""The review page in a real headless browser: Debian's chromium, driven by Playwright.

Skipped only on a machine without chromium or Playwright, and never in CI (`CI` set):
there a missing browser fails, so the tests cannot silently stop running.
"""

from __future__ import annotations

import importlib.util
import os
import time
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
    page.goto(url)
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
    page.goto(url)
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
    page.goto(url)
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
    page.goto(index.as_uri())
    assert page.locator("figure.output").count() == 9
    _images_loaded(page)  # relative URLs (with their ?v= hash) load from file://
    assert page.locator("#qb-live").is_hidden()  # no server: no live reload
    page.locator("figure.output button.thumb").first.click()
    assert page.locator("#qb-viewer").is_visible()
