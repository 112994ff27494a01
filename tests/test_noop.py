"""The no-op fast path (qwenbuild/noop.py): it answers only when nothing changed, prints
what the full build prints, and never reports "up to date" for an output that is not."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenbuild import noop
from qwenbuild.cli import main

from .conftest import build_file_tree, run_subprocess

TEMPLATE = 'A poster for {{ brand.name }}: "{{ copy.headline }}". {% include "_part.j2" %}'

CAMPAIGN = """\
[campaign]
name = "noop"

[brand]
name = "Acme"

[defaults]
template = "poster.j2"
aspects = ["1:1"]
providers = ["small"]

[providers.small]
kind = "preview"
scale = 0.1

[[assets]]
id = "hero"
references = ["ref.png"]
[assets.copy]
headline = "HELLO"

[[assets]]
id = "story"
aspects = ["9:16", "1:1"]
[assets.copy]
headline = "STORY"

[[exports]]
name = "thumb"
aspect = "1:1"
width = 32
height = 32
"""


def _png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, "PNG")
    return buf.getvalue()


def project(root: Path) -> Path:
    build_file_tree(root, {
        ".git/HEAD": "ref: refs/heads/main\n",
        "templates/poster.j2": TEMPLATE,
        "templates/_part.j2": "Bold.",
        "templates/unused.j2": "not used",
        "campaign.toml": CAMPAIGN,
        "ref.png": _png((10, 20, 30)),
    })
    return root / "campaign.toml"


def quiet(*args: str | Path) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main([str(a) for a in args])


def test_a_plain_build_is_answered_by_the_fast_path_with_the_same_output(
        tmp_path: Path) -> None:
    camp = project(tmp_path)
    assert quiet("build", camp) == 0
    assert noop.check(str(camp)) is not None
    fast = run_subprocess("build", camp)
    noop.forget(camp)  # the full path, for comparison
    full = run_subprocess("build", camp)
    assert fast.code == full.code == 0
    strip = [line.rsplit(";", 1)[0] for line in fast.out.splitlines()]
    assert strip == [line.rsplit(";", 1)[0] for line in full.out.splitlines()]
    assert "3 jobs: 0 generated, 0 from cache, 3 up to date" in fast.out


def test_json_of_the_fast_path_is_the_full_paths(tmp_path: Path) -> None:
    camp = project(tmp_path)
    assert quiet("build", camp) == 0
    fast_text = run_subprocess("build", camp, "--json").out
    noop.forget(camp)
    full_text = run_subprocess("build", camp, "--json").out
    fast, full = json.loads(fast_text), json.loads(full_text)
    assert len(fast["jobs"]) == 3
    fast.pop("seconds"), full.pop("seconds")
    assert fast == full
    # Byte for byte, but for the duration.
    seconds = re.compile(r'"seconds": [0-9.]+,')
    assert seconds.sub("", fast_text) == seconds.sub("", full_text)


def test_only_a_plain_build_of_everything_records(tmp_path: Path) -> None:
    camp = project(tmp_path)
    assert quiet("build", camp, "--only", "hero") == 0
    assert noop.check(str(camp)) is None  # not everything was built
    assert quiet("build", camp) == 0
    assert noop.check(str(camp)) is not None
    assert quiet("build", camp, "--regenerate", "--only", "story") == 0
    assert noop.check(str(camp)) is None  # a forced build forgets the record
    assert noop.fast_build(["build", str(camp), "--only", "hero"]) is None  # other options


def test_a_sneaky_edit_that_keeps_size_and_mtime_is_seen(tmp_path: Path) -> None:
    camp = project(tmp_path)
    assert quiet("build", camp) == 0
    out = tmp_path / "out" / "1x1" / "small" / "hero.png"
    before = os.stat(out)
    data = bytearray(out.read_bytes())
    data[-20] ^= 0xFF
    out.write_bytes(bytes(data))
    os.utime(out, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(out).st_size == before.st_size
    assert noop.check(str(camp)) is None  # the ctime moved
    assert quiet("plan", "--check", camp) == 1


# -- never "up to date" when it is not ----------------------------------------------------


def _edit(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


MUTATIONS: dict[str, Callable[[Path, int], None]] = {
    "campaign headline": lambda r, n: (r / "campaign.toml").write_text(
        CAMPAIGN.replace('"HELLO"', f'"HELLO {n}"')),
    "campaign comment": lambda r, n: _edit(r / "campaign.toml", f"\n# comment {n}\n"),
    "campaign same bytes": lambda r, n: (r / "campaign.toml").write_text(CAMPAIGN),
    "template edit": lambda r, n: _edit(r / "templates/poster.j2", f" {n}"),
    "included template edit": lambda r, n: _edit(r / "templates/_part.j2", f" {n}"),
    "template touched": lambda r, n: os.utime(r / "templates/poster.j2",
                                              ns=(n * 10**9, n * 10**9)),
    "template added": lambda r, n: (r / f"templates/new{n}.j2").write_text("x"),
    "template folder added": lambda r, n: build_file_tree(r, {f"templates/sub{n}/a.j2": "y"}),
    "unused template removed": lambda r, n: (r / "templates/unused.j2").unlink(),
    "reference replaced": lambda r, n: (r / "ref.png").write_bytes(_png((n % 255, 0, 0))),
    "output removed": lambda r, n: (r / "out/9x16/small/story.png").unlink(),
    "output changed": lambda r, n: (r / "out/1x1/small/story.png").write_bytes(
        _png((0, n % 255, 0))),
    "output appended": lambda r, n: _append(r / "out/1x1/small/hero.png"),
    "output touched": lambda r, n: os.utime(r / "out/1x1/small/hero.png",
                                            ns=(n * 10**9, n * 10**9)),
    "outputs swapped": lambda r, n: _swap(r / "out/1x1/small/hero.png",
                                          r / "out/1x1/small/story.png"),
    "output copied over in place": lambda r, n: _copy_in_place(
        r / "out/1x1/small/story.png", r / "out/1x1/small/hero.png"),
    "output replaced by a symlink": lambda r, n: _symlink_over(
        r / "out/1x1/small/hero.png", r / "ref.png"),
    "rendition changed": lambda r, n: (r / "out/exports/thumb/small/hero.png").write_bytes(
        _png((n % 255, n % 255, 0))),
    "exports folder removed": lambda r, n: shutil.rmtree(r / "out/exports"),
    "output folder added": lambda r, n: (r / "out/2x1").mkdir(exist_ok=True),
    "reference touched": lambda r, n: os.utime(r / "ref.png", ns=(n * 10**9, n * 10**9)),
    "reference removed": lambda r, n: (r / "ref.png").unlink(),
    "rendition removed": lambda r, n: (r / "out/exports/thumb/small/hero.png").unlink(),
    "manifest edited": lambda r, n: _edit(r / "out/manifest.json", " "),
    "manifest removed": lambda r, n: (r / "out/manifest.json").unlink(),
    "page removed": lambda r, n: (r / "out/index.html").unlink(),
    "page data removed": lambda r, n: (r / "out/review/index.js").unlink(),
    "page data edited": lambda r, n: _edit(r / "out/review/index.js", f"// {n}\n"),
    "stray file in out": lambda r, n: (r / "out/1x1/notes.txt").write_text("x"),
    "review file added": lambda r, n: (r / "review.toml").write_text("# decisions\n"),
    "team cache configured": lambda r, n: (r / "qwenbuild.toml").write_text("[cache]\n"),
    "cache moved": lambda r, n: os.environ.__setitem__(
        "QWENBUILD_CACHE_DIR", str(r / f"other-cache-{n}")),
}


def _swap(a: Path, b: Path) -> None:
    tmp = a.with_suffix(".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def _copy_in_place(source: Path, target: Path) -> None:
    """What `cp` does: the target's inode kept, its bytes replaced."""
    with open(target, "r+b") as fh:
        fh.truncate(0)
        fh.write(source.read_bytes())


