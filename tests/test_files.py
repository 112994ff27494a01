"""Files qwenbuild writes: the mode the umask gives, temporary files that are qwenbuild's own
and nobody else's, and cache entries that prove their bytes before they are restored."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import Result


def _build(campaign: Path, *args: str, umask: int | None = None) -> Result:
    """`qwenbuild build` in a child process (with its own umask, when given)."""

    def set_umask() -> None:
        if umask is not None:
            os.umask(umask)

    proc = subprocess.run([sys.executable, "-m", "qwenbuild", "build", str(campaign), *args],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy(),
                          preexec_fn=set_umask)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def _modes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_the_umask_gives(project: Path, cache_dir: Path,
                                                    umask: int, mode: int) -> None:
    """Outputs, the manifest, the review page and the cache are readable by teammates and
    web servers when the umask says so (atomic writes used to make every file 0600)."""
    result = _build(project, umask=umask)
    assert result.code == 0, result.err
    out = _modes(project.parent / "out")
    assert {"manifest.json", "index.html", "1x1/small/hero-v1.png"} <= set(out)
    assert out == dict.fromkeys(out, mode)
    cached = _modes(cache_dir)
    assert any(name.startswith("objects/") for name in cached)
    assert cached == dict.fromkeys(cached, mode)


def test_a_build_sweeps_only_its_own_temporary_files(project: Path, run) -> None:
    """A killed build may leave `.qwenbuild-*.tmp` files; the next build removes those, and
    never a user's own `.notes.tmp` or `.draft.tmp`."""
    out = project.parent / "out"
    assert run("build", project).code == 0
    mine = {"1x1/small/.notes.tmp": b"my notes", ".draft.tmp": b"a draft",
            "9x16/small/.hero-v1.png.tmp": b"a user's, named like an old temporary file"}
    for rel, data in mine.items():
        (out / rel).write_bytes(data)
    leftover = out / "1x1" / "small" / ".qwenbuild-hero-v1.png.0123456789ab.tmp"
    leftover.write_bytes(b"half an image from a killed build")

    assert run("build", project).code == 0
    assert not leftover.exists()
    for rel, data in mine.items():
        assert (out / rel).read_bytes() == data, rel


def _record_files(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "objects").rglob("*.json"))


def test_a_cache_record_without_its_image_hash_is_a_miss(project: Path, run,
                                                         cache_dir: Path) -> None:
    """A record that names no sha256 cannot prove its image intact: the job is generated
    again instead of restoring whatever bytes the cache holds into out/."""
    assert run("build", project, "--only", "story").code == 0
    output = project.parent / "out" / "9x16" / "small" / "story.png"
    original = output.read_bytes()
    (record_file,) = _record_files(cache_dir)
    record = json.loads(record_file.read_text())
    del record["sha256"]
    record_file.write_text(json.dumps(record))
    # The image beside it is damaged: another valid image (swapped by a faulty sync, say).
    image_file = record_file.with_suffix(".png")
    from PIL import Image

    Image.new("RGB", (8, 8), (255, 0, 255)).save(image_file, "PNG")
    output.unlink()

    result = run("build", project, "--only", "story", "--json")
    assert result.code == 0, result.err
    (job,) = result.json()["jobs"]
    assert job["status"] == "generated"  # not "cached": the entry was not trusted
    assert output.read_bytes() == original
    assert "names no sha256" in result.err


def test_a_build_sweeps_the_caches_old_temporary_files_only(project: Path, run,
                                                            cache_dir: Path) -> None:
    """A killed build leaves temporary files in the cache too; a later build removes those
    old enough to be leftovers, never one another process is writing right now."""
    assert run("build", project, "--only", "hero").code == 0
    old = cache_dir / "objects" / "00" / ".qwenbuild-0000.png.0123456789ab.tmp"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"half an image")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    fresh = cache_dir / "state" / ".qwenbuild-x.json.ba9876543210.tmp"
    fresh.write_bytes(b"{")  # being written by another build, now
    mine = cache_dir / "objects" / "00" / ".notes.tmp"  # not qwenbuild's: never touched
    mine.write_bytes(b"notes")
    os.utime(mine, (hour_ago, hour_ago))

    assert run("build", project, "--only", "hero").code == 0  # nothing to do: no sweep
    assert old.exists()
    assert run("build", project).code == 0  # "story" to generate: the cache is swept
    assert not old.exists()
    assert fresh.exists() and mine.exists()
