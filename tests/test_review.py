"""The review page, `<out>/index.html`, as every build writes it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from markupsafe import escape

from .conftest import SIMPLE_TEMPLATE, Result, build_file_tree

Run = Callable[..., Result]


def _page(campaign: Path) -> str:
    return (campaign.parent / "out" / "index.html").read_text("utf-8")


def _data(page: str) -> dict[str, Any]:
    """The JSON the page embeds (what its large view shows)."""
    match = re.search(r'<script type="application/json" id="qb-data">(.*?)</script>', page,
                      re.S)
    assert match, "no embedded data"
    return json.loads(match.group(1))


def _outputs(campaign: Path) -> dict[str, dict[str, Any]]:
    return {o["output"]: o for o in _data(_page(campaign))["outputs"]}


def _figure(page: str, output: str) -> str:
    """The HTML of one output's cell."""
    match = re.search(r'<figure [^>]*data-output="' + re.escape(output) + r'".*?</figure>',
                      page, re.S)
    assert match, f"no figure for {output}"
    return match.group(0)


def _with_negative(project: Path) -> Path:
    project.write_text(project.read_text().replace(
        '[defaults]\n', '[defaults]\nnegative = "blurry, watermark of {{ brand.name }}"\n'))
    return project


def test_every_build_writes_a_page_with_every_output_and_its_details(project: Path,
                                                                     run: Run) -> None:
    _with_negative(project)
    assert run("build", project).code == 0
    page = _page(project)
    manifest = json.loads((project.parent / "out" / "manifest.json").read_text())["outputs"]
    outputs = _outputs(project)
    assert set(outputs) == set(manifest) and len(outputs) == 5
    for rel, entry in manifest.items():
        item = outputs[rel]
        assert item["status"] == "generated" and item["changed"] == "new"
        assert (item["seed"], item["width"], item["height"]) == (
            entry["seed"], entry["width"], entry["height"])
        assert item["provider"] == "small" and item["model"] == entry["model"]
        assert item["cost"] == "free" and item["provider_seed"] == entry["seed"]
        assert "Acme" in item["prompt"] and item["negative"] == "blurry, watermark of Acme"
        # The cell itself shows the details, not only the large view.
        cell = _figure(page, rel)
        assert f'src="{rel}?v={entry["sha256"][:12]}"' in cell  # relative: works from file://
        for shown in (f'{entry["width"]}×{entry["height"]}', f"seed {entry['seed']}",
                      "small · preview", "free", "generated", "blurry, watermark of Acme",
                      str(escape(item["prompt"]))):
            assert shown in cell, shown
    assert "HELLO WORLD" in _figure(page, "9x16/small/hero-v2.png")
    # One grid per asset: aspects are the columns, providers the rows.
    assert re.search(r'<th scope="col" data-aspect="1:1">1:1</th>'
                     r'<th scope="col" data-aspect="9:16">9:16</th>', page)
    assert str(project.parent) not in page  # no absolute paths
    # The file on disk knows nothing of the watch server.
    assert "__QWENBUILD_LIVE__ =" not in page


def _marked(campaign: Path) -> dict[str, str]:
    return {rel: o["changed"] for rel, o in _outputs(campaign).items() if o["changed"]}


def test_changed_marks_and_a_byte_identical_noop(project: Path, run: Run) -> None:
    page = project.parent / "out" / "index.html"
    assert run("build", project).code == 0
    first, mtime = page.read_bytes(), page.stat().st_mtime_ns
    assert first.count(b"data-changed=") == 5 and first.count(b'<span class="mark">new') == 5
    # A no-op build changes nothing: the page still shows the last build that did,
    # byte for byte, and is not even rewritten (the output folder stays identical).
    for _ in range(2):
        report = run("build", project, "--json").json()
        assert report["up_to_date"] == 5
        assert page.read_bytes() == first and page.stat().st_mtime_ns == mtime

    project.write_text(project.read_text().replace("SECOND STORY", "SECOND STORY, EDITED"))
    assert run("build", project).code == 0
    assert _marked(project) == {"9x16/small/story.png": "changed"}
    outputs = _outputs(project)
    story = outputs["9x16/small/story.png"]
    assert story["status"] == "generated"
    assert story["reason"] == "prompt changed, copy or brand changed"
    assert outputs["1x1/small/hero-v1.png"]["status"] == "up_to_date"
    cell = _figure(_page(project), "9x16/small/story.png")
    assert 'data-changed="changed"' in cell and '<span class="mark">changed</span>' in cell
    edited = page.read_bytes()
    assert run("build", project).code == 0
    assert page.read_bytes() == edited

    # The next build that changes something marks only what it changed.
    project.write_text(project.read_text().replace("HELLO WORLD", "HELLO THERE"))
    assert run("build", project).code == 0
    assert set(_marked(project)) == {"1x1/small/hero-v1.png", "1x1/small/hero-v2.png",
                                     "9x16/small/hero-v1.png", "9x16/small/hero-v2.png"}
    assert _outputs(project)["9x16/small/story.png"]["status"] == "up_to_date"
    # Deleted, the page comes back as it was on the next (no-op) build.
    before = page.read_bytes()
    page.unlink()
    assert run("build", project).code == 0 and page.read_bytes() == before


