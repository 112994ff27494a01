"""The no-op fast path: `qwenbuild build CAMPAIGN` with nothing to do, answered before
pydantic, Jinja2, httpx or Pillow are imported.

After a plain build (every job of the campaign, no --regenerate, no --verify-text) that
ended with everything built and nothing failed or stale, the executor writes a record of
everything the build's outcome depends on, as this machine sees it:

- qwenbuild's own files (code, templates shipped, page) and folders (a file added);
- the campaign file, every template folder (its files and, for files added or removed,
  its folders), every reference, init image and mask, the review file and the
  repository's qwenbuild.toml (or their absence);
- what a provider's key reads from the machine (the preview's fonts: their files and the
  folders fontconfig finds fonts in; the Pillow that draws them);
- every output, export rendition, the manifest and the review page, and every folder of
  the output folder (a file added or removed moves its folder's mtime);
- the environment variables that change keys or where things are, and the interpreter.

The next `build` of the same campaign with the same options stats those paths and, when
every one is as recorded, prints the result of a no-op build without importing anything
else. Any difference, a missing or unreadable record, other options, or anything
unexpected falls back to the full build, which decides. The record is machine-local, in
the cache folder (`noop/<campaign tag>.txt`), collected by `cache gc` with the campaign.

The record (text, one line each, paths as the file system has them):

    qwenbuild-noop 2
    python <implementation> <hexversion>
    env <sha256 of the ENVIRONMENT variables>
    campaign <real path of the campaign file>
    summary <name> <value>                   what the no-op prints
    d <mtime_ns or -> <folder>\\0<name>\\0…   a folder (its mtime, unless -) and files in it
    m <folder>\\0<name>\\0…                    names that must stay missing in a folder
    M <path>                                 a path that must stay missing
    h <digest>                               of every file's stat, in the record's order

A file's stat is its size, mtime, ctime and inode (an edit that keeps size and mtime
still moves ctime, which cannot be set back). Files are stat'ed relative to their folder
(one path lookup each, not the whole path) and their stats go into one `hash()` of a
tuple of int tuples, compared once: CPython's hash of an int below 2**61 - 1 is the int
itself, and its tuple hash is a bijection in each element, so one changed field always
changes the digest and several collide with a chance of about 2**-64; the interpreter
line keeps a record from being read by another interpreter. No per-file text is parsed.

Standard library only (`os`, `sys`, `time`, the C parts of functools and operator, and
a small sha256), and no import of the
rest of qwenbuild but `cachedir`: everything else would cost more than the check.
"""

import os
import sys
import time
from _operator import attrgetter  # operator's C part: no import cost

from .cachedir import cache_folder, repo_folder

try:  # sha256's own small C module: hashlib loads OpenSSL, several ms of start-up
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found]  # 3.11
except ImportError:  # pragma: no cover - other versions
    try:
        from _sha2 import sha256 as _sha256  # type: ignore[import-not-found]
    except ImportError:
        from hashlib import sha256 as _sha256

RECORD_VERSION = "qwenbuild-noop 2"
#: Environment variables that change keys, plans or where records are.
ENVIRONMENT = ("QWENBUILD_CACHE_DIR", "QWENBUILD_REMOTE_CACHE", "QWENBUILD_OCR")
#: Options of `build` that leave its outcome as it is (output format only).
_PASSIVE = {"-q", "--quiet", "--json"}
#: qwenbuild's own folder (its files are part of every record).
PACKAGE = os.path.dirname(os.path.realpath(__file__))
#: In the recorded `--json` report, the placeholder of the no-op's own duration.
SECONDS = '"seconds": 0.0,'

_DIR_FD = os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")
_ERRORS = "surrogateescape"  # file names that are not UTF-8 survive the round trip


def _tag(path: str) -> str:
    """`fsutil.folder_tag`, without importing it (the same hash of the real path)."""
    return str(_sha256(os.path.realpath(path).encode("utf-8", _ERRORS)).hexdigest()[:20])


def record_file(campaign_file: str) -> str:
    """Where the record of a campaign file lives (the store declares the kind for gc)."""
    real = os.path.realpath(campaign_file)
    cache = cache_folder(repo_folder(os.path.dirname(real)))
    return os.path.join(cache, "noop", _tag(real) + ".txt")