def _symlink_over(target: Path, source: Path) -> None:
    target.unlink()
    target.symlink_to(source)


def _append(path: Path) -> None:
    with open(path, "ab") as fh:
        fh.write(b"\0")


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(kinds=st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3),
       n=st.integers(1, 10**6))
def test_random_edits_of_every_input_are_never_missed(
        tmp_path_factory: pytest.TempPathFactory, kinds: list[str], n: int) -> None:
    root = tmp_path_factory.mktemp("noop")
    cache = os.environ["QWENBUILD_CACHE_DIR"]
    try:
        camp = project(root)
        assert quiet("build", camp) == 0
        assert noop.check(str(camp)) is not None  # the record answers before any edit
        for kind in kinds:
            with contextlib.suppress(FileNotFoundError):
                MUTATIONS[kind](root, n)
        if noop.check(str(camp)) is not None:
            # The fast path would answer "nothing to do": the full path must agree.
            assert quiet("plan", "--check", camp) == 0, kinds
    finally:
        os.environ["QWENBUILD_CACHE_DIR"] = cache
        shutil.rmtree(root, ignore_errors=True)


def test_the_oracle_can_fail(tmp_path: Path) -> None:
    """The property above compares with `plan --check`: it must see a real edit."""
    camp = project(tmp_path)
    assert quiet("build", camp) == 0
    MUTATIONS["output removed"](tmp_path, 1)
    assert quiet("plan", "--check", camp) == 1
    assert noop.check(str(camp)) is None


# -- what else the record holds -----------------------------------------------------------


def _package_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of qwenbuild's own files standing for the package (noop.PACKAGE)."""
    package = tmp_path / "package"
    shutil.copytree(noop.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "__pycache__").mkdir()
    monkeypatch.setattr(noop, "PACKAGE", str(package))
    return package


