"""The no-op fast path: `qwenbuild build CAMPAIGN` with nothing to do, answered before
pydantic, Jinja2, httpx or Pillow are imported.

After a plain build (every job of the campaign, no --regenerate, no --verify-text) that
ended with everything built and nothing failed or stale, the executor writes a record of
everything the build's outcome depends on, as this machine sees it:

- qwenbuild's own files (code, templates shipped, page), by size, mtime and ctime;
- the campaign file, every template folder (its files and, for files added or removed,
  its folders), every reference, init image and mask, the review file and the
  repository's qwenbuild.toml (or their absence);
- what a provider's key reads from the machine (the preview's fonts: their files and the
  folders fontconfig finds fonts in; the Pillow that draws them);
- every output, export rendition, the manifest and the review page;
- the environment variables that change keys or where things are.

The next `build` of the same campaign with the same options stats those paths (size,
mtime, ctime and inode: an edit that keeps size and mtime still moves ctime) and, when
every one is as recorded, prints the result of a no-op build without importing anything
else. Any difference, a missing or unreadable record, other options, or anything
unexpected falls back to the full build, which decides. The record is machine-local, in
the cache folder (`noop/<campaign tag>`), collected by `cache gc` with the campaign.

Standard library only, and no import of the rest of qwenbuild but `cachedir`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .cachedir import cache_root, find_repo_root

RECORD_VERSION = "qwenbuild-noop 1"
#: Environment variables that change keys, plans or where records are.
ENVIRONMENT = ("QWENBUILD_CACHE_DIR", "QWENBUILD_REMOTE_CACHE", "QWENBUILD_OCR")
#: Options of `build` that leave its outcome as it is (output format only).
_PASSIVE = {"-q", "--quiet", "--json"}
PACKAGE = Path(__file__).resolve().parent


def _tag(path: Path) -> str:
    """`fsutil.folder_tag`, without importing it (the same hash of the absolute path)."""
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:20]


def record_path(campaign_file: Path) -> Path:
    """Where the record of a campaign file lives (the store declares the kind for gc)."""
    campaign_file = campaign_file.resolve()
    cache = cache_root(find_repo_root(campaign_file.parent))
    return cache / "noop" / f"{_tag(campaign_file)}.txt"


def _environment() -> str:
    return hashlib.sha256("\0".join(f"{k}={os.environ.get(k, '')}"
                                    for k in ENVIRONMENT).encode()).hexdigest()


def _stamp(st: os.stat_result) -> str:
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}"


def package_files() -> list[Path]:
    """qwenbuild's own files: a change of code, shipped template or page is a change of
    what a build would do."""
    found: list[Path] = []
    stack = [PACKAGE]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        stack.append(Path(entry.path))
                elif not entry.name.endswith((".pyc", ".pyo")):
                    found.append(Path(entry.path))
    return sorted(found)


#: In the recorded `--json` report, the placeholder of the no-op's own duration.
SECONDS = '"seconds": 0.0,'


def write(campaign_file: Path, files: Iterable[Path], folders: Iterable[Path],
          summary: dict[str, str], report_json: str) -> None:
    """Record a no-op-able state: `files` must keep their stat (or stay missing),
    `folders` their mtime. `summary` holds what the no-op prints; `report_json` what
    `build --json` prints for it (with SECONDS for the duration). Written atomically; a
    failure to write only costs speed."""
    lines = [RECORD_VERSION, f"env {_environment()}", f"campaign {campaign_file.resolve()}"]
    lines += [f"summary {k} {v}" for k, v in sorted(summary.items())]
    for path in sorted({*package_files(), *(Path(f) for f in files)}):
        text = str(path)
        if "\n" in text:
            return  # a path no line can hold: no record, no fast path
        try:
            lines.append(f"S {_stamp(os.stat(path))} {text}")
        except FileNotFoundError:
            lines.append(f"M {text}")
        except OSError:
            return
    for folder in sorted({Path(f) for f in folders}):
        if "\n" in str(folder):
            return
        try:
            lines.append(f"D {os.stat(folder).st_mtime_ns} {folder}")
        except OSError:
            lines.append(f"M {folder}")
    target = record_path(campaign_file)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for name, data in ((target.with_suffix(".json"), report_json),
                           (target, "\n".join(lines) + "\n")):
            tmp = name.parent / f".qwenbuild-{name.name}.{os.getpid()}.tmp"
            tmp.write_text(data, encoding="utf-8")
            os.replace(tmp, name)
    except OSError:
        pass


def forget(campaign_file: Path) -> None:
    """Drop the record (a build that changed or failed something: the next one decides)."""
    try:
        record_path(campaign_file).unlink()
    except OSError:
        pass


def check(campaign: str) -> dict[str, str] | None:
    """The recorded summary when nothing the build depends on changed since the record;
    None whenever in doubt."""
    try:
        path = Path(campaign)
        with open(record_path(path), encoding="utf-8") as fh:
            lines = fh.read().split("\n")
    except (OSError, ValueError):
        return None
    if not lines or lines[0] != RECORD_VERSION:
        return None
    summary: dict[str, str] = {}
    expected_env = f"env {_environment()}"
    seen_packages: set[str] = set()
    for line in lines[1:]:
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        if kind == "S":
            size, mtime, ctime, ino, name = rest.split(" ", 4)
            try:
                st = os.stat(name)
            except OSError:
                return None
            if (str(st.st_size), str(st.st_mtime_ns), str(st.st_ctime_ns),
                    str(st.st_ino)) != (size, mtime, ctime, ino):
                return None
            if name.startswith(str(PACKAGE)):
                seen_packages.add(name)
        elif kind == "D":
            mtime, name = rest.split(" ", 1)
            try:
                if str(os.stat(name).st_mtime_ns) != mtime:
                    return None
            except OSError:
                return None
        elif kind == "M":
            if os.path.lexists(rest):
                return None
        elif kind == "env":
            if line != expected_env:
                return None
        elif kind == "campaign":
            if rest != str(Path(campaign).resolve()):
                return None
        elif kind == "summary":
            key, _, value = rest.partition(" ")
            summary[key] = value
        else:
            return None
    # A file added to the package is a change of code too.
    if {str(p) for p in package_files()} != seen_packages:
        return None
    return summary


def fast_build(argv: Sequence[str]) -> int | None:
    """Answer `qwenbuild build CAMPAIGN [-q] [--json]` when nothing changed since the last
    plain build: print what the full build would print and return its exit code (0).
    None: not this case, or in doubt; the full build runs."""
    started = time.perf_counter()
    if len(argv) < 2 or argv[0] != "build":
        return None
    positional = [a for a in argv[1:] if a not in _PASSIVE]
    if len(positional) != 1 or positional[0].startswith("-"):
        return None
    campaign = positional[0]
    summary = check(campaign)
    if summary is None:
        return None
    as_json = "--json" in argv
    seconds = round(time.perf_counter() - started, 3)
    jobs = summary.get("jobs", "0")
    if as_json:
        try:
            report = record_path(Path(campaign)).with_suffix(".json").read_text("utf-8")
        except OSError:
            return None
        if SECONDS not in report:
            return None
        sys.stdout.write(report.replace(SECONDS, f'"seconds": {seconds},', 1) + "\n")
        return 0
    out = summary.get("out", "")
    shown = os.path.relpath(out, os.getcwd()) if out else "."
    sys.stdout.write(f"{jobs} jobs: 0 generated, 0 from cache, {jobs} up to date; "
                     f"cost $0.0000; {seconds:.2f}s\n")
    sys.stdout.write(f"outputs in {shown}/ (manifest.json)\n")
    return 0