def test_user_copy_is_escaped(project: Path, run: Run) -> None:
    nasty = '</script><script>alert(1)</script> <b>bold</b> & "quoted"'
    text = project.read_text().replace('"SECOND STORY"', json.dumps(nasty))
    project.write_text(text.replace('name = "test"', 'name = "<i>test</i>"'))
    assert run("build", project).code == 0
    page = _page(project)
    assert "<script>alert(1)" not in page and "<b>bold</b>" not in page
    assert "<i>test</i>" not in page and "&lt;i&gt;test&lt;/i&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &#34;quoted&#34;" in page
    assert page.count("<script") == 2  # the embedded data and the page's own script
    # The embedded JSON still holds the exact text.
    assert nasty in _outputs(project)["9x16/small/story.png"]["prompt"]


def test_stale_outputs_are_shown(project: Path, run: Run) -> None:
    assert run("build", project).code == 0
    project.write_text(project.read_text().replace('aspects = ["1:1", "9:16"]',
                                                   'aspects = ["9:16"]'))
    assert run("build", project).code == 0
    outputs = _outputs(project)
    stale = {rel for rel, o in outputs.items() if o["status"] == "stale"}
    assert stale == {"1x1/small/hero-v1.png", "1x1/small/hero-v2.png"}
    cell = _figure(_page(project), "1x1/small/hero-v1.png")
    assert "<img " in cell and ">stale</span>" in cell
    assert "HELLO WORLD" in outputs["1x1/small/hero-v1.png"]["prompt"]  # from the cache


def test_failed_jobs_show_their_error_with_or_without_a_previous_image(tmp_path: Path,
                                                                       run: Run) -> None:
    campaign = tmp_path / "campaign.toml"
    body = ('[campaign]\nname = "f"\n[brand]\nname = "F"\n'
            '[providers.pro]\nkind = "preview"\nscale = 0.1\n'
            '[[assets]]\nid = "kept"\ntemplate = "poster.j2"\naspects = ["1:1"]\n'
            'providers = ["pro"]\n[assets.copy]\nheadline = "KEPT"\n')
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE, "campaign.toml": body})
    assert run("build", campaign).code == 0
    before = _outputs(campaign)["1x1/pro/kept.png"]
    # The same provider name, now a paid kind without its API key: the job fails, the
    # previous image stays; a new asset on it fails with no image at all.
    campaign.write_text(body.replace('kind = "preview"\nscale = 0.1', 'kind = "aimlapi"')
                        + '[[assets]]\nid = "fresh"\ntemplate = "poster.j2"\n'
                          'aspects = ["1:1"]\nproviders = ["pro"]\n'
                          '[assets.copy]\nheadline = "FRESH"\n')
    assert run("build", campaign).code == 1
    page = _page(campaign)
    outputs = _outputs(campaign)
    kept, fresh = outputs["1x1/pro/kept.png"], outputs["1x1/pro/fresh.png"]
    for item in (kept, fresh):
        assert item["status"] == "failed" and "AIMLAPI_API_KEY is not set" in item["error"]
        assert not item["changed"]
    assert kept["previous_kept"] and kept["src"] == before["src"]
    assert not fresh["previous_kept"] and fresh["src"] is None
    assert "<img " in _figure(page, "1x1/pro/kept.png")
    assert "(showing the previous image)" in _figure(page, "1x1/pro/kept.png")
    assert "no image" in _figure(page, "1x1/pro/fresh.png")
    banner = re.search(r'<div class="banner failures".*?</div>', page, re.S)
    assert banner and "2 jobs failed" in banner.group(0)
    assert "AIMLAPI_API_KEY is not set" in banner.group(0)


def test_outputs_outside_the_selection_keep_their_prompt(project: Path, run: Run) -> None:
    assert run("build", project).code == 0
    project.write_text(project.read_text().replace("SECOND STORY", "NEW STORY"))
    assert run("build", project, "--only", "story").code == 0
    outputs = _outputs(project)
    story = outputs["9x16/small/story.png"]
    assert story["status"] == "generated" and "NEW STORY" in story["prompt"]
    hero = outputs["1x1/small/hero-v1.png"]
    assert hero["status"] == "kept" and not hero["changed"]
    assert 'reading exactly: "HELLO WORLD"' in hero["prompt"]  # from the cache record
    assert ">not in this build</span>" in _figure(_page(project), "1x1/small/hero-v1.png")
