"""OpenAI-style image answers, shared by the providers that speak them (AI/ML API,
EmpirioLabs): `{"created": ..., "data": [{"url": ...} | {"b64_json": ...}]}`.

Parsing is lenient about nesting (a job's `result` may wrap the same list, a bare list of
items, one item, `{"images": [...]}` or a bare URL) and strict about the image itself:
anything without a usable `url` or `b64_json` is a `no_image` ProviderError, never retried
(the provider has answered and may have charged).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ProviderError


def first_image(answer: Any) -> tuple[str, bool]:
    """The first image of an answer as (value, is_url): a URL to download, or base64 / a
    data URI to decode."""
    item = answer
    for _ in range(4):  # unwrap {"data": [...]} / {"images": [...]} / [item, ...]
        if isinstance(item, Mapping):
            inner = item.get("data", item.get("images"))
            if inner is None:
                break
            item = inner
        elif isinstance(item, list):
            if not item:
                raise ProviderError("the answer holds no image (an empty list of images)",
                                    code="no_image")
            item = item[0]
        else:
            break
    if isinstance(item, str) and item:
        return item, item.startswith(("http://", "https://"))
    if isinstance(item, Mapping):
        url, b64 = item.get("url"), item.get("b64_json")
        if isinstance(url, str) and url:
            return url, True
        if isinstance(b64, str) and b64:
            return b64, False
    shown = f"keys {keys_of(item)}" if isinstance(item, Mapping) else type(item).__name__
    raise ProviderError("the answer holds no image (expected data[0].url or "
                        f"data[0].b64_json; found {shown})", code="no_image")


def keys_of(value: Mapping[str, Any]) -> str:
    """The first keys of an object, for messages about an answer of unexpected shape."""
    return ", ".join(sorted(str(k) for k in value)[:12]) or "none"
