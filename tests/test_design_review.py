"""Design reviews that decide (issue 13): the review file, locks, candidates, picks, the
CLI (`approve`, `reject`, `pick`, `build --candidates/--unlock`, `plan --require-approval`)
and what survives a clone. The page in a browser: test_browser.py."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qwenbuild.errors import CampaignError
from qwenbuild.review.decisions import ReviewFile, editing, review_path

from .conftest import Result, run_subprocess, tree_snapshot
from .pagedata import read_page

Run = Callable[..., Result]
STORY = "9x16/small/story.png"
HERO = ("1x1/small/hero-v1.png", "1x1/small/hero-v2.png", "9x16/small/hero-v1.png",
        "9x16/small/hero-v2.png")


@pytest.fixture(autouse=True)
def _reviewer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWENBUILD_REVIEWER", "Ana Lima")


def _out(project: Path) -> Path:
    return project.parent / "out"


def _manifest(project: Path) -> dict[str, Any]:
    return json.loads((_out(project) / "manifest.json").read_text())


def _review(project: Path) -> dict[str, Any]:
    return tomllib.loads((project.parent / "review.toml").read_text())["outputs"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the file ---------------------------------------------------------------------------------


def test_the_review_file_is_sorted_stable_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "review.toml"
    at = dt.datetime(2025, 5, 2, 10, 14, 3, tzinfo=dt.UTC)
    sha_a, sha_b = "a" * 64, "b" * 64
    with editing(path) as review:
        review.decide("9x16/draft/story.png", "rejected", sha_b, "Ben", at)
        review.decide("1x1/draft/hero-v1.png", "approved", sha_a, "Ana Lima", at,
                      comment='Tighter kerning, "please"\nsecond line')
        review.comment("1x1/draft/hero-v1.png", sha_a, "Ben", "Agreed ✓", at)
    text = path.read_text()
    assert text.index('[outputs."1x1/draft/hero-v1.png"]') < text.index(
        '[outputs."9x16/draft/story.png"]')  # sorted by output
    assert 'text = "Tighter kerning, \\"please\\"\\nsecond line"' in text
    assert "at = 2025-05-02T10:14:03Z" in text
    data = tomllib.loads(text)  # any TOML reader reads it
    hero = data["outputs"]["1x1/draft/hero-v1.png"]
    assert hero["decision"] == "approved" and hero["sha256"] == sha_a
    assert [c["by"] for c in hero["comments"]] == ["Ana Lima", "Ben"]
    again = ReviewFile.load(path)
    assert again.dumps() == path.read_bytes()  # read and written: the same bytes
    assert again.save() is False
    assert again.status("1x1/draft/hero-v1.png", sha_a) == "approved"
    assert again.status("1x1/draft/hero-v1.png", sha_b) == "outdated"  # another image
    assert again.status("9x16/draft/story.png", sha_b) == "rejected"
    assert again.status("nothing.png", sha_a) == "unreviewed"
    locks = again.locks()
    assert locks.locked("1x1/draft/hero-v1.png", "hero", sha_a)
    assert not locks.locked("1x1/draft/hero-v1.png", "hero", sha_b)  # outdated: no lock
    assert not locks.locked("9x16/draft/story.png", "story", sha_b)  # rejected: none
    assert not again.locks(("he*",)).locked("1x1/draft/hero-v1.png", "hero", sha_a)


def test_a_bad_review_file_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "review.toml"
    path.write_text('format = 1\n\n[outputs."1x1/a/hero.png"]\ndecison = "approved"\n'
                    'sha256 = "abc"\n\n[outputs."1x1/a/b.png"]\ndecision = "aproved"\n'
                    'sha256 = "' + "c" * 64 + '"\n\n[outputs."../x.png"]\ndecision = '
                    '"approved"\n')
    with pytest.raises(CampaignError) as caught:
        ReviewFile.load(path)
    problems = caught.value.problems
    assert any(":3:" in p and "decison: unknown key (did you mean 'decision'?)" in p
               for p in problems), problems
    assert any(":3:" in p and "sha256: must be 64 lowercase hex digits" in p
               for p in problems)
    assert any(":7:" in p and "'aproved' is not a decision" in p and "did you mean" in p
               for p in problems)
    assert any(":11:" in p and "not an output path" in p for p in problems)
    path.write_text("format = [")
    with pytest.raises(CampaignError, match="TOML syntax error"):
        ReviewFile.load(path)


def test_a_bad_review_file_stops_a_build_before_anything_is_written(project: Path,
                                                                     run: Run) -> None:
    assert run("build", project).code == 0
    (project.parent / "review.toml").write_text('[outputs."9x16/small/story.png"]\n'
                                                'decision = "maybe"\n')
    project.write_text(project.read_text().replace("SECOND STORY", "CHANGED"))
    before = tree_snapshot(project.parent)
    result = run("build", project)
    assert result.code == 2
    assert "review.toml:1: outputs.\"9x16/small/story.png\".decision: 'maybe'" in result.err
    assert tree_snapshot(project.parent) == before
    assert run("plan", project).code == 2
    assert run("approve", _out(project) / STORY).code == 2
    assert run("review", project, "--port", "0").code == 2  # says so before serving
    assert tree_snapshot(project.parent) == before


def test_secrets_never_reach_the_review_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWARE_API_KEY", "rw-secret-0123456789")
    path = tmp_path / "review.toml"
    with editing(path) as review:
        review.comment("1x1/a/b.png", "a" * 64, "Ana", "the key rw-secret-0123456789 works")
    assert "rw-secret" not in path.read_text() and "[redacted]" in path.read_text()


def test_two_writers_at_once_lose_nothing(tmp_path: Path) -> None:
    """The page's server and a terminal decide at the same moment: both are kept."""
    path = tmp_path / "review.toml"
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                with editing(path) as review:
                    review.comment(f"1x1/p/a{n}.png", "a" * 64, f"w{n}", f"comment {i}")
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    outputs = tomllib.loads(path.read_text())["outputs"]
    assert {k: len(v["comments"]) for k, v in outputs.items()} == {
        f"1x1/p/a{n}.png": 20 for n in range(4)}
    # And across processes: the CLI and this process, through the lock on the folder.
    script = ("import sys; from pathlib import Path; "
              "from qwenbuild.review.decisions import editing\n"
              "for i in range(20):\n"
              "    with editing(Path(sys.argv[1])) as r: "
              "r.comment('1x1/p/x.png', 'a' * 64, 'p', f'c{i}')\n")
    procs = [subprocess.Popen([shutil.which("python3") or "python3", "-c", script, str(path)])
             for _ in range(2)]
    try:
        for i in range(20):
            with editing(path) as review:
                review.comment("1x1/p/y.png", "a" * 64, "me", f"c{i}")
    finally:
        codes = [p.wait(60) for p in procs]
    assert codes == [0, 0]
    outputs = tomllib.loads(path.read_text())["outputs"]
    assert len(outputs["1x1/p/x.png"]["comments"]) == 40
    assert len(outputs["1x1/p/y.png"]["comments"]) == 20


