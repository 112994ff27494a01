"""The foundation's promises, through the CLI: build, no-op, incremental, restore, plan."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from .conftest import REPO, run_subprocess, tree_snapshot


def _manifest(campaign: Path) -> dict:
    return json.loads((campaign.parent / "out" / "manifest.json").read_text())


def test_build_writes_the_documented_layout(project: Path, run) -> None:
    result = run("build", project, "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["generated"] == 5 and report["failed"] == 0 and report["cached"] == 0
    outputs = sorted(j["output"] for j in report["jobs"])
    assert outputs == [
        "out/1x1/small/hero-v1.png",
        "out/1x1/small/hero-v2.png",
        "out/9x16/small/hero-v1.png",
        "out/9x16/small/hero-v2.png",
        "out/9x16/small/story.png",
    ]
    for rel in outputs:
        assert (project.parent / rel).is_file()
    manifest = _manifest(project)
    entry = manifest["outputs"]["9x16/small/story.png"]
    with Image.open(project.parent / "out/9x16/small/story.png") as img:
        assert img.size == (entry["width"], entry["height"])
    assert set(entry) >= {"key", "sha256", "provider", "model", "seed", "width", "height",
                          "cost_usd"}
    assert entry["provider"] == "small" and entry["kind"] == "preview"
    assert set(report["jobs"][0]) == {"asset", "aspect", "provider", "seed", "key", "status",
                                      "reason", "output", "error", "review"}
    assert {j["review"] for j in report["jobs"]} == {"unreviewed"}  # no review file


def test_second_build_generates_nothing_and_keeps_manifest_bytes(project: Path, run) -> None:
    assert run("build", project).code == 0
    manifest = project.parent / "out" / "manifest.json"
    before = manifest.read_bytes()
    mtime = manifest.stat().st_mtime_ns
    report = run("build", project, "--json").json()
    assert (report["generated"], report["cached"], report["up_to_date"]) == (0, 0, 5)
    assert manifest.read_bytes() == before
    assert manifest.stat().st_mtime_ns == mtime  # not even rewritten


def test_editing_one_headline_regenerates_exactly_that_assets_jobs(project: Path, run) -> None:
    assert run("build", project).code == 0
    before = _manifest(project)["outputs"]
    project.write_text(project.read_text().replace("SECOND STORY", "SECOND STORY, EDITED"))
    plan = run("plan", project, "--json").json()
    to_build = {(j["asset"], j["aspect"], j["seed"]) for j in plan["jobs"]
                if j["status"] == "build"}
    assert {a for a, _, _ in to_build} == {"story"}
    assert all(j["reason"] == "prompt changed, copy or brand changed"
               for j in plan["jobs"] if j["status"] == "build")
    report = run("build", project, "--json").json()
    generated = [j for j in report["jobs"] if j["status"] == "generated"]
    assert [j["asset"] for j in generated] == ["story"]
    after = _manifest(project)["outputs"]
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"9x16/small/story.png"}


def test_deleted_output_is_restored_from_cache_without_generating(project: Path, run) -> None:
    assert run("build", project).code == 0
    target = project.parent / "out/1x1/small/hero-v2.png"
    original = target.read_bytes()
    target.unlink()
    plan = run("plan", project, "--json").json()
    (job,) = [j for j in plan["jobs"] if j["status"] != "up_to_date"]
    assert (job["status"], job["reason"]) == ("cached", "output missing")
    report = run("build", project, "--json").json()
    assert (report["generated"], report["cached"]) == (0, 1)
    assert target.read_bytes() == original


def test_modified_output_is_detected_and_restored(project: Path, run) -> None:
    assert run("build", project).code == 0
    target = project.parent / "out/1x1/small/hero-v1.png"
    original = target.read_bytes()
    target.write_bytes(original[:-10] + b"0123456789")
    report = run("build", project, "--json").json()
    assert report["cached"] == 1
    assert target.read_bytes() == original


def test_cache_hit_from_a_fresh_output_folder(project: Path, run) -> None:
    assert run("build", project).code == 0
    shutil.rmtree(project.parent / "out")
    report = run("build", project, "--json").json()
    assert (report["generated"], report["cached"]) == (0, 5)
    assert all(j["status"] == "cached" for j in report["jobs"])


def test_changing_seeds_and_aspects(project: Path, run) -> None:
    assert run("build", project).code == 0
    text = project.read_text().replace("seeds = [1, 2]", "seeds = [1, 3]")
    project.write_text(text)
    plan = run("plan", project, "--json").json()
    reasons = {j["output"]: j["reason"] for j in plan["jobs"] if j["status"] == "build"}
    assert reasons == {"out/1x1/small/hero-v2.png": "seed changed, copy or brand changed",
                       "out/9x16/small/hero-v2.png": "seed changed, copy or brand changed"}


def test_stale_outputs_are_reported_not_deleted(project: Path, run) -> None:
    assert run("build", project).code == 0
    project.write_text(project.read_text().replace('aspects = ["1:1", "9:16"]',
                                                   'aspects = ["9:16"]'))
    report = run("build", project, "--json").json()
    assert report["stale"] == ["1x1/small/hero-v1.png", "1x1/small/hero-v2.png"]
    assert (project.parent / "out/1x1/small/hero-v1.png").is_file()
    assert _manifest(project)["outputs"]["1x1/small/hero-v1.png"]["stale"] is True
    plan = run("plan", project)
    assert "stale" in plan.out


def test_selection_flags(project: Path, run) -> None:
    report = run("build", project, "--only", "st*", "--json").json()
    assert {j["asset"] for j in report["jobs"]} == {"story"}
    report = run("build", project, "--aspect", "1:1", "--json").json()
    assert {(j["asset"], j["aspect"]) for j in report["jobs"]} == {("hero", "1:1")}
    assert report["generated"] == 2
    # Jobs outside the selection keep their manifest entries.
    assert set(_manifest(project)["outputs"]) == {
        "9x16/small/story.png", "1x1/small/hero-v1.png", "1x1/small/hero-v2.png"}
    bad = run("build", project, "--only", "nothing*")
    assert bad.code == 2 and "matches no asset" in bad.err
    bad = run("build", project, "--aspect", "7:1")
    assert bad.code == 2 and "unsupported aspect ratio" in bad.err
    bad = run("build", project, "--provider", "runware")
    assert bad.code == 2 and "no asset" in bad.err


def test_force_regenerates(project: Path, run) -> None:
    assert run("build", project).code == 0
    report = run("build", project, "--force", "--only", "story", "--json").json()
    assert report["generated"] == 1


def test_plain_output_and_plan_text(project: Path, run) -> None:
    result = run("build", project)
    assert result.code == 0
    assert "generated  out/9x16/small/story.png" in result.out
    assert "5 jobs: 5 generated, 0 from cache, 0 up to date" in result.out
    assert "\033[" not in result.out  # not a terminal: no colour, no bar
    plan = run("plan", project)
    assert "5 jobs: 0 to generate, 0 from cache, 5 up to date" in plan.out


def test_cache_location_defaults_to_the_repository(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("QWENBUILD_CACHE_DIR")
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "qwenbuild" / "templates", repo / "templates")
    (repo / ".git").mkdir()
    camp = repo / "projects" / "p" / "campaign.toml"
    camp.parent.mkdir(parents=True)
    camp.write_text('[campaign]\nname = "p"\ntemplates = ["../../templates"]\n'
                    '[providers.tiny]\nkind = "preview"\nscale = 0.1\n'
                    '[[assets]]\nid = "a"\ntemplate = "poster.j2"\naspects = ["1:1"]\n'
                    'providers = ["tiny"]\n[assets.copy]\nheadline = "HI"\n')
    result = run_subprocess("build", camp, env={"QWENBUILD_CACHE_DIR": ""})
    assert result.code == 0, result.err
    objects = list((repo / ".qwenbuild" / "cache" / "objects").rglob("*.png"))
    assert len(objects) == 1


def test_python_dash_m_and_help() -> None:
    result = run_subprocess("--help")
    assert result.code == 0
    assert "build" in result.out and "plan" in result.out
    assert run_subprocess("build").code == 2


def test_demo_project_builds_offline_and_is_stable(tmp_path: Path) -> None:
    """The README's demo, in a copy of the repository, as a subprocess."""
    shutil.copytree(REPO / "qwenbuild" / "templates", tmp_path / "qwenbuild" / "templates")
    (tmp_path / ".git").mkdir()  # a copy of the repository: templates stay inside it
    shutil.copytree(REPO / "projects" / "aurelia-transit", tmp_path / "projects/aurelia-transit",
                    ignore=shutil.ignore_patterns("out"))
    camp = tmp_path / "projects/aurelia-transit/campaign.toml"
    first = run_subprocess("build", camp, "--json")
    assert first.code == 0, first.err
    report = json.loads(first.out)
    # Two providers of one kind and model make the same images (equal keys): each key is
    # generated once, and the job that finds it being made waits and restores it.
    keys = {j["key"] for j in report["jobs"]}
    assert report["generated"] == len(keys) >= 10
    assert report["generated"] + report["cached"] == len(report["jobs"])
    out = camp.parent / "out"
    snapshot = tree_snapshot(out)
    second = json.loads(run_subprocess("build", camp, "--json").out)
    assert second["generated"] == 0 and second["up_to_date"] == len(report["jobs"])
    assert tree_snapshot(out) == snapshot


