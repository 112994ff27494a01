"""`qwenbuild watch`: in-process (a thread with a stop event) and as a subprocess.

Waits are bounded and wait for an event (a status from the watch loop, a line of output,
a server-sent event); the only fixed waits check that nothing more happens.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from qwenbuild.cli.watch import WatchPrinter
from qwenbuild.review.server import EVENTS_PATH, LiveServer, LiveState
from qwenbuild.watch import WatchEvent, watch

from .conftest import REPO, sigint_default, tree_snapshot

TIMEOUT = 15.0


class WatchThread:
    """`watch()` running in a thread; its status events arrive in a queue."""

    def __init__(self, campaign: Path, *, on_status: Callable[[WatchEvent], None] | None = None,
                 **options: Any) -> None:
        self.campaign = campaign
        self.events: queue.Queue[WatchEvent] = queue.Queue()
        self.stop = threading.Event()
        self.out, self.err = io.StringIO(), io.StringIO()
        self.error: BaseException | None = None
        self._hook = on_status
        # The CLI's printer: what `qwenbuild watch` would print goes to out and err.
        printer = WatchPrinter(self.out, self.err)

        def status(event: WatchEvent) -> None:
            printer.status(event)
            if self._hook is not None:
                self._hook(event)
            self.events.put(event)

        def target() -> None:
            try:
                watch(campaign, stop_event=self.stop, on_status=status, on_job=printer.job,
                      **{"serve": False, **options})
            except BaseException as exc:  # reported by __exit__
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)

    def __enter__(self) -> WatchThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "watch did not stop"
        if self.error is not None:
            raise self.error

    def next(self, *kinds: str, timeout: float = TIMEOUT) -> WatchEvent:
        """The next event of one of `kinds` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kinds} event within {timeout}s; output:\n"
                                     f"{self.out.getvalue()}\n{self.err.getvalue()}") from None
            if event.kind in kinds:
                return event

    def finished(self) -> WatchEvent:
        """The end of the next build, good or failed."""
        return self.next("built", "failed")

    def built(self) -> WatchEvent:
        event = self.finished()
        assert event.kind == "built", event.error
        return event

    def nothing_more(self, seconds: float = 0.6) -> None:
        try:
            event = self.events.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected {event}")


def results(event: WatchEvent) -> list[Any]:
    assert event.report is not None, event.error
    return event.report.results


def generated(event: WatchEvent) -> set[str]:
    return {r.job.output for r in results(event) if r.status == "generated"}


def failure(event: WatchEvent) -> str:
    """The error of a failed rebuild."""
    assert event.kind == "failed" and event.error is not None, event
    return event.error


def live_info(page: bytes) -> dict[str, Any]:
    """The live-reload hook the server injects into a page."""
    match = re.search(rb"__QWENBUILD_LIVE__ = (\{.*?\});", page)
    assert match, "no live-reload hook"
    return json.loads(match.group(1))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def report_latency(record_property: Callable[[str, object], None], name: str,
                   seconds: float | None) -> None:
    """Save-to-rebuilt latency: printed, and kept in the test report (junit properties)."""
    assert seconds is not None
    print(f"\n{name}: {seconds:.3f}s")
    record_property(name, round(seconds, 3))