def test_review_path_sits_beside_the_campaign() -> None:
    assert review_path(Path("/r/projects/x/campaign.toml")) == Path(
        "/r/projects/x/review.toml")
    assert review_path(Path("/r/summer.toml")) == Path("/r/summer.review.toml")


# -- no review file: nothing changes ----------------------------------------------------------


def test_without_a_review_file_nothing_changes(project: Path, run: Run) -> None:
    assert run("build", project).code == 0
    manifest = (_out(project) / "manifest.json").read_bytes()
    assert b"candidates" not in manifest
    project.write_text(project.read_text().replace("SECOND STORY", "EDITED"))
    report = run("build", project, "--candidates", "--json").json()
    assert report["generated"] == 1 and report["locked"] == 0  # nothing is locked
    assert {j["review"] for j in report["jobs"]} == {"unreviewed"}
    assert not (project.parent / "review.toml").exists()
    assert not (_out(project) / "review" / "decisions.js").exists()
    assert b"candidates" not in (_out(project) / "manifest.json").read_bytes()


# -- locks and candidates ---------------------------------------------------------------------


def test_a_copy_edit_of_an_approved_asset_keeps_it_and_a_candidate_replaces_it_once_approved(
        project: Path, run: Run) -> None:
    out = _out(project)
    assert run("build", project).code == 0
    result = run("approve", out / STORY, "-m", "Ship it")
    assert result.code == 0, result.err
    assert "approved  out/9x16/small/story.png  (by Ana Lima)" in result.out
    approved = (out / STORY).read_bytes()
    decision = _review(project)[STORY]
    assert decision["decision"] == "approved" and decision["by"] == "Ana Lima"
    assert decision["sha256"] == _sha(out / STORY)
    assert decision["comments"][0]["text"] == "Ship it"

    project.write_text(project.read_text().replace("SECOND STORY", "SECOND STORY, NEW COPY"))
    result = run("build", project)
    assert result.code == 0
    assert (out / STORY).read_bytes() == approved  # byte-identical
    assert ("locked  out/9x16/small/story.png (inputs changed: prompt changed, copy or "
            "brand changed)") in result.out
    assert "build --candidates makes the new ones beside them" in result.out
    plan = run("plan", project)
    assert "locked  out/9x16/small/story.png  (inputs changed: prompt changed" in plan.out
    # plan --check: a locked output is what a build keeps, not something to do.
    assert run("plan", "--check", project).code == 0
    report = run("build", project, "--json").json()
    story = next(j for j in report["jobs"] if j["output"] == "out/" + STORY)
    assert story["status"] == "locked" and story["review"] == "approved"
    assert story["reason"] == "prompt changed, copy or brand changed"

    # --candidates: the new image beside the approved one.
    report = run("build", project, "--candidates", "--json").json()
    assert report["generated"] == 1 and report["locked"] == 1
    candidate = out / "9x16/small/story.candidate.png"
    new = candidate.read_bytes()
    assert new != approved and (out / STORY).read_bytes() == approved
    made = next(j for j in report["jobs"] if j["output"] == "out/9x16/small/story.candidate.png")
    assert made["candidate_of"] == "out/" + STORY and made["status"] == "generated"
    manifest = _manifest(project)
    assert manifest["candidates"]["9x16/small/story.candidate.png"]["sha256"] == _sha(candidate)
    assert run("build", project, "--candidates", "--json").json()["generated"] == 0
    page = read_page(out)
    assert page.outputs["9x16/small/story.candidate.png"]["candidate_of"] == STORY
    assert page.outputs[STORY]["status"] == "locked"
    # Each card shows the prompt its image was made from: the approved one the old copy.
    assert "NEW COPY" not in page.outputs[STORY]["prompt"]
    assert "NEW COPY" in page.outputs["9x16/small/story.candidate.png"]["prompt"]

    # Approving the candidate promotes it: it becomes the output, approved.
    result = run("approve", candidate)
    assert result.code == 0, result.err
    assert "promoted  out/9x16/small/story.candidate.png -> out/9x16/small/story.png" \
        in result.out
    assert (out / STORY).read_bytes() == new and not candidate.exists()
    decision = _review(project)[STORY]
    assert decision["decision"] == "approved" and decision["sha256"] == hashlib.sha256(
        new).hexdigest()
    assert [c["text"] for c in decision["comments"]] == ["Ship it"]  # the thread stays
    assert "candidates" not in _manifest(project)
    report = run("build", project, "--json").json()
    assert (report["generated"], report["cached"], report["locked"]) == (0, 0, 0)
    assert run("plan", "--check", project).code == 0


