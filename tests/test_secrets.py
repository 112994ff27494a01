"""The secret scan: builds that go through every path where a provider's text, a URL or a
credential could leak, then a grep of every file written (outputs, manifest, review page,
cache) and of everything printed, for each recognisable fake secret.

The paths: a 2xx answer that is not JSON and echoes the key (and a cache credential); a 401
that echoes them; a 5xx HTML page that echoes them, retried until the retries run out; a
download URL signed in its query (`X-Amz-Signature`, `token`), answered and failing; a
base URL with a password in it; all with `-v` (which logs every request and retry) and
`--json`, in-process and as a real process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwenbuild.redact import REDACTED, redact

from .conftest import SIMPLE_TEMPLATE, build_file_tree, tree_snapshot
from .fakes.aimlapi import FakeAimlapi
from .fakes.server import FakeServer, Reply

KEY = "sk-qwenbuild-SCAN-1f2e3d4c5b6a"
CACHE_SECRET = "aws-SCAN-cachesecret-9a8b7c6d5e"   # a remote-cache credential
PASSWORD = "pw-SCAN-7c6b5a4d3e2f"                   # in a base URL
SIGNATURE = "sigSCAN0a1b2c3d4e5f6a7b"               # in a signed download URL
QUERY_TOKEN = "tokSCAN5e4d3c2b1a0f"                 # in a download URL's query
SECRETS = (KEY, CACHE_SECRET, PASSWORD, SIGNATURE, QUERY_TOKEN)

ASSETS = {
    "fine": "ALL IS WELL",
    "echo2xx": "ECHOED ON SUCCESS",
    "echo401": "ECHOED ON REFUSAL",
    "echo5xx": "ECHOED ON FAILURE",
    "signed": "SIGNED DOWNLOAD",
    "signed404": "SIGNED AND MISSING",
}


def _campaign(root: Path, base_url: str | None = None) -> Path:
    provider = '[providers.ai]\nkind = "aimlapi"\nmax_retries = 2\n'
    if base_url:
        provider += f'base_url = "{base_url}"\n'
    body = ('[campaign]\nname = "scan"\n[brand]\nname = "Acme"\n' + provider
            + '[defaults]\ntemplate = "poster.j2"\naspects = ["1:1"]\nproviders = ["ai"]\n'
            + "".join(f'\n[[assets]]\nid = "{asset}"\n[assets.copy]\nheadline = "{text}"\n'
                      for asset, text in ASSETS.items()))
    build_file_tree(root, {"templates/poster.j2": SIMPLE_TEMPLATE, "campaign.toml": body})
    return root / "campaign.toml"


def _ok(app: FakeAimlapi, url: str) -> Reply:
    return Reply(200, {"created": 1, "data": [{"url": url}],
                       "meta": {"usage": {"usd_spent": 0.0455}}})


def _script(app: FakeAimlapi) -> None:
    """The failure paths, once each, for the next build."""
    echoed = f"request accepted: Authorization Bearer {KEY}; cache {CACHE_SECRET}"
    signed = app.add_file(f"signed.png?X-Amz-Signature={SIGNATURE}&token={QUERY_TOKEN}",
                          app.png(1440, 1440))
    app.prompt_faults.extend([
        ("ECHOED ON SUCCESS", Reply(200, f"gateway: {echoed}".encode(),
                                    {"Content-Type": "text/plain"})),
        ("ECHOED ON REFUSAL", Reply(401, {"message": f"Invalid key {KEY} ({echoed})",
                                          "statusCode": "401"})),
        *[("ECHOED ON FAILURE", Reply(502, f"<html><body>{echoed}</body></html>".encode(),
                                      {"Content-Type": "text/html"}))] * 3,
        ("SIGNED DOWNLOAD", _ok(app, signed)),
        *[("SIGNED AND MISSING", _ok(app, f"{app.base_url}/files/gone.png?"
                                          f"X-Amz-Signature={SIGNATURE}&key={QUERY_TOKEN}"))]
        * 3,
    ])


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAimlapi]:
    app = FakeAimlapi(key=KEY)
    with FakeServer(app) as server:
        monkeypatch.setenv("AIMLAPI_BASE_URL", server.url)
        monkeypatch.setenv("AIMLAPI_API_KEY", KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CACHE_SECRET)
        yield app


def _leaks(texts: dict[str, str | bytes]) -> list[tuple[str, str]]:
    found = []
    for where, text in texts.items():
        data = text.encode() if isinstance(text, str) else text
        found += [(where, secret) for secret in SECRETS if secret.encode() in data]
    return found


def test_no_secret_reaches_a_file_or_the_terminal(tmp_path: Path, fake: FakeAimlapi,
                                                  cache_dir: Path, run) -> None:
    campaign = _campaign(tmp_path / "repo")
    printed: dict[str, str] = {}

    _script(fake)
    first = run("build", campaign, "-v", "--json")
    assert first.code == 1, first.err
    printed |= {"build -v --json (stdout)": first.out, "build -v --json (stderr)": first.err}
    jobs = {j["asset"]: j for j in first.json()["jobs"]}
    assert jobs["fine"]["status"] == jobs["signed"]["status"] == "generated"
    for failed in ("echo2xx", "echo401", "echo5xx", "signed404"):
        assert jobs[failed]["status"] == "failed", jobs[failed]
    assert REDACTED in jobs["echo2xx"]["error"] and REDACTED in jobs["echo401"]["error"]

    # Again, as a real process (its own stdout and stderr, logging configured anew).
    _script(fake)
    proc = subprocess.run([sys.executable, "-m", "qwenbuild", "-v", "build", str(campaign)],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    printed |= {"process (stdout)": proc.stdout, "process (stderr)": proc.stderr}
    assert "HTTP Request: POST" in proc.stderr  # -v logged the requests, redacted

    for command in (("plan", campaign, "-v"), ("plan", campaign, "--json"),
                    ("providers", "-v")):
        result = run(*command)
        printed |= {f"{' '.join(map(str, command))} ({k})": v
                    for k, v in (("stdout", result.out), ("stderr", result.err))}

    # A base URL with credentials: refused or not, its password goes nowhere.
    other = _campaign(tmp_path / "other", base_url=fake.base_url.replace(
        "http://", f"http://scanner:{PASSWORD}@"))
    for args in (("build", other, "-v"), ("build", other, "--json"), ("plan", other, "-v")):
        result = run(*args)
        printed |= {f"{' '.join(map(str, args))} ({k})": v
                    for k, v in (("stdout", result.out), ("stderr", result.err))}

    files: dict[str, str | bytes] = {  # every file but the inputs (the campaign files)
        **{f"repo/{k}": v for k, v in tree_snapshot(tmp_path).items()
           if not k.endswith("campaign.toml")},
        **{f"cache/{k}": v for k, v in tree_snapshot(cache_dir).items()}}
    assert "repo/repo/out/index.html" in files and "repo/repo/out/manifest.json" in files
    assert any(name.startswith("cache/objects/") for name in files)
    assert _leaks({**printed, **files}) == []
    assert any(REDACTED in text for text in printed.values())


@pytest.mark.parametrize(("text", "shown"), [
    ("GET https://bucket.s3.amazonaws.com/x.png?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA1"
     "&X-Amz-Signature=abc123&X-Amz-Security-Token=zz9 failed",
     "GET https://bucket.s3.amazonaws.com/x.png?X-Amz-Algorithm=AWS4&X-Amz-Credential="
     f"{REDACTED}&X-Amz-Signature={REDACTED}&X-Amz-Security-Token={REDACTED} failed"),
    ("https://storage.googleapis.com/b/o?X-Goog-Signature=f00&alt=media",
     f"https://storage.googleapis.com/b/o?X-Goog-Signature={REDACTED}&alt=media"),
    ("http://h/i.png?key=K1&api_key=K2&apiKey=K3&access_token=T&sig=S&keyword=kept&v=2",
     f"http://h/i.png?key={REDACTED}&api_key={REDACTED}&apiKey={REDACTED}&access_token="
     f"{REDACTED}&sig={REDACTED}&keyword=kept&v=2"),
    ("https://user:hunter2hunter2@api.example/v1", f"https://{REDACTED}@api.example/v1"),
    ("Authorization: Bearer abc.def-123456", f"Authorization: Bearer {REDACTED}"),
    ("Basic dXNlcjpwYXNzd29yZA==", f"Basic {REDACTED}"),
    ("a basic question about the bearer of news", "a basic question about the bearer of news"),
])
def test_urls_and_authorization_values_are_redacted(text: str, shown: str) -> None:
    assert redact(text, secrets=[]) == shown