def _interpreter() -> str:
    return f"python {sys.implementation.name} {sys.hexversion}"


def _environment() -> str:
    text = "\0".join(f"{k}={os.environ.get(k, '')}" for k in ENVIRONMENT)
    return str(_sha256(text.encode("utf-8", _ERRORS)).hexdigest())


#: A file's stamp: what of its stat the record keeps (through its digest).
_STAMP = attrgetter("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino")


def package_paths() -> tuple[list[str], list[str]]:
    """qwenbuild's own files and folders (not __pycache__): a change of code, shipped
    template or page is a change of what a build would do."""
    files: list[str] = []
    folders: list[str] = []
    for folder, dirs, names in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        folders.append(folder)
        files += [os.path.join(folder, n) for n in names if not n.endswith((".pyc", ".pyo"))]
    return files, folders


#: Paths as `write` takes them (a tuple: no import of collections.abc for an Iterable).
Paths = tuple[os.PathLike[str] | str, ...]


def report_file(campaign_file: os.PathLike[str] | str) -> str:
    """Where what `build --json` prints for a no-op build goes (SECONDS for its duration):
    written by the executor before `write`."""
    return record_file(os.fspath(campaign_file))[:-len(".txt")] + ".json"


def write(campaign_file: os.PathLike[str] | str, files: Paths, folders: Paths,
          summary: dict[str, str],
          verified: dict[str, tuple[int, int, int, int]] | None = None) -> None:
    """Record a no-op-able state: `files` must keep their stat (or stay missing),
    `folders` their mtime. `summary` holds what the no-op prints (`report_file` what
    `build --json` prints). `verified`: the
    (size, mtime_ns, ctime_ns, inode) of files as the build checked their content (by
    absolute path); when one moved since, or anything else is in doubt, there is no
    record (the previous one is removed). Written atomically; a failure to write only
    costs speed."""
    campaign = os.path.realpath(campaign_file)
    text = _record(campaign, files, folders, summary, verified or {})
    if text is None:
        forget(campaign)
        return
    target = record_file(campaign)
    try:
        folder, base = os.path.split(target)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".qwenbuild-{base}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8", errors=_ERRORS) as fh:
            fh.write(text)
        os.replace(tmp, target)
    except OSError:
        forget(campaign)


def _record(campaign: str, files: Paths, folders: Paths, summary: dict[str, str],
            verified: dict[str, tuple[int, int, int, int]]) -> str | None:
    """The record's text, or None when in doubt."""
    package_files, package_folders = package_paths()
    watched = {os.path.abspath(f) for f in folders} | set(package_folders)
    groups: dict[str, list[str]] = {folder: [] for folder in watched}
    for path in {os.path.abspath(f) for f in files} | set(package_files):
        folder, name = os.path.split(path)
        groups.setdefault(folder, []).append(name)
    lines = [RECORD_VERSION, _interpreter(), f"env {_environment()}", f"campaign {campaign}"]
    lines += [f"summary {k} {v}" for k, v in sorted(summary.items())]
    if any("\n" in line for line in lines):
        return None
    stamps: list[tuple[int, int, int, int]] = []
    for folder in sorted(groups):
        if "\n" in folder or "\0" in folder:
            return None  # a path no line can hold: no record, no fast path
        names = sorted(groups[folder])
        try:
            mtime = str(os.stat(folder).st_mtime_ns) if folder in watched else "-"
        except FileNotFoundError:
            lines += [f"M {folder}"] + [f"M {os.path.join(folder, n)}" for n in names]
            continue
        except OSError:
            return None
        present, missing = [], []
        for name in names:
            if "\n" in name:
                return None
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                missing.append(name)
                continue
            except OSError:
                return None
            stamp = _STAMP(st)
            seen = verified.get(path)
            if seen is not None and seen != stamp:
                return None  # changed since the build checked it: the next build decides
            present.append(name)
            stamps.append(stamp)
        lines.append("\0".join([f"d {mtime} {folder}", *present]))
        if missing:
            lines.append("\0".join([f"m {folder}", *missing]))
    lines.append(f"h {hash(tuple(stamps))}")
    return "\n".join(lines) + "\n"


def forget(campaign_file: os.PathLike[str] | str) -> None:
    """Drop the record (a build that changed or failed something: the next one decides)."""
    try:
        os.unlink(record_file(os.fspath(campaign_file)))
    except OSError:
        pass


