"""Faults of the machine, not of the input: a full disk, a read-only output or cache folder,
a folder where an output must be, an output folder that cannot exist, a damaged manifest.

Each must name the path and the cause, keep what was finished, write the manifest for what
succeeded where it can, and still print the `--json` report; never an internal error.

The faults are real, made at the file-system boundary: a small tmpfs for a full disk and a
read-only bind mount when the tests run as root with mount rights (as on CI); otherwise
`ulimit -f` (the kernel refuses to grow a file past the limit) and permission bits (which
do not bind root, hence the mounts). `/proc` refuses new folders to everyone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import Result, build_file_tree, tree_snapshot

ASSETS = 8

CAMPAIGN = """\
[campaign]
name = "env"
{out}
[brand]
name = "Acme"
palette = ["teal", "cream"]

[providers.small]
kind = "preview"
scale = 0.3

[providers.tiny]
kind = "preview"
scale = 0.1

[defaults]
template = "poster.j2"
aspects = ["1:1"]
providers = ["small"]
"""

TEMPLATE = 'A poster: "{{ copy.headline }}".\n'


def _campaign(root: Path, out: str = "", assets: int = ASSETS, mixed: bool = False) -> Path:
    """A campaign of `assets` preview images of about 10 KB (`mixed`: every other one of
    about 3 KB, at provider `tiny`)."""
    body = CAMPAIGN.format(out=f'out = "{out}"' if out else "") + "".join(
        f'\n[[assets]]\nid = "a{i}"\n'
        + ('providers = ["tiny"]\n' if mixed and i % 2 else "")
        + f'[assets.copy]\nheadline = "HEADLINE {i}"\n'
        f'subtitle = "Subtitle number {i} of the test"\n' for i in range(assets))
    build_file_tree(root, {"templates/poster.j2": TEMPLATE, "campaign.toml": body})
    return root / "campaign.toml"


def _build(campaign: Path, *args: str, file_limit: int | None = None) -> Result:
    """`qwenbuild build` in a child process (with `ulimit -f` in bytes, when given)."""

    def limit() -> None:
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    proc = subprocess.run([sys.executable, "-m", "qwenbuild", "build", str(campaign), *args],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy(),
                          preexec_fn=limit)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@functools.cache
def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = tempfile.mkdtemp()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe],
                              capture_output=True)
        if done.returncode != 0:
            return False
        subprocess.run(["umount", probe], check=True)
        return True
    finally:
        os.rmdir(probe)


@contextlib.contextmanager
def _mounted(*args: str | Path) -> Iterator[None]:
    target = Path(args[-1])
    subprocess.run(["mount", *map(str, args)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=True, capture_output=True)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[str]:
    """`folder` read-only for this process and its children; yields the cause they meet."""
    folder.mkdir(parents=True, exist_ok=True)
    if _can_mount():
        with _mounted("--bind", folder, folder):
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True,
                           capture_output=True)
            yield "Read-only file system"
    elif os.geteuid() != 0:
        folders = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
        for p in folders:
            p.chmod(0o555)
        try:
            yield "Permission denied"
        finally:
            for p in folders:
                p.chmod(0o755)
    else:
        pytest.skip("running as root without mount rights: no way to make a folder "
                    "read-only for this process")


def _json(result: Result) -> dict:
    assert result.out.strip(), result.err
    return json.loads(result.out)


def _no_internal_error(result: Result) -> None:
    assert "internal error" not in result.err and "Traceback" not in result.err, result.err


# -- found before anything is requested ------------------------------------------------------


def test_an_output_folder_that_cannot_exist_is_refused_before_any_request(
        tmp_path: Path, cache_dir: Path, run) -> None:
    campaign = _campaign(tmp_path, out="/proc/qb-out")
    result = run("build", campaign)
    assert result.code == 2
    _no_internal_error(result)
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"ERROR: {campaign}: cannot write the output folder /proc/qb-out: ")
    assert "Nothing was requested" in line
    assert tree_snapshot(cache_dir) == {}  # nothing generated, nothing stored, no lock
    as_json = run("build", campaign, "--json")
    assert as_json.code == 2
    error = as_json.json()["error"]
    assert error["kind"] == "FileSystemError" and "/proc/qb-out" in error["message"]


def test_a_file_in_place_of_the_output_folder_is_refused(tmp_path: Path, run) -> None:
    campaign = _campaign(tmp_path, out="build/out")
    (tmp_path / "build").write_text("a file, not a folder")
    result = run("build", campaign)
    assert result.code == 2
    _no_internal_error(result)
    assert "cannot write the output folder build/out: " in result.err
    assert "is a file, not a folder" in result.err


def test_a_read_only_output_folder_is_refused_before_any_request(tmp_path: Path,
                                                                 cache_dir: Path,
                                                                 run) -> None:
    campaign = _campaign(tmp_path, assets=2)
    assert run("build", campaign).code == 0
    out = tmp_path / "out"
    with read_only(out):
        # Up to date: nothing to write there, so a read-only checkout builds fine.
        noop = run("build", campaign)
        assert noop.code == 0, noop.err
    campaign.write_text(campaign.read_text().replace("HEADLINE 1", "HEADLINE ONE"))
    before = tree_snapshot(out), tree_snapshot(cache_dir / "objects")
    with read_only(out) as cause:
        result = run("build", campaign, "--json")
    assert result.code == 2
    _no_internal_error(result)
    assert f"cannot write the output folder out: {cause}" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "out" in result.json()["error"]["message"]
    assert (tree_snapshot(out), tree_snapshot(cache_dir / "objects")) == before


def test_a_read_only_cache_folder_is_refused_before_any_request(tmp_path: Path,
                                                                cache_dir: Path,
                                                                run) -> None:
    campaign = _campaign(tmp_path, assets=2)
    with read_only(cache_dir) as cause:
        result = run("build", campaign, "--json")
    assert result.code == 2
    _no_internal_error(result)
    assert f"cannot write the cache folder {cache_dir}: {cause}" in result.err
    assert "QWENBUILD_CACHE_DIR" in result.err
    assert not (tmp_path / "out" / "1x1").exists()


# -- found while building: the job fails, the rest is kept ----------------------------------


def test_a_folder_in_place_of_an_output_fails_that_job_only(tmp_path: Path, run) -> None:
    campaign = _campaign(tmp_path, assets=3)
    out = tmp_path / "out"
    (out / "1x1" / "small" / "a1.png").mkdir(parents=True)
    result = run("build", campaign, "--json")
    assert result.code == 1
    _no_internal_error(result)
    jobs = {j["asset"]: j for j in result.json()["jobs"]}
    assert jobs["a1"]["status"] == "failed"
    assert jobs["a1"]["error"] == "cannot write out/1x1/small/a1.png: a folder is in its place"
    assert {jobs["a0"]["status"], jobs["a2"]["status"]} == {"generated"}
    manifest = json.loads((out / "manifest.json").read_text())["outputs"]
    assert set(manifest) == {"1x1/small/a0.png", "1x1/small/a2.png"}  # what succeeded
    assert "failed" in result.err and "a folder is in its place" in result.err


def test_a_file_in_place_of_an_output_folder_fails_those_jobs_only(tmp_path: Path,
                                                                  run) -> None:
    campaign = _campaign(tmp_path, assets=2)
    campaign.write_text(campaign.read_text().replace('aspects = ["1:1"]',
                                                     'aspects = ["1:1", "9:16"]'))
    out = tmp_path / "out"
    out.mkdir()
    (out / "9x16").write_text("in the way")
    result = run("build", campaign, "--json")
    assert result.code == 1
    _no_internal_error(result)
    jobs = result.json()["jobs"]
    failed = [j for j in jobs if j["status"] == "failed"]
    assert {j["aspect"] for j in failed} == {"9:16"} and len(failed) == 2
    for job in failed:
        assert job["error"] == (f"cannot write {job['output']}: {out / '9x16'} is a file, "
                                "not a folder")
    assert len(json.loads((out / "manifest.json").read_text())["outputs"]) == 2


def test_a_page_that_cannot_be_written_is_said_and_the_outputs_are_kept(tmp_path: Path,
                                                                       run) -> None:
    campaign = _campaign(tmp_path, assets=2)
    (tmp_path / "out" / "index.html").mkdir(parents=True)
    result = run("build", campaign, "--json")
    assert result.code == 1
    _no_internal_error(result)
    report = result.json()
    assert report["generated"] == 2 and report["failed"] == 0
    assert report["problems"] == ["cannot write out/index.html: a folder is in its place"]
    assert "ERROR: cannot write out/index.html: a folder is in its place" in result.err
    assert len(json.loads((tmp_path / "out" / "manifest.json").read_text())["outputs"]) == 2


DISKS = ["tmpfs", "ulimit"]


@pytest.mark.parametrize("disk", DISKS)
def test_a_full_disk_fails_the_jobs_it_stops_and_keeps_the_rest(tmp_path: Path, run,
                                                                disk: str) -> None:
    """A file system that fills up mid-build: the jobs whose files no longer fit fail,
    naming the file and the cause; what was written stays; the report is printed; once
    there is room again the rerun completes without asking for anything finished."""
    campaign = _campaign(tmp_path, mixed=True)
    out = tmp_path / "out"
    out.mkdir()
    if disk == "tmpfs":
        if not _can_mount():
            pytest.skip("needs root with mount rights (the ulimit case runs everywhere)")
        stack = contextlib.ExitStack()
        stack.enter_context(_mounted("-t", "tmpfs", "-o", "size=48k", "tmpfs", out))
        cause, limit = "No space left on device", None
    else:
        stack = contextlib.ExitStack()
        # Files up to 6,000 bytes fit (the manifest, the tiny outputs); bigger ones do not.
        cause, limit = "File too large", 6000
    with stack:
        result = _build(campaign, "--json", file_limit=limit)
        _no_internal_error(result)
        assert result.code == 1
        report = _json(result)
        failed = [j for j in report["jobs"] if j["status"] == "failed"]
        built = [j for j in report["jobs"] if j["status"] == "generated"]
        assert failed and built and len(failed) + len(built) == ASSETS
        for job in failed:
            assert job["error"].startswith(f"cannot write {job['output']}: {cause}"), job
        for job in built:
            assert (tmp_path / job["output"]).stat().st_size > 0
        for problem in report["problems"]:
            assert problem.startswith("cannot write ") and cause in problem
        if disk == "tmpfs":
            subprocess.run(["mount", "-o", "remount,size=4m", str(out)], check=True)
        again = _build(campaign, "--json")
        assert again.code == 0, again.err
        rerun = {j["output"]: j["status"] for j in _json(again)["jobs"]}
        # Nothing finished is asked for again; with the cache on another disk, what failed
        # only at its output comes from the cache.
        assert all(rerun[j["output"]] != "generated" for j in built)
        if disk == "tmpfs":
            assert set(rerun.values()) <= {"cached", "up_to_date"}
        manifest = json.loads((out / "manifest.json").read_text())["outputs"]
        assert len(manifest) == ASSETS


# -- a damaged manifest ----------------------------------------------------------------------


MANIFESTS: dict[str, Callable[[], str]] = {
    "an entry of the wrong type": lambda: json.dumps(
        {"campaign": "env", "format": 1, "outputs": {"1x1/small/a0.png": {"key": 5}}}),
    "a list for outputs": lambda: json.dumps({"campaign": "env", "format": 1, "outputs": []}),
    "an entry that is a number": lambda: json.dumps(
        {"campaign": "env", "format": 1, "outputs": {"1x1/small/a0.png": 5}}),
    "a size that is a string": lambda: json.dumps(
        {"campaign": "env", "format": 1, "outputs": {"1x1/small/a0.png": {"bytes": "many"}}}),
    "exports of the wrong type": lambda: json.dumps(
        {"campaign": "env", "format": 1, "outputs": {}, "exports": {"e": {"settings": 1}}}),
    "nesting 100,000 deep": lambda: (
        '{"campaign": "env", "format": 1, "outputs": {"x": {"text_check": '
        + "[" * 100_000 + "]" * 100_000 + "}}}"),
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_a_damaged_manifest_is_a_clear_error(tmp_path: Path, cache_dir: Path, run,
                                             name: str) -> None:
    campaign = _campaign(tmp_path, assets=1)
    manifest = tmp_path / "out" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(MANIFESTS[name]())
    for command in ("build", "plan", "clean"):
        result = run(command, campaign, "--json")
        assert result.code == 2, (command, result.err)
        _no_internal_error(result)
        message = result.json()["error"]["message"]
        assert message.startswith(f"{manifest}: not a qwenbuild manifest (")
        assert "move it away to rebuild it" in message
    assert not (tmp_path / "out" / "1x1").exists()


def test_a_folder_in_place_of_the_manifest_is_a_clear_error(tmp_path: Path, run) -> None:
    campaign = _campaign(tmp_path, assets=1)
    (tmp_path / "out" / "manifest.json").mkdir(parents=True)
    result = run("build", campaign, "--json")
    assert result.code == 2
    _no_internal_error(result)
    assert result.json()["error"]["message"] == (
        f"cannot read {tmp_path / 'out' / 'manifest.json'}: Is a directory")


def test_a_full_cache_still_keeps_every_image_in_its_output(tmp_path: Path, run,
                                                           cache_dir: Path) -> None:
    """The cache fills up mid-build: each image received is still written to its output
    (it was paid for), the build says what the cache could not keep, and the next build
    finds those outputs up to date instead of asking again."""
    if not _can_mount():
        pytest.skip("needs root with mount rights")
    campaign = _campaign(tmp_path)
    with _mounted("-t", "tmpfs", "-o", "size=40k", "tmpfs", cache_dir):
        result = run("build", campaign, "--json")
        _no_internal_error(result)
        assert result.code == 1
        report = result.json()
        assert report["generated"] == ASSETS and report["failed"] == 0
        assert report["problems"]
        for problem in report["problems"]:
            assert problem.startswith(f"cannot write {cache_dir}/")
            assert "No space left on device" in problem
        assert any("is not in the cache (its output keeps it)" in p
                   for p in report["problems"])
        again = run("build", campaign, "--json")
        assert again.json()["up_to_date"] == ASSETS
