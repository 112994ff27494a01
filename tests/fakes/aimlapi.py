"""A strict fake of AI/ML API's `POST /v1/images/generations` for Qwen-Image 2.0.

It follows the OpenAPI schema of the provider's qwen-image-2.0 page: unknown properties,
out-of-range values and wrong types are refused with the documented error envelope
`{"message", "path", "requestId", "statusCode" (a string), "timestamp"}`, so a body that
passes here is one the schema allows. Successful answers carry a real PNG of the size
asked for, served from `/files/<id>.png` (or inline as `b64_json`), and `meta.usage`.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import threading
import time
from collections import deque
from typing import Any

from .server import FakeApp, Reply, derived_image, png_bytes, source_bytes

GENERATIONS = "/v1/images/generations"
FAKE_KEY = "aiml-test-key-7c1f0e2b9d"

#: usd_spent per image by model, from the documented example answers (2.0 on the page
#: beside PROTOCOLS.md, Pro on AI/ML API's own Pro page).
PRICES: dict[str, float] = {
    "alibaba/qwen-image-2-0": 0.0455,
    "alibaba/qwen-image-2-0-pro": 0.0975,
}
#: credits_used per USD in the documented example (91000 credits for $0.0455).
CREDITS_PER_USD = 2_000_000

#: The string presets of `image_size`, at the sizes fal-style presets stand for.
PRESETS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}

PROPERTIES = frozenset({"model", "prompt", "image_urls", "image_size", "enhance_prompt",
                        "negative_prompt", "seed", "watermark"})
MAX_SEED = 2147483647
_URL = re.compile(r"^https?://[^\s/]+\S*$")
_DATA_URI = re.compile(r"^data:image/[a-z0-9.+-]+;base64,(?P<data>[A-Za-z0-9+/=]+)$")
#: Request ids of the error envelopes, unique per process.
_request_ids = itertools.count(1)


class BadRequest(Exception):
    """A schema violation: becomes a 400 with the documented envelope."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def envelope(status: int, message: Any, path: str | None = None) -> dict[str, Any]:
    """The documented error body (statusCode is a string)."""
    body: dict[str, Any] = {
        "message": message,
        "requestId": f"req-{next(_request_ids):06d}",
        "statusCode": str(status),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
    }
    if path is not None:
        body["path"] = path
    return body


def error_reply(status: int, message: Any, path: str | None = None,
                headers: dict[str, str] | None = None) -> Reply:
    """A scripted error answer, for `app.faults` or `app.prompt_faults`."""
    return Reply(status, envelope(status, message, path), dict(headers or {}))


def html_page_reply(status: int = 502) -> Reply:
    """What a proxy in front of the API answers when it breaks: an HTML page, not JSON."""
    page = (f"<html><head><title>{status} Bad Gateway</title></head><body><center><h1>"
            f"{status} Bad Gateway</h1></center><hr><center>nginx</center></body></html>")
    return Reply(status, page.encode(), {"Content-Type": "text/html"})