def test_unlock_and_reject_release_the_lock(project: Path, run: Run) -> None:
    out = _out(project)
    assert run("build", project).code == 0
    assert run("approve", out / STORY).code == 0
    project.write_text(project.read_text().replace("SECOND STORY", "EDITED"))
    assert run("build", project, "--json").json()["locked"] == 1
    assert run("build", project, "--candidates").code == 0
    bad = run("build", project, "--unlock", "nope")
    assert bad.code == 2 and "--unlock nope: matches no asset id" in bad.err
    report = run("build", project, "--unlock", "sto*", "--json").json()
    story = next(j for j in report["jobs"] if j["output"] == "out/" + STORY)
    assert story["status"] == "cached"  # the candidate's image, from the store: free
    assert story["reason"].startswith("unlocked, prompt changed")
    assert story["review"] == "outdated"  # the approval was for the image it replaced
    assert not (out / "9x16/small/story.candidate.png").exists()  # no longer a candidate
    assert "candidates" not in _manifest(project)

    # Rejecting releases a lock too.
    assert run("approve", out / STORY).code == 0
    project.write_text(project.read_text().replace('"EDITED"', '"EDITED AGAIN"'))
    assert run("build", project, "--json").json()["locked"] == 1
    assert run("reject", out / STORY).code == 0
    assert _review(project)[STORY]["decision"] == "rejected"
    assert run("build", project, "--json").json()["generated"] == 1


def test_a_locked_output_missing_on_disk_comes_back_byte_identical(project: Path,
                                                                   run: Run) -> None:
    out = _out(project)
    assert run("build", project).code == 0
    assert run("approve", out / STORY).code == 0
    approved = (out / STORY).read_bytes()
    (out / STORY).unlink()
    report = run("build", project, "--json").json()
    assert report["cached"] == 1 and (out / STORY).read_bytes() == approved
    assert _review(project)[STORY]["sha256"] == _sha(out / STORY)


