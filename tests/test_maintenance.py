"""The CI check (`plan --check`), `clean` and `cache gc`, through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

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
    assert refused.code == 2
    assert f"{empty}: no manifest.json of qwenbuild below it (nothing was built here)" \
        in refused.err
    assert "nothing was removed" in refused.err


def test_cache_gc_outside_any_repository_refuses_without_searching(
        tmp_path: Path, run, monkeypatch) -> None:
    """Run from a folder outside git with no cache (a home folder): refused at once, with
    what to do, instead of searching everything below it for manifests."""
    import qwenbuild.maintenance

    def searched(*args: object, **kwargs: object) -> None:
        raise AssertionError("searched the folder")

    monkeypatch.setattr(qwenbuild.maintenance, "_files_named", searched)
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    monkeypatch.chdir(home / "Documents")
    result = run("cache", "gc")
    assert result.code == 2
    assert "is not inside a git repository and has no .qwenbuild/ folder" in result.err
    assert "qwenbuild cache gc ROOT" in result.err
    assert "QWENBUILD_CACHE_DIR" in result.err  # the tests share a cache that way


def test_cache_gc_where_there_is_no_cache_says_so(tmp_path: Path, run, monkeypatch) -> None:
    monkeypatch.delenv("QWENBUILD_CACHE_DIR")
    repo = tmp_path / "empty-repo"
    (repo / ".git").mkdir(parents=True)
    monkeypatch.chdir(repo)
    result = run("cache", "gc")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"no cache to collect: {repo / '.qwenbuild' / 'cache'} does not exist",
        "nothing to remove"]
    # Campaigns kept outside git have their cache beside them: found from a subfolder.
    loose = tmp_path / "loose"
    (loose / ".qwenbuild" / "cache").mkdir(parents=True)
    (loose / "sub").mkdir()
    monkeypatch.chdir(loose / "sub")
    result = run("cache", "gc")
    assert result.code == 2 and f"{loose}: no manifest.json of qwenbuild" in result.err


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example"})


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_cache_gc_keeps_what_earlier_commits_use(project: Path, run, cache_dir: Path,
                                                 monkeypatch) -> None:
    """Edit, build, commit, gc, then check out the old campaign: its images come back from
    the cache instead of being paid for again."""
    repo = project.parent.parent
    _git(repo, "init", "-q")
    assert run("build", project).code == 0
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first")
    old_key = _manifest(project)["outputs"]["9x16/small/story.png"]["key"]
    project.write_text(project.read_text().replace("SECOND STORY", "NEW STORY"))
    assert run("build", project).code == 0
    _git(repo, "commit", "-qam", "copy edit")
    monkeypatch.chdir(project.parent)

    result = run("cache", "gc")
    assert result.code == 0, result.err
    assert "kept what the manifests of the last 2 of 2 commits use" in result.out
    assert f"{old_key}.png" in _objects(cache_dir)
    _git(repo, "checkout", "HEAD~1", "--", str(project.relative_to(repo)))
    plan = run("plan", project, "--json").json()
    assert plan["build"] == 0 and plan["cached"] == 1  # the old story: restored, not paid
    _git(repo, "checkout", "HEAD", "--", str(project.relative_to(repo)))

    one = run("cache", "gc", "--keep-commits", "1", "--dry-run", "--json").json()
    assert {Path(r["path"]).name for r in one["removed"]} >= {f"{old_key}.png"}
    assert one["notes"] == ["kept what the manifests of the last 1 of 2 commits use "
                            "(--keep-commits N to change it, --all-history for every commit)"]
    every = run("cache", "gc", "--all-history", "--dry-run", "--json").json()
    assert every["removed"] == [] or all(old_key not in r["path"] for r in every["removed"])
    assert run("cache", "gc", "--no-history").code == 0
    assert f"{old_key}.png" not in _objects(cache_dir)


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
    import time

    (cache_dir / "tasks").mkdir()
    (cache_dir / "tasks" / f"{'f' * 64}.json").write_text(json.dumps(  # still polled for
        {"kind": "runware", "ids": {"taskUUID": "x"}, "submitted": time.time(),
         "retention": 3600}))
    # Dead ones, one of each kind.
    dead = {
        "objects": [f"objects/dd/{dead_key}.png", f"objects/dd/{dead_key}.json"],
        "textcheck/choices": [f"textcheck/choices/{dead_key}.json"],
        "textcheck/results": ["textcheck/results/22/" + "2" * 64 + ".json",
                              "textcheck/results/33/" + "3" * 64 + ".json"],
        "plans": [f"plans/{folder_tag(tmp_path / 'gone.toml')}.json"],
        "noop": [f"noop/{folder_tag(tmp_path / 'gone.toml')}.txt",
                 f"noop/{folder_tag(tmp_path / 'gone.toml')}.json"],
        "state": [f"state/{folder_tag(tmp_path / 'gone-out')}.json",
                  f"state/{folder_tag(tmp_path / 'gone-out')}.review.json"],
        "locks": [f"locks/{folder_tag(tmp_path / 'gone-out')}.lock"],
        "quarantine": [f"quarantine/{dead_key}.png"],
        "tasks": [f"tasks/{dead_key}.json"],  # past its provider's retention
    }
    assert set(dead) == {kind.folder for kind in RECORD_KINDS}, "a kind without a test"
    for names in dead.values():
        for name in names:
            (cache_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (cache_dir / name).write_text("{}")
    # A result about an image no manifest lists, and one from before results named theirs.
    (cache_dir / dead["textcheck/results"][0]).write_text(json.dumps({"image": dead_image}))
    (cache_dir / dead["tasks"][0]).write_text(json.dumps(
        {"kind": "runware", "ids": {"taskUUID": "y"}, "submitted": 1000.0, "retention": 3600}))
    live_files = {p.relative_to(cache_dir).as_posix() for p in cache_dir.rglob("*")
                  if p.is_file()} - {n for names in dead.values() for n in names}
    assert {name.split("/")[0] for name in live_files} >= {
        "objects", "plans", "state", "locks", "textcheck", "tasks", "noop"}

    result = run("cache", "gc", project.parent.parent, "--json")
    assert result.code == 0, result.err
    removed = {r["path"] for r in result.json()["removed"]}
    assert removed == {n for names in dead.values() for n in names}
    left = {p.relative_to(cache_dir).as_posix() for p in cache_dir.rglob("*") if p.is_file()}
    assert left == live_files
