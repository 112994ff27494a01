"""The local server of `qwenbuild watch` and `qwenbuild review`, like `mkdocs serve`'s.

It serves the output folder (the review page and the images) on 127.0.0.1 only, and one
Server-Sent Events stream, `/__qwenbuild/events`, that tells open pages when a rebuild has
finished ("reload"), failed ("build-error", with the message) or a decision was recorded
("review": the page reads the decisions again). Pages never poll.

The page file on disk knows nothing of this server: when serving an HTML file the server
injects `window.__QWENBUILD_LIVE__ = {"server", "build", "review", "token", "reviewer",
"watching"}`, the build and review version the page belongs to. A page connects with those,
so a rebuild or decision between loading the page and connecting is not missed.

With a review target (`set_review`), the server also records decisions:

- `POST /__qwenbuild/api/decide` `{"output", "action", "comment", "seen"}` (review/actions.py)
  needs the session's token (a header, `X-Qwenbuild-Token`), an `Origin` of this server and
  a JSON body: another site's page can send none of the three (a custom header and a JSON
  body need a CORS preflight, which this server never answers), and the Host check stops
  DNS rebinding. The review file is written atomically under its lock.
- `GET /review/decisions.js`: the review file as the page reads it, fresh on every request
  (a decision made in a terminal shows at the next reload).
- `GET /__qwenbuild/before?output=...&key=...`: the image the output held before
  (review/compare.py), for the page's before/after view.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import secrets
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import InputError, LockError, QwenbuildError, UsageError

if TYPE_CHECKING:
    from .actions import ReviewTarget

log = logging.getLogger(__name__)

EVENTS_PATH = "/__qwenbuild/events"
DECIDE_PATH = "/__qwenbuild/api/decide"
BEFORE_PATH = "/__qwenbuild/before"
DECISIONS_PATH = "/review/decisions.js"
TOKEN_HEADER = "X-Qwenbuild-Token"
#: Largest request body accepted (a decision with a long comment is a few KB).
MAX_BODY = 64 * 1024
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
    review: int = 0  # bumped by every decision recorded (pages read the decisions again)


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

    def reviewed(self) -> None:
        """The review file changed: pages read the decisions again."""
        self._change(review=self._snap.review + 1)

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
        #: Sent to pages in the live hook; a decision must carry it (per server session).
        self.httpd.token = secrets.token_urlsafe(24)
        self._thread: threading.Thread | None = None
        self._follower: _Follower | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def set_root(self, out: Path, title: str) -> None:
        """Serve this output folder (the campaign may move it when edited)."""
        self.httpd.root = out.resolve()
        self.httpd.title = title

    def set_review(self, target: ReviewTarget, reviewer: str,
                   follow_builds: bool = False) -> None:
        """Record decisions in `target`'s review file, as `reviewer`. Changes of the review
        file made elsewhere (a terminal, git) reach open pages; with `follow_builds`
        (`qwenbuild review`, which builds nothing), so do builds made elsewhere."""
        self.httpd.target = target
        self.httpd.reviewer = reviewer
        self.httpd.watching = not follow_builds
        if self._follower is not None and self._follower.key == (target, follow_builds):
            return
        if self._follower is not None:
            self._follower.stop()
        state = self.httpd.state
        paths: dict[Path, Callable[[], None]] = {target.review_path: state.reviewed}
        if follow_builds:
            paths[target.out / "review" / "index.js"] = state.built
        self._follower = _Follower(paths, (target, follow_builds))

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={
            "poll_interval": 0.1}, name="qwenbuild-serve", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close every event stream, stop serving and free the port."""
        if self._follower is not None:
            self._follower.stop()
        self.httpd.state.close()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
        self.httpd.server_close()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # an open event stream must never keep the process alive
    state: LiveState
    token: str
    root: Path | None = None
    title: str = "qwenbuild"
    target: ReviewTarget | None = None
    reviewer: str = ""
    watching: bool = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A page that reloads or closes mid-answer is no error worth a traceback (the
        base prints one on stderr for every such request)."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):  # broken pipe, reset
            return
        log.warning("error answering %s", client_address[0], exc_info=True)