def _png(path: Path, colour: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


@pytest.fixture
def rich_project(project: Path) -> Path:
    """The shared project, with story on its own template and hero with a reference."""
    folder = project.parent
    (folder / "templates" / "story.j2").write_text('A story for {{ brand.name }}: '
                                                  '"{{ copy.headline }}".\n')
    _png(folder / "refs" / "mood.png", "teal")
    edit(project, 'id = "story"\n', 'id = "story"\ntemplate = "story.j2"\n')
    edit(project, 'seeds = [1, 2]\n', 'seeds = [1, 2]\nreferences = ["refs/mood.png"]\n')
    return project


HERO = {"1x1/small/hero-v1.png", "1x1/small/hero-v2.png", "9x16/small/hero-v1.png",
        "9x16/small/hero-v2.png"}
STORY = {"9x16/small/story.png"}


def test_each_edit_rebuilds_only_the_jobs_it_affects(rich_project: Path,
                                                     record_property: Any) -> None:
    folder = rich_project.parent
    with WatchThread(rich_project) as w:
        assert generated(w.built()) == HERO | STORY

        # Writes under the output folder are the build's own: never a reason to rebuild.
        (folder / "out" / "notes.txt").write_text("scribbles")
        edit(rich_project, "SECOND STORY", "SECOND STORY, EDITED")
        event = w.built()
        assert event.changed == ("campaign.toml",)
        assert generated(event) == STORY
        report_latency(record_property, "save_to_rebuilt_s", event.latency)

        edit(folder / "templates" / "story.j2", "A story", "A short story")
        event = w.built()
        assert event.changed == ("templates/story.j2",) and generated(event) == STORY

        _png(folder / "refs" / "mood.png", "coral")
        event = w.built()
        assert event.changed == ("refs/mood.png",) and generated(event) == HERO

        # The campaign adds a template folder: it is watched from the next build on.
        (folder / "more").mkdir()
        (folder / "more" / "teaser.j2").write_text('Teaser: "{{ copy.headline }}".\n')
        text = rich_project.read_text().replace(
            'name = "test"\n', 'name = "test"\ntemplates = ["templates", "more"]\n')
        rich_project.write_text(text.replace('template = "story.j2"', 'template = "teaser.j2"'))
        assert generated(w.built()) == STORY
        edit(folder / "more" / "teaser.j2", "Teaser", "A teaser")
        event = w.built()
        assert event.changed == ("more/teaser.j2",) and generated(event) == STORY
        manifest = json.loads((folder / "out" / "manifest.json").read_text())["outputs"]
        assert set(manifest) == HERO | STORY
    assert "rebuilt" in w.out.getvalue() and "after the save" in w.out.getvalue()
    w.next("stopped")


@pytest.fixture
def patient_debounce(monkeypatch: pytest.MonkeyPatch) -> None:
    """A longer quiet window, for tests that need several saves to land in one rebuild even
    on a loaded machine (the saves come from this test's thread, which may be descheduled)."""
    import qwenbuild.watch

    monkeypatch.setattr(qwenbuild.watch, "QUIET_S", 0.6)
    monkeypatch.setattr(qwenbuild.watch, "MAX_WAIT_S", 3.0)


def test_a_burst_of_saves_gives_one_rebuild(project: Path, patient_debounce: None) -> None:
    with WatchThread(project) as w:
        w.built()
        for i in range(5):
            edit(project, "SECOND STORY" if i == 0 else f"BURST {i - 1}", f"BURST {i}")
            time.sleep(0.02)  # a person (or a formatter) saving again and again
        building = w.next("building")
        event = w.built()
        assert event.number == building.number == 2
        assert generated(event) == STORY
        (story,) = [r for r in results(event) if r.job.output in STORY]
        assert '"BURST 4"' in story.job.request.prompt
        w.nothing_more()


def test_invalid_edits_keep_the_loop_alive(project: Path, patient_debounce: None) -> None:
    out = project.parent / "out"
    template = project.parent / "templates" / "poster.j2"
    with WatchThread(project) as w:
        w.built()
        snapshot = tree_snapshot(out)
        good = project.read_text()

        project.write_text(good.replace("[[assets]]", "[[assets]", 1))  # TOML syntax
        assert "campaign.toml" in failure(w.finished())
        edit(template, "{{ copy.headline }}", "{{ copy.headlin }}")  # a template error,
        project.write_text(good)  # seen once the campaign is valid again
        assert "headlin" in failure(w.finished())
        assert tree_snapshot(out) == snapshot  # the last good outputs stay in place

        edit(template, "{{ copy.headlin }}", "{{ copy.headline }}")
        project.write_text(good.replace("SECOND STORY", "FIXED STORY"))
        event = w.built()
        assert generated(event) == STORY
    assert "ERROR:" in w.err.getvalue() and "still watching" in w.err.getvalue()


def test_an_edit_during_a_build_is_built_after_it(project: Path) -> None:
    def save_while_building(event: WatchEvent) -> None:
        # Runs in the watch loop once build 2 has loaded the campaign and is starting.
        if event.kind == "building" and event.number == 2:
            edit(project, "MIDDLE STORY", "LAST STORY")

    with WatchThread(project, on_status=save_while_building) as w:
        w.built()
        edit(project, "SECOND STORY", "MIDDLE STORY")
        second = w.built()
        (story,) = [r for r in results(second) if r.status == "generated"]
        assert '"MIDDLE STORY"' in story.job.request.prompt  # finished, not cancelled
        third = w.built()
        assert third.number == 3 and generated(third) == STORY
        (story3,) = [r for r in results(third) if r.status == "generated"]
        assert '"LAST STORY"' in story3.job.request.prompt
        w.nothing_more(0.3)
    # The image of the middle edit, received during the edit, is still in the cache.
    from qwenbuild.campaign import load_campaign
    from qwenbuild.store import Store

    assert Store(load_campaign(project).cache_dir).has(story.job.key, "png")


def test_every_rebuild_is_bounded_by_max_jobs(project: Path) -> None:
    edit(project, 'kind = "preview"\nscale = 0.1', 'kind = "aimlapi"')
    with WatchThread(project, max_jobs=2) as w:
        assert "over the limit of 2" in failure(w.finished())
        assert not (project.parent / "out").exists()  # nothing was asked of the provider
        edit(project, 'kind = "aimlapi"', 'kind = "preview"\nscale = 0.1')
        assert generated(w.built()) == HERO | STORY


# -- the server, in-process --------------------------------------------------------------


def _get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """A raw GET: http.client sends the path as given (no `..` folding)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={"Host": f"{host}:{port}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _headers(port: int, path: str) -> dict[str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("HEAD", path)
        response = conn.getresponse()
        assert response.status == 200, path
        return dict(response.getheaders())
    finally:
        conn.close()


class EventStream:
    """Server-sent events read by a thread into a queue."""

    def __init__(self, port: int, query: str) -> None:
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.conn.request("GET", f"{EVENTS_PATH}?{query}")
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("Content-Type", "").startswith("text/event-stream")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name, data = "", ""
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif not line and name:
                    self.events.put((name, json.loads(data)))
                    name = ""
        except (OSError, ValueError):
            pass  # closed by the test

    def next(self, timeout: float = TIMEOUT) -> tuple[str, dict[str, Any]]:
        return self.events.get(timeout=timeout)

    def next_result(self) -> tuple[str, dict[str, Any]]:
        """The next reload or build-error (skipping "building")."""
        while (event := self.next())[0] == "building":
            pass
        return event

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveState, Path]]:
    out = tmp_path / "site" / "out"
    out.mkdir(parents=True)
    (tmp_path / "site" / "secret.txt").write_text("not for you")
    state = LiveState()
    server = LiveServer(state, port=0)
    server.start()
    yield server, state, out
    server.stop()


def test_server_serves_the_output_folder_only(live_server: Any) -> None:
    server, state, out = live_server
    port = server.httpd.server_address[1]
    # Before a first good build: a placeholder page (which still connects for updates).
    status, body = _get(port, "/")
    assert status == 200 and b"__QWENBUILD_LIVE__" in body
    server.set_root(out, "demo")
    status, body = _get(port, "/")
    assert status == 200 and b"No outputs yet" in body
    (out / "index.html").write_text("<html><head></head><body>page</body></html>")
    (out / "a.png").write_bytes(b"png")
    (out / "link.txt").symlink_to(out.parent / "secret.txt")
    status, body = _get(port, "/")
    assert status == 200 and body.startswith(b"<html><head><script>window.__QWENBUILD_LIVE__")
    assert live_info(body) == {"server": state.server_id, "build": 0}
    assert _get(port, "/a.png") == (200, b"png")
    sha = hashlib.sha256(b"png").hexdigest()
    assert "immutable" in _headers(port, f"/a.png?v={sha[:12]}")["Cache-Control"]
    assert _headers(port, "/a.png?v=0123456789ab")["Cache-Control"] == "no-cache"  # stale v
    assert _headers(port, "/index.html")["Cache-Control"] == "no-store"
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/a/../../secret.txt",
                 "/link.txt", "/..%2fsecret.txt"):
        status, body = _get(port, path)
        assert status in (403, 404) and b"not for you" not in body, path
    assert _get(port, "/.index.html.tmp")[0] == 404
    assert _get(port, "/missing.png")[0] == 404
    assert _get(port, "/", host="attacker.example")[0] == 403  # DNS rebinding


def test_server_sent_events(live_server: Any) -> None:
    server, state, out = live_server
    port = server.httpd.server_address[1]
    server.set_root(out, "demo")
    stale = EventStream(port, "server=someone-else&build=0")
    assert stale.next()[0] == "reload"  # a page from an earlier watch: reload at once
    stream = EventStream(port, f"server={state.server_id}&build=0")
    state.rebuilding()
    assert stream.next() == ("building", {})
    state.failed("campaign.toml: line 3: oops <b>")
    assert stream.next() == ("build-error", {"message": "campaign.toml: line 3: oops <b>"})
    state.built()
    assert stream.next() == ("reload", {"build": 1})
    # A page connecting after a failed rebuild learns of the error at once.
    state.failed("still broken")
    late = EventStream(port, f"server={state.server_id}&build=1")
    assert late.next() == ("build-error", {"message": "still broken"})
    for s in (stale, stream, late):
        s.close()


# -- as a subprocess ---------------------------------------------------------------------


class WatchProcess:
    """`python -m qwenbuild watch ...`, its output lines read into a queue."""

    def __init__(self, *args: str | Path, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qwenbuild", "watch", *map(str, args)], cwd=cwd,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)},
            preexec_fn=sigint_default)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.errors: list[str] = []
        # One reader per pipe (and no communicate(), which would take lines from them).
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.errors.append),
                             daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, put: Callable[[str], None]) -> None:
        for line in stream:
            put(line.rstrip("\n"))

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: the exit code and everything written to stderr."""
        self.proc.send_signal(signal.SIGINT)
        try:
            # Generous: only a stop that never comes should fail here, not a loaded machine.
            code = self.proc.wait(timeout=4 * TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        for reader in self.readers:
            reader.join(TIMEOUT)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return code, "\n".join(self.errors)

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; got {self.seen}; "
                                     f"stderr: {self.errors}") from None
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match


def test_watch_subprocess_live_reload_and_ctrl_c(project: Path, record_property: Any) -> None:
    w = WatchProcess(project.name, "--port", "0", cwd=project.parent)
    try:
        port = int(w.expect(r"serving the review page at http://127\.0\.0\.1:(\d+)/").group(1))
        w.expect(r"^5 jobs: 5 generated")
        status, page = _get(port, "/")
        assert status == 200 and b"HELLO WORLD" in _get(port, "/review/index.js")[1]
        live = live_info(page)
        if live["build"] == 0:
            # Fetched after the summary line but before the build was published: the page
            # is labelled older than it is, and its event stream says "reload" at once.
            early = EventStream(port, f"server={live['server']}&build=0")
            assert early.next_result() == ("reload", {"build": 1})
            early.close()
            live = live_info(_get(port, "/")[1])
        assert live["build"] == 1
        assert _get(port, "/../campaign.toml")[0] == 403
        assert _get(port, "/%2e%2e/templates/poster.j2")[0] == 403

        stream = EventStream(port, f"server={live['server']}&build=1")
        saved = time.monotonic()
        edit(project, "SECOND STORY", "SECOND STORY, LIVE")
        assert stream.next_result() == ("reload", {"build": 2})
        report_latency(record_property, "save_to_reload_event_s", time.monotonic() - saved)
        w.expect(r"^5 jobs: 1 generated")
        assert b"SECOND STORY, LIVE" in _get(port, "/review/index.js")[1]

        stream = EventStream(port, f"server={live['server']}&build=2")
        edit(project, 'headline = "HELLO WORLD"', "headline = ")
        name, data = stream.next_result()
        assert name == "build-error" and "campaign.toml" in data["message"]
        stream.close()
    finally:
        code, err = w.interrupt()
    assert code == 0, err
    assert "Traceback" not in err and "ERROR:" in err  # the invalid edit, reported
    w.expect(r"^stopped$")


def test_previews_are_drawn_at_screen_size_while_watching(project: Path) -> None:
    """A preview provider that sets no `scale` draws its comps at WATCH_PREVIEW_SCALE while
    watching: another size, so another key. The watch leaves no record for the no-op fast
    path, and the next `build` draws every comp at its full size again."""
    from qwenbuild import noop
    from qwenbuild.watch import WATCH_PREVIEW_SCALE

    from .conftest import run_subprocess

    edit(project, "scale = 0.1\n", "")
    hero = project.parent / "out" / "1x1" / "small" / "hero-v1.png"
    with WatchThread(project) as w:
        watched = {r.job.output: r.job.key for r in results(w.built())}
    with Image.open(hero) as image:
        small = image.size
    assert noop.check(str(project)) is None
    built = run_subprocess("build", project, "--json")
    assert built.code == 0, built.err
    report = json.loads(built.out)
    assert report["generated"] == len(watched) == 5
    assert not {job["key"] for job in report["jobs"]} & set(watched.values())
    with Image.open(hero) as image:
        full = image.size
    assert small == tuple(max(16, round(side * WATCH_PREVIEW_SCALE / 16) * 16)
                          for side in full) != full
