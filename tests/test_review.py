"""The review page, `<out>/index.html` and its data files `<out>/review/*.js`, as every build
writes them. (What the page shows in a browser: test_browser.py.)"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qwenbuild.review.page import CHUNK_OUTPUTS

from .conftest import SIMPLE_TEMPLATE, Result, build_file_tree, tree_snapshot
from .pagedata import read_page

Run = Callable[..., Result]


def _out(campaign: Path) -> Path:
    return campaign.parent / "out"


def _outputs(campaign: Path) -> dict[str, dict[str, Any]]:
    return read_page(_out(campaign)).outputs


def _page_files(campaign: Path) -> dict[str, bytes]:
    return {rel: data for rel, data in tree_snapshot(_out(campaign)).items()
            if rel == "index.html" or rel.startswith("review/")}


def _with_negative(project: Path) -> Path:
    project.write_text(project.read_text().replace(
        '[defaults]\n', '[defaults]\nnegative = "blurry, watermark of {{ brand.name }}"\n'))
    return project


def test_every_build_writes_a_page_with_every_output_and_its_details(project: Path,
                                                                     run: Run) -> None:
    _with_negative(project)
    assert run("build", project).code == 0
    manifest = json.loads((_out(project) / "manifest.json").read_text())["outputs"]
    page = read_page(_out(project))
    outputs = page.outputs
    assert set(outputs) == set(manifest) and len(outputs) == 5
    for rel, entry in manifest.items():
        item = outputs[rel]
        assert item["status"] == "generated" and item["changed"] == "new"
        assert (item["seed"], item["width"], item["height"]) == (
            entry["seed"], entry["width"], entry["height"])
        assert item["provider"] == "small" and item["model"] == entry["model"]
        assert item["cost"] == "free" and item["provider_seed"] == entry["seed"]
        assert "Acme" in item["prompt"] and item["negative"] == "blurry, watermark of Acme"
        assert item["src"] == f'{rel}?v={entry["sha256"][:12]}'  # relative: works from file://
        assert item["row"][5] == entry["sha256"][:12]  # the index knows the image too
    index = page.index
    assert index["campaign"] == "test" and index["summary"]["outputs"] == 5
    # One grid per asset: aspects are the columns, providers the rows, in campaign order.
    hero = next(a for a in index["assets"] if a[0] == "hero")
    assert [index["aspects"][i] for i in hero[4]] == ["1:1", "9:16"] and hero[1] == "HELLO WORLD"
    for rel, data in _page_files(project).items():
        assert str(project.parent).encode() not in data, rel  # no absolute paths
    html = (_out(project) / "index.html").read_text()
    # The file on disk knows nothing of the server; its data is loaded by <script src>
    # (a page opened from file:// may load scripts, but not fetch files).
    assert "__QWENBUILD_LIVE__ =" not in html
    assert '<script src="review/index.js"></script>' in html
    assert (_out(project) / "review" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_the_first_screen_loads_no_prompt_and_details_come_in_chunks(tmp_path: Path,
                                                                     run: Run) -> None:
    """Issue 17: the index holds one short row per output; prompts live in chunks of about
    CHUNK_OUTPUTS outputs, named by content so an unchanged chunk keeps its name."""
    assets = "".join(f'[[assets]]\nid = "a{i:03d}"\n[assets.copy]\nheadline = "H{i}"\n'
                     for i in range(150))
    build_file_tree(tmp_path, {
        "templates/poster.j2": SIMPLE_TEMPLATE,
        "campaign.toml": '[campaign]\nname = "many"\n[brand]\nname = "Acme"\n'
                         '[defaults]\ntemplate = "poster.j2"\naspects = ["1:1"]\n'
                         'providers = ["p"]\n[providers.p]\nkind = "preview"\nscale = 0.1\n'
                         + assets})
    campaign = tmp_path / "campaign.toml"
    assert run("build", campaign).code == 0
    page = read_page(tmp_path / "out")
    index_js = (tmp_path / "out" / "review" / "index.js").read_text()
    assert "Headline reading exactly" not in index_js  # no prompt in the first screen's file
    assert len(page.outputs) == 150 and len(page.index["chunks"]) == 2
    sizes = [sum(1 for o in page.outputs.values() if o["chunk"] == c)
             for c in page.index["chunks"]]
    assert sizes == [CHUNK_OUTPUTS, 150 - CHUNK_OUTPUTS]
    # Edits of the last asset rewrite its chunk only: the first keeps its name and file.
    campaign.write_text(campaign.read_text().replace('"H149"', '"H149 EDITED"'))
    assert run("build", campaign).code == 0
    first = read_page(tmp_path / "out").index["chunks"]
    kept = tmp_path / "out" / "review" / first[0]
    mtime = kept.stat().st_mtime_ns
    campaign.write_text(campaign.read_text().replace('"H149 EDITED"', '"H149 AGAIN"'))
    assert run("build", campaign).code == 0
    again = read_page(tmp_path / "out").index["chunks"]
    assert again[0] == first[0] and kept.stat().st_mtime_ns == mtime
    assert again[1] != first[1]
    # Chunks no index names are removed.
    assert sorted(p.name for p in (tmp_path / "out" / "review").glob("c-*.js")) == \
        sorted(again)


def _marked(campaign: Path) -> dict[str, str]:
    return {rel: o["changed"] for rel, o in _outputs(campaign).items() if o["changed"]}


def test_changed_marks_and_a_byte_identical_noop(project: Path, run: Run) -> None:
    page = _out(project) / "index.html"
    assert run("build", project).code == 0
    first = _page_files(project)
    mtimes = {rel: (_out(project) / rel).stat().st_mtime_ns for rel in first}
    assert set(_marked(project).values()) == {"new"} and len(_marked(project)) == 5
    # A no-op build changes nothing: the page still shows the last build that did,
    # byte for byte, and is not even rewritten (the output folder stays identical).
    for _ in range(2):
        report = run("build", project, "--json").json()
        assert report["up_to_date"] == 5
        assert _page_files(project) == first
        assert {rel: (_out(project) / rel).stat().st_mtime_ns for rel in first} == mtimes

    project.write_text(project.read_text().replace("SECOND STORY", "SECOND STORY, EDITED"))
    assert run("build", project).code == 0
    assert _marked(project) == {"9x16/small/story.png": "changed"}
    outputs = _outputs(project)
    story = outputs["9x16/small/story.png"]
    assert story["status"] == "generated" and story["row"][7] == 2  # "changed" in the index
    assert story["reason"] == "prompt changed, copy or brand changed"
    assert story["before_key"]  # the image it held before: the page's before/after
    assert outputs["1x1/small/hero-v1.png"]["status"] == "up_to_date"
    edited = _page_files(project)
    assert run("build", project).code == 0
    assert _page_files(project) == edited

    # The next build that changes something marks only what it changed.
    project.write_text(project.read_text().replace("HELLO WORLD", "HELLO THERE"))
    assert run("build", project).code == 0
    assert set(_marked(project)) == {"1x1/small/hero-v1.png", "1x1/small/hero-v2.png",
                                     "9x16/small/hero-v1.png", "9x16/small/hero-v2.png"}
    assert _outputs(project)["9x16/small/story.png"]["status"] == "up_to_date"
    # Deleted, the page comes back as it was on the next (no-op) build.
    before = _page_files(project)
    page.unlink()
    for path in (_out(project) / "review").iterdir():
        path.unlink()
    (_out(project) / "review").rmdir()
    assert run("build", project).code == 0 and _page_files(project) == before


def test_user_copy_is_data_never_markup(project: Path, run: Run) -> None:
    nasty = '</script><script>alert(1)</script> <b>bold</b> & "quoted"'
    text = project.read_text().replace('"SECOND STORY"', json.dumps(nasty))
    project.write_text(text.replace('name = "test"', 'name = "<i>test</i>"'))
    assert run("build", project).code == 0
    html = (_out(project) / "index.html").read_text()
    assert "<i>test</i>" not in html and "&lt;i&gt;test&lt;/i&gt;" in html
    for rel, data in _page_files(project).items():
        if rel.endswith(".js"):
            assert b"<" not in data, rel  # even inlined, no tag could close a script
    # The data still holds the exact text (the page sets it with textContent).
    assert nasty in _outputs(project)["9x16/small/story.png"]["prompt"]
    assert html.count("<script") == 4  # the page's own: hooks, index, decisions, app


def test_stale_outputs_are_shown(project: Path, run: Run) -> None:
    assert run("build", project).code == 0
    project.write_text(project.read_text().replace('aspects = ["1:1", "9:16"]',
                                                   'aspects = ["9:16"]'))
    assert run("build", project).code == 0
    outputs = _outputs(project)
    stale = {rel for rel, o in outputs.items() if o["status"] == "stale"}
    assert stale == {"1x1/small/hero-v1.png", "1x1/small/hero-v2.png"}
    assert outputs["1x1/small/hero-v1.png"]["src"]
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
    page = read_page(tmp_path / "out")
    kept, fresh = page.outputs["1x1/pro/kept.png"], page.outputs["1x1/pro/fresh.png"]
    for item in (kept, fresh):
        assert item["status"] == "failed" and "AIMLAPI_API_KEY is not set" in item["error"]
        assert not item["changed"]
    assert kept["previous_kept"] and kept["src"] == before["src"]
    assert not fresh["previous_kept"] and fresh["src"] is None and fresh["row"][5] == ""
    failures = dict(page.index["failures"])
    assert set(failures) == {"1x1/pro/kept.png", "1x1/pro/fresh.png"}
    assert all("AIMLAPI_API_KEY is not set" in e for e in failures.values())


def test_outputs_outside_the_selection_keep_their_prompt(project: Path, run: Run) -> None:
    assert run("build", project).code == 0
    project.write_text(project.read_text().replace("SECOND STORY", "NEW STORY"))
    assert run("build", project, "--only", "story").code == 0
    outputs = _outputs(project)
    story = outputs["9x16/small/story.png"]
    assert story["status"] == "generated" and "NEW STORY" in story["prompt"]
    hero = outputs["1x1/small/hero-v1.png"]
    assert hero["status"] == "kept" and not hero["changed"]
    assert 'reading exactly: "HELLO WORLD"' in hero["prompt"]  # from the last page's data


def test_prompts_of_unchanged_outputs_are_not_rendered_again(
        project: Path, run: Run, monkeypatch: Any) -> None:
    """Writing the page renders no prompt it showed before with the same key (they come
    from the last page's chunks): a one-asset edit of a big campaign stays cheap."""
    from qwenbuild.plan.jobs import Job

    assert run("build", project).code == 0
    project.write_text(project.read_text().replace("SECOND STORY", "OTHER STORY"))
    rendered: list[str] = []
    original = Job._materialise

    def counting(self: Job) -> Any:
        # (A job whose prompts were rendered while planning forms its request from them.)
        if not self._made and self.texts is None:
            rendered.append(self.output)
        return original(self)

    monkeypatch.setattr(Job, "_materialise", counting)
    assert run("build", project).code == 0
    # (The edited job's request was made while planning, to compute its key.)
    assert rendered == []
    hero = _outputs(project)["1x1/small/hero-v1.png"]
    assert 'reading exactly: "HELLO WORLD"' in hero["prompt"]


def test_the_page_data_is_ignored_by_git_in_any_repository(project: Path, run: Run) -> None:
    """Old brand repositories ignore only out/index.html: the data folder ignores itself."""
    root = project.parent
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("out/index.html\n")
    assert run("build", project).code == 0
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                            cwd=root, capture_output=True, text=True, check=True).stdout
    assert "review/" not in status and "index.html" not in status
    assert "out/manifest.json" in status  # what is meant to be committed still shows