def check(campaign: str) -> dict[str, str] | None:
    """The recorded summary when nothing the build depends on changed since the record;
    None whenever in doubt."""
    try:
        with open(record_file(campaign), "rb") as fh:
            lines = fh.read().split(b"\n")
    except OSError:
        return None
    head = "\n".join([RECORD_VERSION, _interpreter(), f"env {_environment()}",
                      f"campaign {os.path.realpath(campaign)}"]).encode("utf-8", _ERRORS)
    if len(lines) < 6 or b"\n".join(lines[:4]) != head or lines[-1] != b"":
        return None
    summary: dict[str, str] = {}
    stamps: list[tuple[int, int, int, int]] = []
    digest = None
    try:
        for line in lines[4:-1]:
            kind = line[:2]
            if kind == b"d ":
                mtime, _, rest = line[2:].partition(b" ")
                folder, *names = rest.split(b"\0")
                stamps += _stat_in(folder, mtime, names)
            elif kind == b"m ":
                folder, *names = line[2:].split(b"\0")
                if any(os.path.lexists(os.path.join(folder, n)) for n in names):
                    return None
            elif kind == b"M ":
                if os.path.lexists(line[2:]):
                    return None
            elif kind == b"h ":
                digest = line[2:]
            elif line.startswith(b"summary "):
                key, _, value = line[8:].decode("utf-8", _ERRORS).partition(" ")
                summary[key] = value
            else:
                return None
    except (OSError, ValueError, _Moved):
        return None
    if digest is None or str(hash(tuple(stamps))).encode() != digest:
        return None
    return summary


class _Moved(Exception):
    """A folder's mtime is not the recorded one."""


def _stat_in(folder: bytes, mtime: bytes, names: list[bytes]) -> list[tuple[int, int, int, int]]:
    """The stamps of `names` in `folder` (OSError when one is gone), after checking the
    folder's mtime unless it is `-`: one open of the folder, then a lookup of one name
    per file (a path of many folders costs a lookup per folder, file after file)."""
    if not _DIR_FD:  # pragma: no cover - platforms without dir_fd
        if mtime != b"-" and str(os.stat(folder).st_mtime_ns).encode() != mtime:
            raise _Moved
        return list(map(_STAMP, [os.stat(os.path.join(folder, n)) for n in names]))
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if mtime != b"-" and str(os.fstat(fd).st_mtime_ns).encode() != mtime:
            raise _Moved
        return list(map(_STAMP, [os.stat(n, dir_fd=fd) for n in names]))
    finally:
        os.close(fd)


def fast_build(argv: list[str]) -> int | None:
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
    seconds = round(time.perf_counter() - started, 3)
    jobs = summary.get("jobs", "0")
    if "--json" in argv:
        try:
            with open(report_file(campaign), encoding="utf-8", errors=_ERRORS) as fh:
                report = fh.read()
        except OSError:
            return None
        if SECONDS not in report or _holds_secret(report):
            return None
        sys.stdout.write(report.replace(SECONDS, f'"seconds": {seconds},', 1) + "\n")
        return 0
    out = summary.get("out", "")
    shown = os.path.relpath(out, os.getcwd()) if out else "."
    text = (f"{jobs} jobs: 0 generated, 0 from cache, {jobs} up to date; "
            f"cost $0.0000; {seconds:.2f}s\noutputs in {shown}/ (manifest.json)\n")
    if _holds_secret(text):
        return None
    sys.stdout.write(text)
    return 0


#: Words in the names of environment variables that may hold a secret: more than
#: redact.py's rule (which needs `re`), never fewer.
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
#: redact.py's MIN_SECRET: shorter values are never blanked out.
_MIN_SECRET = 8


def _holds_secret(text: str) -> bool:
    """Whether `text` holds the value of an environment variable that may be a secret.
    What the fast path prints is not redacted here: the executor records nothing that
    redaction would change with the environment it had (URLs, credentials); this catches
    a secret set since (the full build then prints, redacted)."""
    for name, value in os.environ.items():
        upper = name.upper()
        if any(word in upper for word in _SECRET_WORDS):
            value = value.strip()
            if len(value) >= _MIN_SECRET and value in text:
                return True
    return False