def test_a_broken_manifest_is_a_clear_error(project: Path, run) -> None:
    assert run("build", project).code == 0
    manifest = project.parent / "out" / "manifest.json"
    for text in ('{"outputs": {"1x1/small/hero-v1.png": "oops"}}', "[1, 2", '{"nope": 1}'):
        manifest.write_text(text)
        result = run("build", project)
        assert result.code == 2, (text, result.err)
        assert f"{manifest}: not a qwenbuild manifest" in result.err
        assert "Traceback" not in result.err
        assert manifest.read_text() == text  # left for the user to look at


def test_a_build_that_waited_for_its_lock_sees_what_the_other_build_wrote(
        project: Path, run, monkeypatch) -> None:
    """A build decides what to do before it locks the output folder (so a refused build
    writes nothing, not even a lock): when another build changed the manifest in between,
    it decides again under the lock."""
    from qwenbuild import noop
    from qwenbuild.store.locks import OutputLock

    assert run("build", project).code == 0
    out = project.parent / "out"
    enter = OutputLock.__enter__
    # The full build, not the no-op fast path (which never takes the lock).
    monkeypatch.setattr(noop, "check", lambda campaign: None)

    def another_build_first(self: OutputLock) -> OutputLock:
        # What `clean` or another build could have done meanwhile: the output and its
        # entry are gone.
        manifest = json.loads((out / "manifest.json").read_text())
        del manifest["outputs"]["9x16/small/story.png"]
        (out / "manifest.json").write_text(json.dumps(manifest))
        (out / "9x16/small/story.png").unlink()
        monkeypatch.setattr(OutputLock, "__enter__", enter)
        return enter(self)

    monkeypatch.setattr(OutputLock, "__enter__", another_build_first)
    result = run("build", project, "--json")
    assert result.code == 0, result.err
    status = {j["output"]: j["status"] for j in result.json()["jobs"]}
    assert status["out/9x16/small/story.png"] == "cached"
    assert (out / "9x16/small/story.png").is_file()