def test_regenerate_does_not_replace_an_approved_image(project: Path, run: Run) -> None:
    out = _out(project)
    assert run("build", project).code == 0
    assert run("approve", out / STORY).code == 0
    approved = (out / STORY).read_bytes()
    result = run("build", project, "--regenerate")
    assert result.code == 0 and (out / STORY).read_bytes() == approved
    assert "locked  out/9x16/small/story.png (regenerate asked" in result.out


def test_pick_makes_the_exports_from_the_pick_alone(project: Path, run: Run) -> None:
    out = _out(project)
    project.write_text(project.read_text().replace(
        '[[assets]]\nid = "hero"', '[[exports]]\nname = "thumb"\naspect = "1:1"\nwidth = 32\n'
        'height = 32\nformat = "png"\n\n[[assets]]\nid = "hero"'))
    assert run("build", project).code == 0
    assert sorted(_manifest(project)["exports"]) == [
        "exports/thumb/small/hero-v1.png", "exports/thumb/small/hero-v2.png"]
    result = run("pick", out / "1x1/small/hero-v2.png")
    assert result.code == 0, result.err
    assert _review(project)["1x1/small/hero-v2.png"]["decision"] == "picked"
    plan = run("plan", "--json", project).json()
    assert [(e["output"], e["status"]) for e in plan["exports"]] == [
        ("out/exports/thumb/small/hero.png", "render")]
    assert plan["stale_exports"] == ["exports/thumb/small/hero-v1.png",
                                     "exports/thumb/small/hero-v2.png"]
    assert run("build", project).code == 0
    exports = _manifest(project)["exports"]
    assert exports["exports/thumb/small/hero.png"]["source"] == "1x1/small/hero-v2.png"
    assert exports["exports/thumb/small/hero-v1.png"]["stale"] is True
    removed = run("clean", project, "--json").json()["removed"]
    assert sorted(r["path"] for r in removed) == ["out/exports/thumb/small/hero-v1.png",
                                                  "out/exports/thumb/small/hero-v2.png"]
    assert run("plan", "--check", project).code == 0
    # The pick moves to v1: the same rendition path, made from v1.
    assert run("pick", out / "1x1/small/hero-v1.png").code == 0
    assert "decision" not in _review(project).get("1x1/small/hero-v2.png", {})
    assert run("build", project).code == 0
    exports = _manifest(project)["exports"]
    assert set(exports) == {"exports/thumb/small/hero.png"}
    assert exports["exports/thumb/small/hero.png"]["source"] == "1x1/small/hero-v1.png"
    # An export is approved, never picked.
    result = run("pick", out / "exports/thumb/small/hero.png")
    assert result.code == 2 and "approved or rejected, not picked" in result.err
    assert run("approve", out / "exports/thumb/small/hero.png").code == 0


# -- plan --check --require-approval ----------------------------------------------------------


def test_require_approval_fails_until_everything_that_ships_is_approved(project: Path,
                                                                       run: Run) -> None:
    out = _out(project)
    project.write_text(project.read_text().replace(
        '[[assets]]\nid = "hero"', '[[exports]]\nname = "thumb"\naspect = "1:1"\nwidth = 32\n'
        'height = 32\nformat = "png"\n\n[[assets]]\nid = "hero"'))
    assert run("build", project).code == 0
    result = run("plan", "--check", "--require-approval", project)
    assert result.code == 1
    assert "unapproved  out/9x16/small/story.png  (not reviewed)" in result.out
    assert "7 outputs or exports that ship are not approved" in result.err
    assert run("plan", "--check", project).code == 0  # without the option: as before

    assert run("approve", out / STORY, *(out / rel for rel in HERO[2:])).code == 0
    assert run("pick", out / "1x1/small/hero-v1.png").code == 0
    result = run("plan", "--check", "--require-approval", "--json", project)
    assert result.code == 1
    unapproved = result.json()["unapproved"]
    # hero-v2 1:1 is not the pick: it does not ship; the pick's rendition does.
    assert unapproved == [{"output": "out/exports/thumb/small/hero.png",
                           "why": "not built yet"}]
    assert run("build", project).code == 0
    assert run("clean", project).code == 0  # the renditions of the variants not picked
    result = run("plan", "--check", "--require-approval", project)
    assert result.code == 1 and "out/exports/thumb/small/hero.png  (not reviewed)" in result.out
    assert run("approve", out / "exports/thumb/small/hero.png").code == 0
    result = run("plan", "--check", "--require-approval", project)
    assert result.code == 0, result.out + result.err
    assert "and everything that ships approved" in result.out

    # An approval on an image that has changed since does not count: outdated.
    project.write_text(project.read_text().replace("SECOND STORY", "EDITED"))
    assert run("build", project, "--unlock", "story").code == 0
    result = run("plan", "--check", "--require-approval", project)
    assert result.code == 1
    assert ("out/9x16/small/story.png  (outdated: approved by Ana Lima on an earlier image)"
            in result.out)
    plan = run("plan", "--json", project).json()
    assert {j["output"]: j["review"] for j in plan["jobs"]}["out/" + STORY] == "outdated"


