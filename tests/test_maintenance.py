"""The CI check (`plan --check`), `clean` and `cache gc`, through the CLI."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from qwenbuild.campaign import load_campaign
from qwenbuild.store import Store

from .conftest import tree_snapshot


def _manifest(camp: Path) -> dict:
    return json.loads((camp.parent / "out/manifest.json").read_text())


# -- plan --check -------------------------------------------------------------------------


def test_plan_check_fails_listing_what_and_why(project: Path, run, cache_dir: Path) -> None:
    before = tree_snapshot(project.parent), tree_snapshot(cache_dir)
    result = run("plan", "--check", project)
    assert result.code == 1
    assert "generate  out/9x16/small/story.png  (new)" in result.out
    assert "5 outputs do not match the campaign" in result.err
    # A check writes nothing at all: not the outputs, not even the key memo of the cache.
    assert (tree_snapshot(project.parent), tree_snapshot(cache_dir)) == before

    assert run("build", project).code == 0
    ok = run("plan", "--check", project)
    assert ok.code == 0, ok.out + ok.err
    assert "all 5 outputs and 0 exports up to date" in ok.out

    out = project.parent / "out"
    (out / "1x1/small/hero-v1.png").unlink()
    (out / "9x16/small/hero-v2.png").write_bytes(b"hand edit")
    project.write_text(project.read_text().replace("SECOND STORY", "NEW STORY"))
    result = run("plan", "--check", project)
    assert result.code == 1
    assert sorted(line.split() for line in result.out.strip().splitlines()) == [
        ["generate", "out/9x16/small/story.png", "(prompt", "changed,", "copy", "or", "brand",
         "changed)"],
        ["restore", "out/1x1/small/hero-v1.png", "(output", "missing)"],
        ["restore", "out/9x16/small/hero-v2.png", "(output", "modified)"],
    ]
    as_json = run("plan", "--check", "--json", project)
    assert as_json.code == 1 and as_json.json()["build"] == 1


def test_plan_check_on_a_fresh_clone_needs_no_cache(project: Path, run, cache_dir: Path,
                                                    monkeypatch) -> None:
    """CI checks out the outputs and the manifest, never the cache."""
    assert run("build", project).code == 0
    monkeypatch.setenv("QWENBUILD_CACHE_DIR", str(cache_dir.parent / "empty-ci-cache"))
    assert run("plan", "--check", project).code == 0
    project.write_text(project.read_text().replace('aspects = ["1:1", "9:16"]',
                                                   'aspects = ["9:16"]'))
    result = run("plan", "--check", project)
    assert result.code == 1
    assert "stale  out/1x1/small/hero-v1.png  (no longer in the campaign" in result.out


# -- clean --------------------------------------------------------------------------------


def test_clean_removes_only_what_qwenbuild_wrote(project: Path, run) -> None:
    assert run("build", project).code == 0
    out = project.parent / "out"
    (out / "1x1/small/notes.txt").write_text("mine")           # a user's own file
    (out / "9x16/small/extra.png").write_bytes(b"also mine")   # not in the manifest
    project.write_text(project.read_text().replace('aspects = ["1:1", "9:16"]',
                                                   'aspects = ["9:16"]')
                       .replace('id = "story"', 'id = "story2"'))
    assert run("build", project).code == 0
    (out / "1x1/small/hero-v2.png").write_bytes(b"edited by hand")  # stale and edited
    manifest = (out / "manifest.json").read_bytes()

    dry = run("clean", "--dry-run", project)
    assert dry.code == 0
    assert "would remove  out/1x1/small/hero-v1.png" in dry.out
    assert "would remove  out/9x16/small/story.png" in dry.out
    assert (out / "1x1/small/hero-v1.png").is_file()
    assert (out / "manifest.json").read_bytes() == manifest

    size = (out / "1x1/small/hero-v1.png").stat().st_size + (
        out / "9x16/small/story.png").stat().st_size
    result = run("clean", project, "--json")
    assert result.code == 0
    report = result.json()
    assert sorted(r["path"] for r in report["removed"]) == [
        "out/1x1/small/hero-v1.png", "out/9x16/small/story.png"]
    assert report["bytes"] == size
    assert report["kept"] == [{"path": "out/1x1/small/hero-v2.png",
                               "reason": "changed since qwenbuild wrote it; no longer tracked"}]
    assert not (out / "1x1/small/hero-v1.png").exists()
    assert not (out / "9x16/small/story.png").exists()
    # Never anything else: the user's files, the edited stale file, the current outputs.
    for rel in ("1x1/small/notes.txt", "9x16/small/extra.png", "1x1/small/hero-v2.png",
                "9x16/small/story2.png", "9x16/small/hero-v1.png", "index.html"):
        assert (out / rel).is_file(), rel
    assert set(_manifest(project)["outputs"]) == {
        "9x16/small/hero-v1.png", "9x16/small/hero-v2.png", "9x16/small/story2.png"}
    assert run("plan", "--check", project).code == 0

    again = run("clean", project)
    assert again.code == 0 and "nothing to remove" in again.out


def test_clean_removes_the_folders_it_emptied(project: Path, run) -> None:
    assert run("build", project).code == 0
    project.write_text(project.read_text().replace('aspects = ["1:1", "9:16"]',
                                                   'aspects = ["9:16"]'))
    result = run("clean", project)
    assert result.code == 0 and "removed 2 outputs" in result.out
    assert not (project.parent / "out/1x1").exists()
    assert (project.parent / "out/9x16/small").is_dir()


# -- cache gc -----------------------------------------------------------------------------


def _objects(cache: Path) -> set[str]:
    return {p.name for p in (cache / "objects").rglob("*") if p.is_file()}


def test_cache_gc_removes_what_no_manifest_references(project: Path, run,
                                                      cache_dir: Path) -> None:
    root = project.parent.parent
    assert run("build", project).code == 0
    old_key = _manifest(project)["outputs"]["9x16/small/story.png"]["key"]
    project.write_text(project.read_text().replace("SECOND STORY", "NEW STORY"))
    assert run("build", project).code == 0
    new_key = _manifest(project)["outputs"]["9x16/small/story.png"]["key"]
    kept_key = _manifest(project)["outputs"]["1x1/small/hero-v1.png"]["key"]
    assert f"{old_key}.png" in _objects(cache_dir)
    stray = cache_dir / "objects" / "ab" / ".qwenbuild-abc.png.0123456789ab.tmp"
    stray.parent.mkdir(exist_ok=True)  # whether a key starts with "ab" depends on the keys
    stray.write_bytes(b"half")
    hour_ago = time.time() - 3600
    os.utime(stray, (hour_ago, hour_ago))  # a killed build's leftover
    # A temporary file written right now (a `plan` saving its key memo, say) stays.
    writing = cache_dir / "plans" / ".qwenbuild-memo.json.ba9876543210.tmp"
    writing.write_bytes(b"{")
    gone = cache_dir / "state" / ("0" * 20 + ".json")  # an output folder that is gone
    gone.write_text("{}")

    dry = run("cache", "gc", root, "--dry-run", "--json")
    assert dry.code == 0
    listed = {Path(r["path"]).name for r in dry.json()["removed"]}
    assert listed == {f"{old_key}.png", f"{old_key}.json", stray.name, gone.name}
    assert f"{old_key}.png" in _objects(cache_dir)  # a dry run removes nothing

    freed = sum((cache_dir / "objects" / old_key[:2] / f"{old_key}{ext}").stat().st_size
                for ext in (".png", ".json")) + 4 + 2
    result = run("cache", "gc", root)
    assert result.code == 0
    assert f"removed 4 cache files, {freed / 1000:.1f} kB freed" in result.out
    assert not {f"{old_key}.png", f"{old_key}.json", stray.name} & _objects(cache_dir)
    assert {f"{new_key}.png", f"{kept_key}.png"} <= _objects(cache_dir)
    assert not gone.exists()
    assert writing.exists()
    # What is left restores every output without generating anything.
    (project.parent / "out/9x16/small/story.png").unlink()
    report = run("build", project, "--json").json()
    assert (report["generated"], report["cached"]) == (0, 1)


def test_cache_gc_keeps_keys_of_recorded_attempts(project: Path, run, cache_dir: Path) -> None:
    """Any 64-hex `key` in a manifest counts, at any depth (e.g. text-check attempts)."""
    assert run("build", project).code == 0
    old_key = _manifest(project)["outputs"]["9x16/small/story.png"]["key"]
    project.write_text(project.read_text().replace("SECOND STORY", "NEW STORY"))
    assert run("build", project).code == 0
    manifest_path = project.parent / "out/manifest.json"
    data = json.loads(manifest_path.read_text())
    data["outputs"]["9x16/small/story.png"]["attempts"] = [{"key": old_key, "ok": False}]
    manifest_path.write_text(json.dumps(data))
    assert run("cache", "gc", project.parent.parent).code == 0
    assert f"{old_key}.png" in _objects(cache_dir)


def test_cache_gc_defaults_to_the_repository_and_refuses_without_manifests(
        project: Path, run, tmp_path: Path, monkeypatch) -> None:
    assert run("build", project).code == 0
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(project.parent)
    result = run("cache", "gc", "--dry-run")  # the repository holding the current folder
    assert result.code == 0 and "nothing to remove" in result.out
    # A subfolder of the repository means the whole repository: its manifests are seen.
    sub = tmp_path / "unrelated-subfolder"
    sub.mkdir()
    assert run("cache", "gc", sub, "--dry-run").code == 0
    empty = tmp_path.parent / f"{tmp_path.name}-elsewhere"  # outside any repository
    empty.mkdir()
    refused = run("cache", "gc", empty)
    assert refused.code == 2 and "no qwenbuild manifest.json found" in refused.err


def test_cache_gc_waits_for_a_running_build(project: Path, run, cache_dir: Path) -> None:
    assert run("build", project).code == 0
    campaign = load_campaign(project)
    with Store(campaign.cache_dir).output_lock(campaign.out):
        result = run("cache", "gc", project.parent)
    assert result.code == 2
    assert f"a build is running (pid {os.getpid()})" in result.err


def test_cache_gc_collects_every_record_kind_the_store_declares(
        project: Path, run, cache_dir: Path, tmp_path: Path) -> None:
    """One file of each kind that nothing needs goes; one that a manifest needs stays."""
    from qwenbuild.fsutil import folder_tag
    from qwenbuild.store import RECORD_KINDS

    assert run("build", project).code == 0
    entry = _manifest(project)["outputs"]["9x16/small/story.png"]
    live_key, live_image = entry["key"], entry["sha256"]
    dead_key, dead_image = "d" * 64, "e" * 64
    store = Store(cache_dir)
    # Live records: the build made objects, a key memo, a stat cache, a review record and
    # a lock for this campaign; a text-check result and a reroll choice are added here.
    store.text_results.put("1" * 64, {"image": live_image, "lines": []})
    store.choices.put(live_key, {"key": live_key})
    # Dead ones, one of each kind.
    dead = {
        "objects": [f"objects/dd/{dead_key}.png", f"objects/dd/{dead_key}.json"],
        "textcheck/choices": [f"textcheck/choices/{dead_key}.json"],
        "textcheck/results": ["textcheck/results/22/" + "2" * 64 + ".json",
                              "textcheck/results/33/" + "3" * 64 + ".json"],
        "plans": [f"plans/{folder_tag(tmp_path / 'gone.toml')}.json"],
        "state": [f"state/{folder_tag(tmp_path / 'gone-out')}.json",
                  f"state/{folder_tag(tmp_path / 'gone-out')}.review.json"],
        "locks": [f"locks/{folder_tag(tmp_path / 'gone-out')}.lock"],
    }
    assert set(dead) == {kind.folder for kind in RECORD_KINDS}, "a kind without a test"
    for names in dead.values():
        for name in names:
            (cache_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (cache_dir / name).write_text("{}")
    # A result about an image no manifest lists, and one from before results named theirs.
    (cache_dir / dead["textcheck/results"][0]).write_text(json.dumps({"image": dead_image}))
    live_files = {p.relative_to(cache_dir).as_posix() for p in cache_dir.rglob("*")
                  if p.is_file()} - {n for names in dead.values() for n in names}
    assert {name.split("/")[0] for name in live_files} >= {
        "objects", "plans", "state", "locks", "textcheck"}

    result = run("cache", "gc", project.parent.parent, "--json")
    assert result.code == 0, result.err
    removed = {r["path"] for r in result.json()["removed"]}
    assert removed == {n for names in dead.values() for n in names}
    left = {p.relative_to(cache_dir).as_posix() for p in cache_dir.rglob("*") if p.is_file()}
    assert left == live_files