class FakeAimlapi(FakeApp):
    """The fake API. Knobs (set them on the instance before a build):

    - `faults` (from FakeApp): scripted replies for the next requests to a path prefix;
    - `prompt_faults`: scripted replies for the next valid requests whose prompt contains
      a given text (to make one job of a build fail while the others succeed);
    - `latency`: seconds every API answer waits;
    - `b64`: answer with `b64_json` instead of a URL;
    - `corrupt`: the image bytes are a truncated PNG;
    - `empty_data`: answer `"data": []`;
    - `missing_file`: answer a URL that answers 404.
    """

    generation_path = GENERATIONS

    def __init__(self, key: str = FAKE_KEY) -> None:
        super().__init__()
        self.key = key
        self.prompt_faults: deque[tuple[str, Reply]] = deque()
        self.b64 = False
        self.corrupt = False
        self.empty_data = False
        self.missing_file = False
        self._pngs: dict[tuple[int, int], bytes] = {}
        self._png_lock = threading.Lock()
        self._ids = itertools.count(1)

    # -- what tests read --------------------------------------------------------------------

    def generations(self) -> list[dict[str, Any]]:
        """The JSON bodies of every POST to the generation endpoint, in order."""
        return [r.json() for r in self.requests
                if r.method == "POST" and r.path == GENERATIONS]

    def downloads(self) -> list[str]:
        return [r.path for r in self.requests if r.method == "GET"]

    def error_reply(self, status: int, message: str,
                    headers: dict[str, str] | None = None) -> Reply:
        return error_reply(status, message, headers=headers)

    def empty_answer(self) -> Reply:
        return Reply(200, {"created": 1, "data": [], "meta": {}})

    # -- the route --------------------------------------------------------------------------

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if path != GENERATIONS:
            return error_reply(404, f"Cannot {method} {path}")
        if method != "POST":
            return error_reply(404, f"Cannot {method} {path}")
        if headers.get("authorization") != f"Bearer {self.key}":
            return error_reply(401, "Unauthorized: invalid or missing API key")
        if not headers.get("content-type", "").startswith("application/json"):
            return error_reply(400, "Content-Type must be application/json")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return error_reply(400, "Body is not valid JSON")
        try:
            width, height = check_body(data)
        except BadRequest as exc:
            return error_reply(400, exc.message, exc.path)
        with self.lock:
            for i, (text, reply) in enumerate(self.prompt_faults):
                if text in data["prompt"]:
                    del self.prompt_faults[i]
                    return reply
        sources = [source_bytes(u) for u in data.get("image_urls", [])]
        return self._success(data["model"], width, height, data["prompt"], sources)

    def _success(self, model: str, width: int, height: int, prompt: str = "",
                 sources: list[bytes] | None = None) -> Reply:
        usd = PRICES[model]
        answer: dict[str, Any] = {"created": int(time.time() * 1000), "data": []}
        if self.report_cost:
            answer["meta"] = {"usage": {"credits_used": round(usd * CREDITS_PER_USD),
                                        "usd_spent": usd}}
        if not self.empty_data:
            # An edit (image_urls) is derived from its inputs; a generation is not.
            image = derived_image(width, height, sources) if sources else self.png(width,
                                                                                    height)
            if self.corrupt or self.corrupts(prompt):
                image = image[: len(image) // 2]
            name = f"{int(time.time() * 1000)}-{next(self._ids):04d}.png"
            if self.b64:
                answer["data"] = [{"b64_json": base64.b64encode(image).decode("ascii")}]
            elif self.missing_file:
                answer["data"] = [{"url": f"{self.base_url}/files/{name}"}]
            else:
                answer["data"] = [{"url": self.add_file(name, image)}]
        return Reply(200, answer)

    def png(self, width: int, height: int) -> bytes:
        """A real PNG of exactly width x height, made once per size."""
        with self._png_lock:
            if (width, height) not in self._pngs:
                self._pngs[(width, height)] = png_bytes(width, height, (30, 120, 160))
            return self._pngs[(width, height)]


def check_body(data: Any) -> tuple[int, int]:
    """Check a request body against the schema; return the size to render.

    Raises BadRequest with the property path of the first violation.
    """
    if not isinstance(data, dict):
        raise BadRequest("body must be an object", "")
    for name in data:
        if name not in PROPERTIES:
            raise BadRequest(f"property {name} should not exist", name)
    model = data.get("model")
    if model not in PRICES:
        raise BadRequest(f"model must be one of the following values: {', '.join(PRICES)}",
                         "model")
    if "prompt" not in data:
        raise BadRequest("prompt is required", "prompt")
    prompt = data["prompt"]
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string", "prompt")
    if len(prompt) > 2000:
        raise BadRequest("prompt must be shorter than or equal to 2000 characters", "prompt")
    if "negative_prompt" in data:
        negative = data["negative_prompt"]
        if not isinstance(negative, str):
            raise BadRequest("negative_prompt must be a string", "negative_prompt")
        if len(negative) > 500:
            raise BadRequest("negative_prompt must be shorter than or equal to 500 characters",
                             "negative_prompt")
    size = _check_size(data.get("image_size", "landscape_4_3"))
    if "image_urls" in data:
        _check_image_urls(data["image_urls"])
    if "seed" in data:
        seed = data["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise BadRequest("seed must be an integer number", "seed")
        if not 0 <= seed <= MAX_SEED:
            raise BadRequest(f"seed must be between 0 and {MAX_SEED}", "seed")
    for flag in ("enhance_prompt", "watermark"):
        if flag in data and not isinstance(data[flag], bool):
            raise BadRequest(f"{flag} must be a boolean value", flag)
    return size


def _check_size(size: Any) -> tuple[int, int]:
    if isinstance(size, str):
        if size not in PRESETS:
            raise BadRequest(f"image_size must be one of the following values: "
                             f"{', '.join(PRESETS)}", "image_size")
        return PRESETS[size]
    if not isinstance(size, dict):
        raise BadRequest("image_size must be an object or a string", "image_size")
    for name in size:
        if name not in ("width", "height"):
            raise BadRequest(f"property {name} should not exist", f"image_size.{name}")
    sides = []
    for name in ("width", "height"):
        value = size.get(name)
        where = f"image_size.{name}"
        if value is None:
            raise BadRequest(f"{name} is required", where)
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadRequest(f"{name} must be an integer number", where)
        if not 512 <= value <= 1440:
            raise BadRequest(f"{name} must be between 512 and 1440", where)
        if value % 32:
            raise BadRequest(f"{name} must be a multiple of 32", where)
        sides.append(value)
    return sides[0], sides[1]


def _check_image_urls(urls: Any) -> None:
    if not isinstance(urls, list):
        raise BadRequest("image_urls must be an array", "image_urls")
    if not 1 <= len(urls) <= 3:
        raise BadRequest("image_urls must contain between 1 and 3 elements", "image_urls")
    for i, url in enumerate(urls):
        where = f"image_urls.{i}"
        if not isinstance(url, str):
            raise BadRequest("each value in image_urls must be a string", where)
        match = _DATA_URI.match(url)
        if match:
            try:
                base64.b64decode(match["data"], validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("each value in image_urls must be a URL or a base64 image",
                                 where) from None
        elif not _URL.match(url):
            raise BadRequest("each value in image_urls must be a URL or a base64 image", where)


__all__ = ["FAKE_KEY", "GENERATIONS", "PRICES", "FakeAimlapi", "check_body", "envelope",
           "error_reply", "html_page_reply"]
