"""A real HTTP server on 127.0.0.1 for provider tests, in a thread.

A fake provider subclasses `FakeApp` and implements `route()`; the server records every
request (method, path, headers, JSON body) so tests can compare them field by field with
the provider's documentation. Scripted faults (`app.faults`) make the next answers fail.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes/str -> raw
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    #: Close the connection without answering (a reset).
    drop: bool = False


def png_bytes(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40),
              fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, fmt)
    return buf.getvalue()


@dataclass
class _Scripted:
    part: bytes
    reply: Reply
    times: int | None


def source_bytes(value: str) -> bytes:
    """The bytes of an input image as a request carries it: a data URI or bare base64 is
    decoded, anything else (a URL, a UUID) stands for itself."""
    import base64
    import binascii

    data = value.partition(",")[2] if value.startswith("data:") else value
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return value.encode()


def derived_color(sources: list[bytes]) -> tuple[int, int, int]:
    """The colour of an image the fakes derive from input images (an edit): a function of
    their bytes, so a test can tell an edit of these inputs from a fresh generation."""
    import hashlib

    digest = hashlib.sha256(b"\0".join(sources)).digest()
    return digest[0], digest[1], digest[2]


def derived_image(width: int, height: int, sources: list[bytes], fmt: str = "PNG") -> bytes:
    """An image derived from input images: coloured by `derived_color`, and (PNG) with a
    text chunk `derived-from` holding the sha256 of each input, in order."""
    import hashlib

    from PIL import PngImagePlugin

    buf = io.BytesIO()
    image = Image.new("RGB", (width, height), derived_color(sources))
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("derived-from", ",".join(hashlib.sha256(s).hexdigest() for s in sources))
        image.save(buf, fmt, pnginfo=info)
    else:
        image.save(buf, fmt)
    return buf.getvalue()


class FakeApp:
    """Base of a fake provider: records requests, serves files, replays scripted faults.

    The knobs every fake shares (the provider-contract suite drives all fakes through them):
    `faults` (by path prefix), `reply_when` (to generation requests holding a text),
    `corrupt_when` (image bytes that are no image), `report_cost`, and the helpers
    `generations_for`, `error_reply` and `empty_answer` that each fake implements in its
    provider's own wire format.
    """

    #: The path of the generation endpoint (requests there may be scripted by `reply_when`).
    generation_path = "/"

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.files: dict[str, tuple[bytes, str]] = {}
        #: Replies used (FIFO) before route() for matching paths: (path prefix, Reply).
        self.faults: deque[tuple[str, Reply]] = deque()
        self.scripted: list[_Scripted] = []
        self.base_url = ""
        self.lock = threading.Lock()
        self.latency = 0.0
        #: Serve bytes that are no image for generations whose prompt holds this text.
        self.corrupt_when: str | None = None
        #: Whether answers say what the image cost.
        self.report_cost = True

    def reply_when(self, part: str, reply: Reply, times: int | None = 1) -> None:
        """Answer `reply` to the next `times` generation requests (None: all) whose body
        holds `part`, before the fake looks at them."""
        with self.lock:
            self.scripted.append(_Scripted(part.encode(), reply, times))

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        with self.lock:
            self.requests.append(Recorded(method, path, headers, body))
            for i, (prefix, reply) in enumerate(self.faults):
                if path.startswith(prefix):
                    del self.faults[i]
                    return reply
            if method == "POST" and path == self.generation_path:
                for i, scripted in enumerate(self.scripted):
                    if scripted.part in body and self._is_generation(body):
                        if scripted.times is not None:
                            scripted.times -= 1
                            if scripted.times <= 0:
                                del self.scripted[i]
                        return scripted.reply
        if method == "GET" and path.startswith("/files/"):
            name = path[len("/files/"):]
            if name not in self.files:
                return Reply(404, b"not found", {"Content-Type": "text/plain"})
            data, ctype = self.files[name]
            return Reply(200, data, {"Content-Type": ctype})
        if self.latency:
            time.sleep(self.latency)
        return self.route(method, path, headers, body)

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        return Reply(404, {"error": "no route"})

    def _is_generation(self, body: bytes) -> bool:
        """Whether a POST body to `generation_path` asks for a new image (not a poll)."""
        return True

    def corrupts(self, prompt: str) -> bool:
        return self.corrupt_when is not None and self.corrupt_when in prompt

    # -- what every fake implements in its own wire format --------------------------------

    def generations_for(self, part: str = "") -> int:
        """How many generation requests (not polls, not downloads) held `part`."""
        return sum(1 for r in self.requests
                   if r.method == "POST" and r.path == self.generation_path
                   and part.encode() in r.body and self._is_generation(r.body))

    def error_reply(self, status: int, message: str,
                    headers: dict[str, str] | None = None) -> Reply:
        """An error answer in the provider's documented envelope."""
        raise NotImplementedError

    def empty_answer(self) -> Reply:
        """A 2xx JSON answer to a generation that holds no image (nor anything to poll)."""
        raise NotImplementedError

    def add_file(self, name: str, data: bytes, ctype: str = "image/png") -> str:
        self.files[name] = (data, ctype)
        return f"{self.base_url}/files/{name}"

    def api_requests(self) -> list[Recorded]:
        return [r for r in self.requests if not r.path.startswith("/files/")]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK add ~40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True
    app: FakeApp

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.app.handle(self.command, self.path, headers, body)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if isinstance(reply.body, dict | list):
            data = json.dumps(reply.body).encode()
            ctype = "application/json"
        elif isinstance(reply.body, str):
            data, ctype = reply.body.encode(), "text/plain"
        else:
            data, ctype = reply.body or b"", "application/octet-stream"
        self.send_response(reply.status)
        hdrs = {"Content-Type": ctype, **reply.headers}
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 makes a burst of new connections wait for SYN retries.
    request_queue_size = 128


class FakeServer:
    """Run a FakeApp on 127.0.0.1 in a background thread (a context manager)."""

    def __init__(self, app: FakeApp) -> None:
        handler = type("Handler", (_Handler,), {"app": app})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.app = app
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        app.base_url = self.url
        # A short poll interval makes shutdown() quick (the default waits up to 0.5 s).
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
