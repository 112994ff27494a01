"""The live-reload server of `qwenbuild watch`, like `mkdocs serve`'s.

It serves the output folder (the review page and the images) on 127.0.0.1 only, and one
Server-Sent Events stream, `/__qwenbuild/events`, that tells open pages when a rebuild has
finished ("reload") or failed ("build-error", with the message). Pages never poll.

The page file on disk knows nothing of this server: when serving an HTML file the server
injects `window.__QWENBUILD_LIVE__ = {"server": ..., "build": N}`, the build the page
belongs to. A page connects with that number, so a rebuild that finished between loading
the page and connecting is not missed: the server answers "reload" at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import secrets
import sys
import threading
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import UsageError

log = logging.getLogger(__name__)

EVENTS_PATH = "/__qwenbuild/events"
#: A comment line this often keeps idle streams open and finds clients that went away.
KEEPALIVE_S = 15.0
#: How long a disconnected page waits before reconnecting (EventSource's `retry`).
RETRY_MS = 2000
_LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@dataclass(frozen=True)
class LiveSnapshot:
    """What open pages need to know, at one moment."""

    version: int = 0  # bumped by every change below, so waiters can tell what is new
    build: int = 0  # the number of finished builds (each wrote the page)
    building: bool = False
    error: str | None = None  # the error of the last rebuild, when it failed
    error_id: int = 0
    closed: bool = False


class LiveState:
    """The state of the builds, shared between the watch loop and the event streams."""

    def __init__(self) -> None:
        #: Changes with every `qwenbuild watch` process, so a page left open across a
        #: restart of watch reloads when it reconnects.
        self.server_id = secrets.token_hex(6)
        self._cond = threading.Condition()
        self._snap = LiveSnapshot()

    def snapshot(self) -> LiveSnapshot:
        with self._cond:
            return self._snap

    def _change(self, **changes: Any) -> None:
        with self._cond:
            self._snap = replace(self._snap, version=self._snap.version + 1, **changes)
            self._cond.notify_all()

    def rebuilding(self) -> None:
        self._change(building=True)

    def built(self) -> None:
        """A build finished and wrote the page: pages reload."""
        self._change(build=self._snap.build + 1, building=False, error=None)

    def failed(self, message: str) -> None:
        """A rebuild failed before building anything: pages show the message."""
        self._change(building=False, error=message, error_id=self._snap.error_id + 1)

    def close(self) -> None:
        self._change(closed=True)

    def wait(self, version: int, timeout: float) -> LiveSnapshot:
        """The state once it differs from `version`, or as it is after `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self._snap.version != version, timeout)
            return self._snap


class LiveServer:
    """A small threaded HTTP server for the output folder and the live-reload events."""

    def __init__(self, state: LiveState, port: int = 8000, host: str = "127.0.0.1") -> None:
        try:
            self.httpd = _HTTPServer((host, port), _Handler)
        except OSError as exc:
            raise UsageError(f"--port {port}: cannot listen on {host}:{port}: "
                             f"{exc.strerror or exc}; choose another port with --port N "
                             "(--port 0 picks a free one)") from None
        self.httpd.state = state
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def set_root(self, out: Path, title: str) -> None:
        """Serve this output folder (the campaign may move it when edited)."""
        self.httpd.root = out.resolve()
        self.httpd.title = title

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={
            "poll_interval": 0.1}, name="qwenbuild-serve", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close every event stream, stop serving and free the port."""
        self.httpd.state.close()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
        self.httpd.server_close()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # an open event stream must never keep the process alive
    state: LiveState
    root: Path | None = None
    title: str = "qwenbuild"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A request that failed: a browser that went away (a closed tab, a reload, a
        cancelled image) is ordinary and says nothing; anything else is one log line,
        with the traceback only with -v (socketserver would print a traceback each time)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("%s went away: %s", client_address[0], exc)
            return
        log.warning("review page server: a request from %s failed: %s: %s", client_address[0],
                    type(exc).__name__, exc)
        log.debug("the failed request", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "qwenbuild"

    def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        self._respond(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(head=True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        log.debug("%s %s", self.address_string(), format % args)

    def _respond(self, head: bool) -> None:
        # A page from another origin could reach 127.0.0.1 through DNS rebinding: only
        # answer requests addressed to this machine by name or address.
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in _LOCAL_HOSTS:
            self.send_error(HTTPStatus.FORBIDDEN, "unexpected Host header")
            return
        url = urlsplit(self.path)
        if url.path == EVENTS_PATH:
            if head:
                self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)
            else:
                self._events(parse_qs(url.query))
            return
        # Read before the file, never after: a page may be labelled older than it is
        # (costing one extra reload), never newer (missing one).
        build = self.server.state.snapshot().build
        status, file = self._resolve(url.path)
        if status == HTTPStatus.OK and file is None:
            self._send(_placeholder(self.server.title), "text/html; charset=utf-8", head,
                       live=build)
        elif status != HTTPStatus.OK or file is None:
            self.send_error(status)
        else:
            try:
                data = file.read_bytes()
            except OSError:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind == "application/json":
                kind += "; charset=utf-8"
            html = kind.startswith("text/html")
            self._send(data, kind, head, live=build if html else None,
                       immutable=not html and _hash_matches(data, parse_qs(url.query)))

    def _resolve(self, raw: str) -> tuple[HTTPStatus, Path | None]:
        """The file a URL path names, refusing anything outside the output folder.

        (OK, None) asks for the placeholder page: the root before a first good build.
        """
        root = self.server.root
        parts = [p for p in unquote(raw).split("/") if p not in ("", ".")]
        if any(p == ".." or "\\" in p or "\x00" in p for p in parts):
            return HTTPStatus.FORBIDDEN, None
        if root is None:
            return (HTTPStatus.OK, None) if not parts else (HTTPStatus.NOT_FOUND, None)
        # Hidden names include the atomic writes' temporary files, never meant to be seen.
        if any(p.startswith(".") for p in parts):
            return HTTPStatus.NOT_FOUND, None
        path = root.joinpath(*parts).resolve()  # resolves symlinks too
        if not path.is_relative_to(root):
            return HTTPStatus.FORBIDDEN, None
        if path.is_dir():
            path = path / "index.html"
            if not path.is_file() and path.parent == root:
                return HTTPStatus.OK, None
        if not path.is_file():
            return HTTPStatus.NOT_FOUND, None
        return HTTPStatus.OK, path

    def _send(self, data: bytes, kind: str, head: bool, live: int | None,
              immutable: bool = False) -> None:
        """Send a file; an HTML page (`live` is its build number) gets the live hook."""
        if live is not None:
            data = _inject(data, self.server.state.server_id, live)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        # Outputs keep their names when rebuilt, so only an image asked for by its content
        # hash (`?v=`, as the page does) may be kept: a reload then fetches only new images.
        self.send_header("Cache-Control", "max-age=31536000, immutable" if immutable
                         else "no-store" if live is not None else "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _events(self, query: dict[str, list[str]]) -> None:
        state = self.server.state
        try:
            client_build = int(query.get("build", ["-1"])[0])
        except ValueError:
            client_build = -1
        client_server = query.get("server", [""])[0]
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            self._write(f"retry: {RETRY_MS}\n\n")
            snap = state.snapshot()
            if client_server != state.server_id or client_build != snap.build:
                # The page is older than the last build (or from an earlier watch).
                self._event("reload", {"build": snap.build})
                return
            if snap.error:
                self._event("build-error", {"message": snap.error})
            if snap.building:
                self._event("building", {})
            sent = snap
            while True:
                snap = state.wait(sent.version, KEEPALIVE_S)
                if snap.closed:
                    return
                if snap.version == sent.version:
                    self._write(": keep-alive\n\n")
                    continue
                if snap.build != client_build:
                    self._event("reload", {"build": snap.build})
                    return
                if snap.error and snap.error_id != sent.error_id:
                    self._event("build-error", {"message": snap.error})
                if snap.building and not sent.building:
                    self._event("building", {})
                sent = snap
        except ConnectionError:
            return  # the page went away

    def _event(self, name: str, data: dict[str, Any]) -> None:
        # json.dumps never writes a newline, so the data is one `data:` line.
        self._write(f"event: {name}\ndata: {json.dumps(data)}\n\n")

    def _write(self, text: str) -> None:
        self.wfile.write(text.encode("utf-8"))
        self.wfile.flush()


def _hash_matches(data: bytes, query: dict[str, list[str]]) -> bool:
    """Whether the URL's `?v=` names these bytes (checked: mid-build, a file may already
    hold a newer image than the page that asks for it)."""
    version = query.get("v", [""])[0]
    return len(version) >= 12 and hashlib.sha256(data).hexdigest().startswith(version)


def _inject(page: bytes, server_id: str, build: int) -> bytes:
    """The page with the live-reload hook: which server and build it belongs to."""
    info = json.dumps({"server": server_id, "build": build})
    hook = f"<script>window.__QWENBUILD_LIVE__ = {info};</script>\n".encode()
    head, sep, rest = page.partition(b"</head>")
    return head + hook + sep + rest if sep else hook + page


def _placeholder(title: str) -> bytes:
    from . import empty_data, render_page

    return render_page(empty_data(title))
