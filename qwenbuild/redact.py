"""Secrets never leave qwenbuild: one place that knows them and blanks them out.

A secret is
- the value of any environment variable whose name says it holds one (API keys, tokens,
  passwords, object-storage credentials: `*_API_KEY`, `*_TOKEN`, `*_SECRET*`, `AWS_*`...);
- the password of any URL's userinfo (`https://user:PASSWORD@host`);
- the value of a URL query parameter named like a credential (`key`, `api_key`, `token`,
  `access_token`, `signature`, `sig`, `X-Amz-Signature`, `X-Amz-Credential`,
  `X-Amz-Security-Token`, `X-Goog-Signature`, `password`, `client_secret`, ...);
- the credentials after `Bearer` or `Basic` in an Authorization value.

`redact(text)` replaces each with `[redacted]`. Every message built from what a provider
or a server answered goes through it (ProviderError does it on creation), the CLI's
logging handler runs every log record through it, and the CLI's stdout and stderr are
written through it (`redacted_output`, cli/__init__.py; the no-op fast path records
nothing it would change, noop.py), so a gateway that echoes the request (`key Bearer
sk-... accepted`) cannot put a key on the terminal, the review page or a file.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

REDACTED = "[redacted]"
#: Names of environment variables that hold secrets.
_SECRET_NAME = re.compile(r"(API_KEY|APIKEY|TOKEN|SECRET|PASSWORD|PASSWD|ACCESS_KEY_ID|"
                          r"SESSION_TOKEN|CREDENTIALS?)$|^(AWS|QWENBUILD)_.*(KEY|SECRET)",
                          re.IGNORECASE)
#: Shorter values would blank out ordinary words; real keys are longer.
MIN_SECRET = 8
#: `scheme://user:password@host`: the password part of a URL.
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/@\s:]*)(:[^/@\s]*)?@",
                       re.IGNORECASE)


def secrets_in_environment() -> list[str]:
    """The values of the environment's secret variables, longest first."""
    found = {value.strip() for name, value in os.environ.items()
             if _SECRET_NAME.search(name) and len(value.strip()) >= MIN_SECRET}
    return sorted(found, key=len, reverse=True)


#: A query parameter whose value is a credential: `?key=...`, `&X-Amz-Signature=...`.
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;](?:[\w.-]*[_.-])?(?:api[_-]?key|key|token|secret|signature|sig|"
    r"password|passwd|pwd|credentials?|auth|authorization|access[_-]?key(?:[_-]?id)?)=)"
    r"(?P<value>[^&#\s\"'<>]+)",
    re.IGNORECASE)
#: `Bearer <token>`, `Basic <base64>`: an Authorization value echoed back.
_AUTHORIZATION = re.compile(r"\b(?P<scheme>Bearer|Basic)(?P<sep>\s+)(?P<value>[\w.~+/=-]{8,})",
                            re.IGNORECASE)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every known secret (`secrets`, default: the environment's now), every
    URL password, every credential in a URL's query and every Authorization credential
    replaced by `[redacted]`."""
    if not text:
        return text
    for secret in secrets_in_environment() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "://" in text:
        text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user'] and REDACTED}@", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(lambda m: m["name"] + REDACTED, text)
    if "earer" in text or "asic" in text or "EARER" in text or "ASIC" in text:
        text = _AUTHORIZATION.sub(_authorization, text)
    return text


class RedactingStream:
    """A text stream (stdout, stderr) that writes through `redact`, with the environment's
    secrets as they were when it was made. Whole lines at a time: a secret cannot fall
    between two writes of one line. Everything else is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.secrets = secrets_in_environment()
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in text:
            done, sep, self._pending = self._pending.rpartition("\n")
            self.stream.write(redact(done + sep, self.secrets))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            self.stream.write(redact(pending, self.secrets))
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self.stream, name)


@contextlib.contextmanager
def redacted_output() -> Iterator[None]:
    """Everything printed meanwhile goes through `redact` (the CLI's stdout and stderr):
    provider text, paths, URLs, reports; whatever printed it."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(saved[0]), RedactingStream(saved[1])
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more to say
                pass
        sys.stdout, sys.stderr = saved


def _authorization(match: re.Match[str]) -> str:
    # A credential has digits, punctuation or mixed case; "Basic information" is prose.
    value = match["value"]
    token_like = (any(c.isdigit() or c in "=+/_-.~" for c in value)
                  or (any(c.isupper() for c in value[1:]) and any(c.islower() for c in value)))
    if not token_like:
        return match[0]
    return f"{match['scheme']}{match['sep']}{REDACTED}"
