"""Ctrl-C at any moment, and browsers that go away: quiet, clean exits of real processes.

Each Ctrl-C is a real SIGINT. Where one must land at a precise point (while a module is
imported, as a function starts), the child process sends it to itself from
`tests/interrupt_hook/sitecustomize.py`, so the test does not depend on timing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO, Result, sigint_default

HOOK = Path(__file__).parent / "interrupt_hook"
TIMEOUT = 60


def _start(args: list[str | Path], cwd: Path, sigint: str = "") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{HOOK}{os.pathsep}{REPO}",
           "QWENBUILD_TEST_SIGINT": sigint, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "qwenbuild", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=sigint_default)


def _finish(proc: subprocess.Popen[str]) -> Result:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"did not stop: {out}\n{err}") from None
    return Result(proc.returncode, out, err)


def _quiet(result: Result) -> None:
    for noise in ("Traceback", "Exception ignored", "Fatal Python error"):
        assert noise not in result.err, result.err


def _read_until(proc: subprocess.Popen[str], pattern: str) -> list[str]:
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return seen
    proc.kill()
    raise AssertionError(f"no line matching {pattern!r}: {seen}; {proc.communicate()[1]}")


# -- during start-up --------------------------------------------------------------------------


@pytest.mark.parametrize(("point", "code"), [
    ("import:qwenbuild.cli", 130),            # the command line itself is being imported
    ("import:qwenbuild.watch", 130),          # the command's library
    ("call:qwenbuild.review.server:LiveServer.__init__", 130),  # opening the port
    ("call:qwenbuild.watch:Watcher.run", 0),  # the watch has started: Ctrl-C ends it
    ("import:jinja2", 0),                     # loading the campaign for the first build
])
def test_ctrl_c_during_start_up_exits_quietly(project: Path, point: str, code: int) -> None:
    result = _finish(_start(["watch", project.name, "--port", "0"], project.parent, point))
    _quiet(result)
    assert result.code == code, result.err
    if code == 130:
        assert result.err.strip() == "ERROR: interrupted"
    else:
        assert result.out.rstrip().endswith("stopped")


# -- while stopping ---------------------------------------------------------------------------


@pytest.mark.parametrize("point", [
    "call:qwenbuild.watch:Watcher.close",                    # stopping the watchers
    "call:qwenbuild.review.server:LiveServer.stop",          # closing the server
])
def test_a_second_ctrl_c_while_watch_stops_is_acknowledged_not_raised(project: Path,
                                                                      point: str) -> None:
    proc = _start(["watch", project.name, "--port", "0"], project.parent, point)
    _read_until(proc, r"^5 jobs: 5 generated")
    proc.send_signal(signal.SIGINT)  # the first Ctrl-C; the second comes as the stop runs
    result = _finish(proc)
    _quiet(result)
    assert result.code == 0, result.err
    assert "stopping: saving what finished" in result.err
    assert result.out.rstrip().endswith("stopped")


def test_ctrl_c_twice_during_a_build_saves_what_finished(project: Path) -> None:
    """The first Ctrl-C as the second job finishes, the second while the manifest is being
    saved: the save completes, the message counts what finished, no traceback."""
    proc = _start(["build", project.name, "-j", "1"], project.parent,
                  "call:qwenbuild.build.executor:Build._finish:2;"
                  "call:qwenbuild.manifest:Manifest.save")
    result = _finish(proc)
    _quiet(result)
    assert result.code == 130, result.err
    assert "stopping: saving what finished" in result.err
    match = re.search(r"interrupted: (\d+) jobs finished and are kept", result.err)
    assert match, result.err
    manifest = json.loads((project.parent / "out" / "manifest.json").read_text())
    assert len(manifest["outputs"]) == int(match.group(1)) >= 2


def test_a_third_ctrl_c_quits_at_once(project: Path) -> None:
    proc = _start(["build", project.name, "-j", "1"], project.parent,
                  "call:qwenbuild.build.executor:Build._finish:2;"
                  "call:qwenbuild.manifest:Manifest.save;"
                  "call:qwenbuild.manifest:Manifest._data")
    result = _finish(proc)
    _quiet(result)
    assert result.code == 130
    assert result.err.rstrip().endswith("quit at once")


def test_ctrl_c_during_the_watch_build_ends_the_watch(project: Path) -> None:
    proc = _start(["watch", project.name, "--port", "0", "--no-serve"], project.parent,
                  "call:qwenbuild.build.executor:Build._finish:2;"
                  "call:qwenbuild.manifest:Manifest.save")
    result = _finish(proc)
    _quiet(result)
    assert result.code == 0, result.err
    assert result.out.rstrip().endswith("stopped")
    manifest = json.loads((project.parent / "out" / "manifest.json").read_text())
    assert len(manifest["outputs"]) >= 2


def test_sigterm_stops_a_watch_like_ctrl_c(project: Path) -> None:
    proc = _start(["watch", project.name, "--port", "0"], project.parent)
    _read_until(proc, r"^5 jobs: 5 generated")
    proc.send_signal(signal.SIGTERM)
    result = _finish(proc)
    _quiet(result)
    assert result.code == 0, result.err
    assert result.out.rstrip().endswith("stopped")


# -- browsers that go away --------------------------------------------------------------------


def test_a_browser_going_away_mid_answer_prints_nothing(project: Path) -> None:
    proc = _start(["watch", project.name, "--port", "0"], project.parent)
    port = int(re.search(r"127\.0\.0\.1:(\d+)/", _read_until(proc, r"serving")[-1])
               .group(1))  # type: ignore[union-attr]
    _read_until(proc, r"^5 jobs: 5 generated")
    # Bigger than the sockets' buffers, so the server is still writing when the reset comes.
    (project.parent / "out" / "large.png").write_bytes(os.urandom(8 << 20))
    for path in ("/large.png", "/", "/__qwenbuild/events?build=1&server=x"):
        for _ in range(3):
            # A tab closed while the answer is on its way: the connection is reset.
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            sock.recv(16)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
    # The server still answers.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(12).startswith(b"HTTP/1.0 200")
    proc.send_signal(signal.SIGINT)
    result = _finish(proc)
    _quiet(result)
    assert result.code == 0
    assert result.err == "", result.err
