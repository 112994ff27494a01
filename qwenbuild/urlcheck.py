"""Checking a provider base URL (from a campaign or `<KIND>_BASE_URL`) when the campaign
loads, and showing one in a message without its secrets.

A base URL must be http or https with a host, and carry no credentials (`user:pass@`: the
API key goes in the environment, and Basic auth would silently replace it), no query and
no fragment (paths are appended to it; a query often holds a token).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_BAD_CHARS = re.compile(r"[\x00-\x20\x7f\\<>\"`{}|^]")


def shown_url(url: str) -> str:
    """The URL without userinfo, query or fragment, for messages and logs."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        netloc = f"[redacted]@{host}" if "@" in parts.netloc else host
        query = "..." if parts.query else ""
        fragment = "..." if parts.fragment else ""
        shown = urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    except ValueError:
        shown = "(unparsable URL)"
    shown = _BAD_CHARS.sub(lambda m: f"\\x{ord(m.group()):02x}", shown)
    return shown if len(shown) <= 200 else shown[:197] + "..."


def base_url_problem(url: str) -> str | None:
    """Why `url` cannot be a provider base URL, or None. Never repeats a secret."""
    if not url:
        return "is empty"
    if len(url) > 2000:
        return "is longer than 2000 characters"
    if url != url.strip():
        return f"{shown_url(url.strip())!r} has spaces around it"
    if _BAD_CHARS.search(url):
        return f"{shown_url(url)!r} contains spaces, control characters or characters not " \
               "allowed in a URL"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    shown = shown_url(url)
    if parts.scheme.lower() not in ("http", "https"):
        return f"{shown!r} must start with https:// (or http:// for a local server)"
    if "@" in parts.netloc:
        return (f"{shown!r} contains credentials (user:password@); never put them in a URL: "
                "the API key goes in the provider's API key environment variable")
    if not parts.hostname:
        return f"{shown!r} has no host name"
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return f"{shown!r} has an invalid port"
    if parts.query or url.endswith("?"):
        return f"{shown!r} has a query (?...); a base URL takes none (a token in it would " \
               "be sent and logged with every request)"
    if parts.fragment or "#" in url:
        return f"{shown!r} has a fragment (#...); a base URL takes none"
    try:
        import httpx

        httpx.URL(url)
    except Exception as exc:  # httpx.InvalidURL, and IDNA errors for odd host names
        return f"{shown!r} is not a valid URL ({type(exc).__name__})"
    return None