@pytest.mark.parametrize("edit", ["edited", "added", "removed", "touched", "pycache"])
def test_a_change_of_qwenbuild_itself_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              edit: str) -> None:
    package = _package_copy(tmp_path / "pkg", monkeypatch)
    camp = project(tmp_path)
    assert quiet("build", camp) == 0
    assert noop.check(str(camp)) is not None
    module = package / "plan" / "jobs.py"
    if edit == "edited":
        _copy_in_place(module, package / "keys.py")
    elif edit == "added":
        (package / "plan" / "extra.py").write_text("")
    elif edit == "removed":
        module.unlink()
    elif edit == "touched":
        os.utime(package / "review" / "page.html", ns=(10**9, 10**9))
    else:  # byte code written: not a change of what a build does
        (package / "__pycache__" / "jobs.cpython-311.pyc").write_bytes(b"x")
        assert noop.check(str(camp)) is not None
        return
    assert noop.check(str(camp)) is None


def test_another_interpreter_does_not_read_the_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    camp = project(tmp_path)
    assert quiet("build", camp) == 0
    assert noop.check(str(camp)) is not None
    monkeypatch.setattr(noop.sys, "hexversion", noop.sys.hexversion + 1)
    assert noop.check(str(camp)) is None


def test_an_output_that_moved_after_the_build_checked_it_is_not_recorded(
        tmp_path: Path) -> None:
    camp = project(tmp_path)
    assert quiet("build", camp) == 0
    out = tmp_path / "out" / "1x1" / "small" / "hero.png"
    st = os.stat(out)
    stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    args = (camp, (out,), (), {"jobs": "3", "out": str(tmp_path / "out")})
    noop.write(*args, verified={str(out): stamp})
    assert noop.check(str(camp)) is not None
    noop.write(*args, verified={str(out): (stamp[0] + 1, *stamp[1:])})
    assert not os.path.exists(noop.record_file(str(camp)))  # in doubt: no record


def test_the_record_names_each_file_once_under_its_folder(tmp_path: Path) -> None:
    camp = project(tmp_path)
    assert quiet("build", camp) == 0
    with open(noop.record_file(str(camp)), "rb") as fh:
        lines = fh.read().split(b"\n")
    folder = os.fsencode(tmp_path / "out" / "1x1" / "small")
    [line] = [x for x in lines if x.startswith(b"d ") and x.split(b"\0")[0].endswith(folder)]
    assert line.split(b"\0")[1:] == [b"hero.png", b"story.png"]
    assert lines[-2].startswith(b"h ")


@pytest.mark.parametrize("start", ["/", "/a", "/a/b/c", "a", "a/b", "."])
def test_repo_folder_is_find_repo_root_on_strings(tmp_path: Path, start: str) -> None:
    from qwenbuild.cachedir import repo_folder

    def by_paths(path: Path) -> Path:  # the rule as it was written with pathlib
        for folder in (path, *path.parents):
            if (folder / ".git").exists():
                return folder
        return path

    assert repo_folder(str(Path(start))) == str(by_paths(Path(start)))
    build_file_tree(tmp_path, {"repo/.git/HEAD": "x", "repo/sub/dir/f": "x"})
    inside = tmp_path / "repo" / "sub" / "dir"
    assert repo_folder(str(inside)) == str(by_paths(inside)) == str(tmp_path / "repo")


def test_the_fast_path_never_prints_a_secret(tmp_path: Path, monkeypatch: Any) -> None:
    """What the fast path prints is not redacted by it: a secret of the environment that
    appears in it (here in the output folder's path) sends the build down the full path,
    which blanks it out."""
    secret = "s3cr3t-value-1234"
    camp = project(tmp_path / secret)
    assert quiet("build", camp) == 0  # recorded: no secret in the environment yet
    assert noop.check(str(camp)) is not None
    monkeypatch.setenv("BENCH_API_KEY", secret)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert noop.fast_build(["build", str(camp)]) is None
    assert out.getvalue() == ""
    shown = run_subprocess("build", camp).out
    assert secret not in shown and "[redacted]" in shown
    # (The --json report's paths are relative to the campaign: no secret in it.)
    assert secret not in run_subprocess("build", camp, "--json").out


def test_the_fast_paths_secret_names_cover_redactions() -> None:
    """noop.py's rule for names of secret variables takes in every name redact.py's does."""
    from qwenbuild.redact import _SECRET_NAME

    names = ["OPENAI_API_KEY", "X_APIKEY", "GH_TOKEN", "MY_SECRET", "DB_PASSWORD", "PASSWD",
             "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "GOOGLE_CREDENTIALS",
             "QWENBUILD_REMOTE_KEY", "aws_secret_access_key", "Runware_Api_Key"]
    for name in names:
        assert _SECRET_NAME.search(name), name
        assert any(word in name.upper() for word in noop._SECRET_WORDS), name