def test_rejected_outputs_do_not_ship(project: Path, run: Run) -> None:
    out = _out(project)
    assert run("build", project).code == 0
    assert run("approve", *(out / rel for rel in HERO)).code == 0
    assert run("reject", out / STORY, "--by", "Ben").code == 0
    result = run("plan", "--check", "--require-approval", project)
    assert result.code == 1 and "out/9x16/small/story.png  (rejected by Ben)" in result.out


# -- the CLI's inputs ----------------------------------------------------------------------


def test_decisions_are_all_or_nothing_and_say_what_is_wrong(project: Path, run: Run) -> None:
    out = _out(project)
    assert run("build", project).code == 0
    result = run("approve", out / STORY, out / "1x1/small/nope.png")
    assert result.code == 2 and "1x1/small/nope.png: not an output" in result.err
    assert not (project.parent / "review.toml").exists()  # the good one was not written
    (out / STORY).write_bytes(b"edited by hand")
    result = run("approve", out / STORY)
    assert result.code == 2 and "differs from the manifest" in result.err
    result = run("approve", project.parent / "campaign.toml")
    assert result.code == 2 and "not inside an output folder" in result.err
    assert run("approve", out / "1x1/small/hero-v1.png", "-m", " ").code == 2
    # With --campaign, outputs may be named relative to the output folder.
    result = run("pick", "1x1/small/hero-v1.png", "--campaign", project, "--json")
    assert result.code == 0, result.err
    assert result.json()["decisions"][0]["review"] == "picked"


def test_review_status_survives_a_clone_and_a_rebuild_on_another_machine(
        project: Path, tmp_path: Path) -> None:
    """Everything a review decides is in committed files: a clone with an empty cache
    sees the same statuses, keeps the same locks and passes the same check."""
    root = project.parent

    def git(*args: str, cwd: Path = root) -> None:
        subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
                       cwd=cwd, check=True, capture_output=True)

    env = {"QWENBUILD_CACHE_DIR": str(tmp_path / "cache-a")}
    assert run_subprocess("build", "campaign.toml", cwd=root, env=env).code == 0
    out = root / "out"
    assert run_subprocess("approve", *(out / r for r in (STORY, *HERO)), cwd=root,
                          env=env).code == 0
    git("init", "-q")
    (root / ".gitignore").write_text(".qwenbuild/\nout/index.html\n")
    git("add", "-A")
    git("commit", "-qm", "approved")

    clone = tmp_path / "elsewhere"
    git("clone", "-q", str(root), str(clone), cwd=tmp_path)
    other = {"QWENBUILD_CACHE_DIR": str(tmp_path / "cache-b")}  # an empty cache
    campaign = clone / "campaign.toml"
    plan = run_subprocess("plan", "--json", campaign, env=other).json()
    assert {j["review"] for j in plan["jobs"]} == {"approved"}
    assert run_subprocess("plan", "--check", "--require-approval", campaign,
                          env=other).code == 0
    campaign.write_text(campaign.read_text().replace("SECOND STORY", "EDITED ELSEWHERE"))
    report = run_subprocess("build", "--json", campaign, env=other).json()
    assert (report["locked"], report["generated"]) == (1, 0)
    assert (clone / "out" / STORY).read_bytes() == (out / STORY).read_bytes()
    assert {j["review"] for j in report["jobs"]} == {"approved"}
    page = read_page(clone / "out")
    assert page.decisions is not None and page.decisions[STORY]["decision"] == "approved"


def test_a_candidate_goes_when_its_asset_leaves_the_campaign(project: Path, run: Run) -> None:
    out = _out(project)
    assert run("build", project).code == 0
    assert run("approve", out / STORY).code == 0
    project.write_text(project.read_text().replace("SECOND STORY", "EDITED"))
    assert run("build", project, "--candidates").code == 0
    candidate = out / "9x16/small/story.candidate.png"
    assert candidate.is_file()
    text = project.read_text()
    project.write_text(text[:text.index('[[assets]]\nid = "story"')])
    assert run("build", project).code == 0
    assert not candidate.exists() and "candidates" not in _manifest(project)
    assert (out / STORY).is_file()  # the output itself is stale: clean's to remove
    removed = run("clean", project, "--json").json()["removed"]
    assert [r["path"] for r in removed] == ["out/" + STORY]
