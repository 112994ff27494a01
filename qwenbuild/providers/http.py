"""What every HTTP provider shares: the client, auth, error mapping, downloads, payloads.

The retry *policy* (how long to wait) lives in qwenbuild/retry.py and the build decides
when a generation is tried again; this module classifies faults: a `ProviderError` says
whether it is worth retrying and what the server asked for with Retry-After. Faults that
happen *after* the provider has accepted (and may have charged for) a generation, such as
polling or downloading, are retried here, so that a retry never pays for the same image
twice.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import ProviderError
from ..retry import retry_delay, retry_scale
from .base import GenerationRequest, Provider, ProviderSpec, Reference, TaskUnknown

log = logging.getLogger(__name__)

#: Largest image we accept from a provider; anything bigger is refused while streaming.
MAX_IMAGE_BYTES = 64 * 1024 * 1024
#: Transient statuses: worth retrying with backoff.
TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Tries of a poll or download before the job fails (without generating again).
FETCH_TRIES = 4


class HttpProvider(Provider):
    """Base of the HTTP providers: one httpx.AsyncClient per provider per build.

    `transport` replaces httpx's network transport (an `httpx.MockTransport` in unit tests
    of a provider's mapping logic); None talks to the network.
    """

    #: Poll interval bounds (seconds) for asynchronous deliveries.
    poll_first: ClassVar[float] = 1.0
    poll_max: ClassVar[float] = 10.0
    poll_factor: ClassVar[float] = 1.5

    def __init__(self, spec: ProviderSpec, transport: Any = None) -> None:
        super().__init__(spec)
        self._transport = transport
        self._client: Any = None

    # -- configuration ----------------------------------------------------------------------

    @property
    def api_key_env(self) -> str:
        name = self.info.api_key_env
        assert name is not None, "an HTTP provider declares its key variable"
        return name

    @property
    def base_url(self) -> str:
        info = self.info
        url = (self.spec.base_url or (os.environ.get(info.base_url_env) if info.base_url_env
                                      else None) or info.default_base_url or "")
        return url.rstrip("/")

    def api_key(self) -> str:
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise ProviderError(f"{self.api_key_env} is not set: provider {self.spec.name} "
                                "needs an API key in the environment")
        return key

    @property
    def client(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(180.0, connect=15.0),
                limits=httpx.Limits(max_connections=max(4, self.spec.concurrency * 2)),
                follow_redirects=False,
                headers={"User-Agent": f"qwenbuild/{_version()}"},
                transport=self._transport,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- requests ---------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}"}

    async def request_json(self, method: str, url: str, body: Any = None) -> Any:
        """Send one request; return the decoded JSON body of a 2xx answer.

        Raises ProviderError: retryable for timeouts, connection errors, transient statuses
        and unreadable answers; not retryable for other 4xx (with the provider's message).
        """
        import httpx

        headers = {**self.auth_headers(), "Accept": "application/json"}
        try:
            if body is None:
                response = await self.client.request(method, url, headers=headers)
            else:
                response = await self.client.request(
                    method, url, headers={**headers, "Content-Type": "application/json"},
                    content=json.dumps(body, ensure_ascii=False).encode("utf-8"))
        except httpx.TimeoutException as exc:
            raise ProviderError(f"timeout talking to {self.spec.name} ({type(exc).__name__})",
                                code="timeout", retryable=True) from None
        except httpx.TransportError as exc:
            raise ProviderError(f"connection error: {exc or type(exc).__name__}",
                                code="connection", retryable=True) from None
        status = response.status_code
        payload = _json_or_none(response)
        if 200 <= status < 300:
            if payload is None:
                # A 2xx means the provider accepted (and likely charged for) the work: asking
                # again could pay twice, so the job fails and a rerun decides.
                raise ProviderError(f"unreadable answer: {_snippet(response)}",
                                    code="bad_response", status=status, retryable=False)
            return payload
        message, code = self.error_message(status, payload)
        if payload is None:
            message = _snippet(response)
        raise ProviderError(
            message,
            code=code,
            status=status,
            retryable=status in TRANSIENT,
            retry_after=retry_after(response.headers.get("Retry-After")),
        )

    def error_message(self, status: int, payload: Any) -> tuple[str, str | None]:
        """The provider's error envelope as (message, code). Subclasses know the shape."""
        return f"HTTP {status}", None

    async def with_fetch_retries(self, what: str, make: Any) -> Any:
        """Run `make()` (a poll or a download) up to FETCH_TRIES times on transient faults.
        Gives up with a non-retryable error: the generation itself must not be repeated.

        A poll or a download asks for nothing new, so asking again never pays twice: an
        answer that cannot be read (`bad_response`: malformed JSON, an HTML page, a JSON
        that is not an object) is retried here like a transient fault, where the same
        answer to a *generation* request fails the job at once."""
        for attempt in range(1, FETCH_TRIES + 1):
            try:
                return await make()
            except TaskUnknown:
                raise  # final, and the build must see it as such (it may generate again)
            except ProviderError as exc:
                again = exc.retryable or exc.code == "bad_response"
                if not again or attempt == FETCH_TRIES:
                    raise ProviderError(f"{what}: {exc.message}", code=exc.code,
                                        status=exc.status, retryable=False) from None
                log.info("%s: %s; asking again (%d/%d)", what, exc, attempt, FETCH_TRIES)
                await asyncio.sleep(retry_delay(attempt, exc.retry_after))
        raise AssertionError("unreachable")

    async def poll_until(self, what: str, poll: Any, deadline: float) -> Any:
        """Call `poll()` with backoff until it returns non-None or `deadline` passes."""
        delay = self.poll_first
        while True:
            await asyncio.sleep(delay * retry_scale())
            result = await self.with_fetch_retries(what, poll)
            if result is not None:
                return result
            if time.monotonic() >= deadline:
                raise ProviderError(f"{what}: not finished after {self.spec.timeout:g}s",
                                    code="timeout")
            delay = min(self.poll_max, delay * self.poll_factor)

    # -- results ----------------------------------------------------------------------------

    async def download(self, url: str) -> bytes:
        """Stream an image URL (http/https only, redirects checked) with a size cap."""
        data: bytes = await self.with_fetch_retries("download",
                                                    lambda: self._download_once(url))
        return data

    async def _download_once(self, url: str) -> bytes:
        import httpx

        for _ in range(5):
            scheme = httpx.URL(url).scheme
            if scheme not in ("http", "https"):
                raise ProviderError(f"refusing to download a {scheme or 'schemeless'} URL",
                                    code="bad_url")
            try:
                async with self.client.stream("GET", url) as response:
                    if response.status_code in (301, 302, 303, 307, 308):
                        url = str(response.url.join(response.headers.get("Location", "")))
                        continue
                    if response.status_code != 200:
                        raise ProviderError(
                            f"image URL answered HTTP {response.status_code}",
                            code="download", status=response.status_code,
                            retryable=response.status_code in TRANSIENT | {404},
                            retry_after=retry_after(response.headers.get("Retry-After")))
                    declared = response.headers.get("Content-Length")
                    if declared and declared.isdigit() and int(declared) > MAX_IMAGE_BYTES:
                        raise ProviderError(f"image is {int(declared)} bytes, over the "
                                            f"{MAX_IMAGE_BYTES} byte cap", code="too_large")
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_IMAGE_BYTES:
                            raise ProviderError(f"image is over the {MAX_IMAGE_BYTES} byte cap",
                                                code="too_large")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.TimeoutException:
                raise ProviderError("timeout downloading the image", code="timeout",
                                    retryable=True) from None
            except httpx.TransportError as exc:
                raise ProviderError(f"connection error downloading the image: {exc}",
                                    code="connection", retryable=True) from None
        raise ProviderError("too many redirects downloading the image", code="download")

    async def image_from(self, value: str | None, *, url: bool) -> bytes:
        """Image bytes from a URL (downloaded) or from base64 / a data URI (decoded)."""
        if not value:
            raise ProviderError("the answer holds no image", code="no_image")
        if url:
            return await self.download(value)
        return decode_base64_image(value)


def decode_base64_image(value: str) -> bytes:
    """Decode a data URI or bare base64 string; size-capped."""
    if value.startswith("data:"):
        header, _, value = value.partition(",")
        if ";base64" not in header:
            raise ProviderError("data URI is not base64", code="bad_image")
    if len(value) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise ProviderError(f"image is over the {MAX_IMAGE_BYTES} byte cap", code="too_large")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProviderError(f"invalid base64 image data: {exc}", code="bad_image") from None


def one_line(value: Any, limit: int = 300) -> str:
    """A provider's message field as one short line: lists joined, objects by their
    message (or `key=value` pairs), white space folded, cut at `limit` characters."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list | tuple):
        text = "; ".join(part for part in (one_line(v, limit) for v in value) if part)
    elif isinstance(value, Mapping):
        inner = value.get("message") or value.get("msg") or value.get("detail")
        text = one_line(inner, limit) if inner is not None else ", ".join(
            f"{k}={one_line(v, limit)}" for k, v in value.items())
    else:
        text = str(value)
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def number_at(payloads: Any, *paths: tuple[str, ...]) -> float | None:
    """The first finite, non-negative number found at one of `paths` (tried in order) in
    one of `payloads`: how reported costs are read, since each provider nests them."""
    for payload in payloads:
        for path in paths:
            value: Any = payload
            for name in path:
                value = value.get(name) if isinstance(value, Mapping) else None
            if (isinstance(value, int | float) and not isinstance(value, bool)
                    and math.isfinite(value) and value >= 0):
                return float(value)
    return None


def data_uri(ref: Reference) -> str:
    return f"data:{ref.media_type};base64,{base64.b64encode(ref.data).decode('ascii')}"


def retry_after(value: str | None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _snippet(response: Any) -> str:
    kind = response.headers.get("Content-Type", "no content type").split(";")[0]
    text = response.text.strip().replace("\n", " ")
    if "html" in kind:
        import re

        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        text = title.group(1).strip() if title else ""
    text = text[:160] + ("..." if len(text) > 160 else "")
    # No status here: ProviderError puts `HTTP <status>` in front of every message.
    return f"{kind} answer, not JSON" + (f": {text}" if text else "")


def new_task_uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def _version() -> str:
    from .. import __version__

    return __version__


__all__ = ["HttpProvider", "GenerationRequest", "data_uri", "decode_base64_image",
           "new_task_uuid", "number_at", "one_line", "retry_after"]
