"""Secrets never leave qwenbuild: one place that knows them and blanks them out.

A secret is the value of any environment variable whose name says it holds one (API keys,
tokens, passwords, object-storage credentials), and the password of any URL's userinfo.
`redact(text)` replaces each with `[redacted]`. Every message built from what a provider
or a server answered goes through it (ProviderError does it on creation), and the CLI's
logging handler runs every log record through it, so a gateway that echoes the request
(`key Bearer sk-... accepted`) cannot put a key on the terminal, the review page or a file.
"""

from __future__ import annotations

import os
import re

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


def redact(text: str) -> str:
    """`text` with every known secret and every URL password replaced by `[redacted]`."""
    if not text:
        return text
    for secret in secrets_in_environment():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user'] and REDACTED}@", text)