class _Follower:
    """Calls back when one of a few files changes (by content), from watchfiles threads:
    the review file edited elsewhere, the page rewritten by a build elsewhere. Each file
    is watched through its folder alone (not recursively: a campaign may sit at the top
    of a large repository), or through its nearest existing parent until it exists."""

    def __init__(self, paths: dict[Path, Callable[[], None]], key: Any) -> None:
        self.paths = {p.resolve(): call for p, call in paths.items()}
        self.key = key
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._seen = {p: _digest(p) for p in self.paths}
        self._threads = [threading.Thread(target=self._run, args=(path,), daemon=True,
                                          name=f"qwenbuild-follow:{path.name}")
                         for path in self.paths]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self, path: Path) -> None:
        import watchfiles

        folder, recursive = path.parent, False
        while not folder.is_dir() and folder != folder.parent:
            folder, recursive = folder.parent, True
        try:
            for _changes in watchfiles.watch(folder, debounce=100, step=50,
                                             stop_event=self._stop, raise_interrupt=False,
                                             recursive=recursive,
                                             watch_filter=lambda _c, p: Path(p) == path):
                digest = _digest(path)
                with self._lock:
                    changed = digest != self._seen.get(path)
                    self._seen[path] = digest
                if changed:
                    self.paths[path]()
        except Exception as exc:  # the folder vanished, or the OS ran out of watches
            log.warning("stopped following %s: %s", path, exc)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None

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

    def do_POST(self) -> None:  # noqa: N802
        if not self._local_host():
            return
        url = urlsplit(self.path)
        if url.path != DECIDE_PATH:
            self._json(HTTPStatus.NOT_FOUND, {"error": "no such endpoint"})
            return
        problem = self._refusal()
        if problem is not None:
            self._json(HTTPStatus.FORBIDDEN, {"error": problem})
            return
        target = self.server.target
        if target is None:
            self._json(HTTPStatus.CONFLICT, {"error": "this server records no decisions"})
            return
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "a JSON body of at most 64 KB"})
            return
        try:
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict):
                raise ValueError("not an object")
            output, action = body["output"], body["action"]
            comment, seen = body.get("comment"), body.get("seen")
            if not all(isinstance(v, str) for v in (output, action)) or not all(
                    v is None or isinstance(v, str) for v in (comment, seen)):
                raise ValueError("output and action are strings")
        except (ValueError, KeyError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"bad request: {exc}"})
            return
        from .actions import StaleImage, decide

        try:
            outcome = decide(target, output, action, self.server.reviewer, comment=comment,
                             seen=seen or None)
        except StaleImage as exc:
            self._json(HTTPStatus.CONFLICT, {"error": str(exc)})
            return
        except LockError as exc:
            self._json(HTTPStatus.CONFLICT, {"error": f"{exc} (a build is running; try "
                                                      "again when it ends)"})
            return
        except InputError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        except QwenbuildError as exc:
            self._json(HTTPStatus.CONFLICT, {"error": str(exc)})
            return
        state = self.server.state
        if outcome.promoted_from is not None:
            _refresh_page(target)
            state.built()  # the page's data changed: every page reloads
        state.reviewed()
        self._json(HTTPStatus.OK, {"ok": True, "output": outcome.output,
                                   "status": outcome.status,
                                   "promoted_from": outcome.promoted_from})

    def _refusal(self) -> str | None:
        """Why a write request is refused: it must come from a page of this server."""
        host, port = self.server.server_address[:2]
        origin = self.headers.get("Origin") or ""
        allowed = {f"http://{name}:{port}" for name in (*_LOCAL_HOSTS, str(host))}
        if origin not in allowed:
            return "cross-site request refused (Origin)"
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            return "a JSON body is required"
        token = self.headers.get(TOKEN_HEADER) or ""
        if not secrets.compare_digest(token.encode(), self.server.token.encode()):
            return "missing or wrong session token (reload the page)"
        return None

    def _local_host(self) -> bool:
        # A page from another origin could reach 127.0.0.1 through DNS rebinding: only
        # answer requests addressed to this machine by name or address.
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in _LOCAL_HOSTS:
            self.send_error(HTTPStatus.FORBIDDEN, "unexpected Host header")
            return False
        return True

    def _json(self, status: HTTPStatus, data: dict[str, Any]) -> None:
        payload = json.dumps(data, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        log.debug("%s %s", self.address_string(), format % args)

    def _respond(self, head: bool) -> None:
        if not self._local_host():
            return
        url = urlsplit(self.path)
        if url.path == EVENTS_PATH:
            if head:
                self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)
            else:
                self._events(parse_qs(url.query))
            return
        target = self.server.target
        if url.path == BEFORE_PATH:
            self._before(parse_qs(url.query), head)
            return
        if url.path == DECISIONS_PATH and target is not None:
            from .decisions import ReviewFile
            from .page import decisions_script

            try:
                data = decisions_script(ReviewFile.load(target.review_path))
            except InputError as exc:  # a hand edit broke it: say so on the page
                log.warning("%s", exc)
                data = b"window.__qb_decisions({});\n"
            self._send(data, "text/javascript; charset=utf-8", head, live=None,
                       no_store=True)
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
        if path.is_dir() or (path == root and not parts):
            path = path / "index.html"
            if not path.is_file() and path.parent == root:
                return HTTPStatus.OK, None  # no page yet (`review` before a first build)
        if not path.is_file():
            return HTTPStatus.NOT_FOUND, None
        return HTTPStatus.OK, path

    def _send(self, data: bytes, kind: str, head: bool, live: int | None,
              immutable: bool = False, no_store: bool = False,
              extra: dict[str, str] | None = None) -> None:
        """Send a file; an HTML page (`live` is its build number) gets the live hook."""
        if live is not None:
            data = _inject(data, self._hook(live))
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        # Outputs keep their names when rebuilt, so only an image asked for by its content
        # hash (`?v=`, as the page does) may be kept: a reload then fetches only new images.
        self.send_header("Cache-Control", "max-age=31536000, immutable" if immutable
                         else "no-store" if live is not None or no_store else "no-cache")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _hook(self, build: int) -> dict[str, Any]:
        """What the page learns of this server (see the module's docstring)."""
        info: dict[str, Any] = {"server": self.server.state.server_id, "build": build}
        if self.server.target is not None:
            info.update(review=self.server.state.snapshot().review, token=self.server.token,
                        reviewer=self.server.reviewer, watching=self.server.watching)
        return info

    def _before(self, query: dict[str, list[str]], head: bool) -> None:
        from ..store import Store
        from .compare import before_image

        root, target = self.server.root, self.server.target
        rel = query.get("output", [""])[0]
        parts = rel.split("/")
        if root is None or target is None or not rel or any(
                p in ("", ".", "..") or p.startswith(".") or "\\" in p for p in parts):
            self._json(HTTPStatus.NOT_FOUND, {"error": "no such output"})
            return
        if not (root / rel).resolve().is_relative_to(root):
            self._json(HTTPStatus.FORBIDDEN, {"error": "outside the output folder"})
            return
        found = before_image(root, rel, query.get("key", [""])[0] or None,
                             Store(target.cache))
        if found.data is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": found.source})
            return
        kind = mimetypes.guess_type(rel)[0] or "application/octet-stream"
        self._send(found.data, kind, head, live=None, no_store=True,
                   extra={"X-Qwenbuild-Before": found.source})

    def _events(self, query: dict[str, list[str]]) -> None:
        state = self.server.state
        try:
            client_build = int(query.get("build", ["-1"])[0])
        except ValueError:
            client_build = -1
        try:
            client_review = int(query.get("review", ["-1"])[0])
        except ValueError:
            client_review = -1
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
            if client_review >= 0 and client_review != snap.review:
                self._event("review", {"review": snap.review})
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
                if snap.review != sent.review:
                    self._event("review", {"review": snap.review})
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


def _inject(page: bytes, info: dict[str, Any]) -> bytes:
    """The page with the live-reload hook: which server and build it belongs to."""
    text = json.dumps(info, ensure_ascii=False).replace("<", "\\u003c")
    hook = f"<script>window.__QWENBUILD_LIVE__ = {text};</script>\n".encode()
    head, sep, rest = page.partition(b"</head>")
    return head + hook + sep + rest if sep else hook + page


def _placeholder(title: str) -> bytes:
    from .page import empty_page

    return empty_page(title)


def _refresh_page(target: ReviewTarget) -> None:
    """Write the page again after a candidate was promoted (its data changed)."""
    from .actions import refresh_page

    refresh_page(target)
