"""The review page's server: recording decisions (only for a page of this server, with
the session's token), the decisions fresh from the file, and the "before" images."""

from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qwenbuild.cli import main
from qwenbuild.review.actions import ReviewTarget
from qwenbuild.review.server import DECIDE_PATH, TOKEN_HEADER, LiveServer, LiveState

from .test_watch import EventStream, live_info

STORY = "9x16/small/story.png"


@pytest.fixture
def server(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LiveServer, Path]]:
    monkeypatch.setenv("QWENBUILD_REVIEWER", "Ana Lima")
    assert main(["build", str(project)]) == 0
    target = ReviewTarget.of(project)
    live = LiveServer(LiveState(), port=0)
    live.set_root(target.out, target.name)
    live.set_review(target, "Ana Lima")
    live.start()
    yield live, project
    live.stop()


def _port(live: LiveServer) -> int:
    return int(live.httpd.server_address[1])


def _request(live: LiveServer, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    port = _port(live)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, body=body, headers={"Host": f"127.0.0.1:{port}",
                                                       **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _decide(live: LiveServer, payload: dict[str, Any], **override: str | None
            ) -> tuple[int, dict[str, Any]]:
    port = _port(live)
    headers = {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}",
               TOKEN_HEADER: live.httpd.token}
    for name, value in override.items():
        key = {"origin": "Origin", "content_type": "Content-Type", "token": TOKEN_HEADER,
               "host": "Host"}[name]
        if value is None:
            headers.pop(key, None)
        else:
            headers[key] = value
    status, _, body = _request(live, "POST", DECIDE_PATH, json.dumps(payload).encode(),
                               headers)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"raw": body.decode(errors="replace")}


def _sha(project: Path, rel: str) -> str:
    return hashlib.sha256((project.parent / "out" / rel).read_bytes()).hexdigest()


def test_a_page_of_this_server_records_a_decision(server: Any) -> None:
    live, project = server
    seen = _sha(project, STORY)[:12]
    status, body = _decide(live, {"output": STORY, "action": "approve", "seen": seen,
                                  "comment": "Good"})
    assert status == 200, body
    assert body == {"ok": True, "output": STORY, "status": "approved", "promoted_from": None}
    saved = tomllib.loads((project.parent / "review.toml").read_text())["outputs"][STORY]
    assert saved["decision"] == "approved" and saved["by"] == "Ana Lima"
    assert saved["sha256"] == _sha(project, STORY)
    assert saved["comments"][0]["text"] == "Good"
    # The page learns it from the decisions script, fresh from the file.
    status, headers, script = _request(live, "GET", "/review/decisions.js")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert b'"decision":"approved"' in script


def test_requests_from_anywhere_else_are_refused(server: Any) -> None:
    live, project = server
    payload = {"output": STORY, "action": "approve"}
    port = _port(live)
    for override, why in (
        ({"token": None}, "token"),
        ({"token": "guessed"}, "token"),
        ({"origin": None}, "Origin"),
        ({"origin": "https://evil.example"}, "Origin"),
        ({"origin": f"http://127.0.0.1:{port + 1}"}, "Origin"),
        ({"content_type": "text/plain"}, "JSON"),
        ({"content_type": "application/x-www-form-urlencoded"}, "JSON"),
    ):
        status, body = _decide(live, payload, **override)
        assert status == 403 and why in body["error"], (override, body)
    status, _ = _decide(live, payload, host=f"attacker.example:{port}")  # DNS rebinding
    assert status == 403
    # No CORS preflight is ever answered, so no other site may send the header or JSON.
    status, headers, _ = _request(live, "OPTIONS", DECIDE_PATH, headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert status >= 400 and "Access-Control-Allow-Origin" not in headers
    assert not (project.parent / "review.toml").exists()


def test_bad_and_stale_decisions_say_why_and_write_nothing(server: Any) -> None:
    live, project = server
    status, body = _decide(live, {"output": STORY, "action": "approve", "seen": "0" * 12})
    assert status == 409 and "another image than the one shown" in body["error"]
    status, body = _decide(live, {"output": "1x1/small/none.png", "action": "approve"})
    assert status == 400 and "not an output" in body["error"]
    status, body = _decide(live, {"output": STORY, "action": "bless"})
    assert status == 400 and "unknown action" in body["error"]
    status, body = _decide(live, {"output": STORY})
    assert status == 400
    status, _, _ = _request(live, "POST", DECIDE_PATH, b"x" * (70 * 1024), {
        "Content-Type": "application/json", "Origin": f"http://127.0.0.1:{_port(live)}",
        TOKEN_HEADER: live.httpd.token})
    assert status == 400
    assert not (project.parent / "review.toml").exists()


def test_the_page_gets_the_token_and_hears_of_decisions(server: Any) -> None:
    live, project = server
    status, _, page = _request(live, "GET", "/")
    info = live_info(page)
    assert info["token"] == live.httpd.token and info["reviewer"] == "Ana Lima"
    assert info["review"] == 0
    stream = EventStream(_port(live), f"server={info['server']}&build=0&review=0")
    try:
        # A decision made in a terminal (not through this server) reaches the page too.
        assert main(["reject", str(project.parent / "out" / STORY)]) == 0
        assert stream.next()[0] == "review"
    finally:
        stream.close()


def test_before_is_the_image_in_git_head_else_the_previous_build(server: Any) -> None:
    live, project = server
    root = project.parent
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    committed = (root / "out" / STORY).read_bytes()
    status, _, body = _request(live, "GET", f"/__qwenbuild/before?output={STORY}")
    assert status == 404 and "unchanged since the last commit" in json.loads(body)["error"]
    project.write_text(project.read_text().replace("SECOND STORY", "NEW STORY"))
    previous_key = json.loads((root / "out/manifest.json").read_text())["outputs"][STORY]["key"]
    assert main(["build", str(project)]) == 0
    status, headers, body = _request(live, "GET", f"/__qwenbuild/before?output={STORY}")
    assert status == 200 and body == committed
    assert headers["X-Qwenbuild-Before"] == "git HEAD"
    # Committed again: HEAD holds the new image; the previous build's is in the store.
    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", "commit",
                    "-qam", "y"], cwd=root, check=True, capture_output=True)
    status, headers, body = _request(
        live, "GET", f"/__qwenbuild/before?output={STORY}&key={previous_key}")
    assert status == 200 and headers["X-Qwenbuild-Before"] == "the previous build"
    assert body.startswith(b"\x89PNG") and body != (root / "out" / STORY).read_bytes()
    for bad in ("../campaign.toml", "%2e%2e/campaign.toml", ".qwenbuild/x.png"):
        status, _, body = _request(live, "GET", f"/__qwenbuild/before?output={bad}")
        assert status in (403, 404) and b"[campaign]" not in body


def test_before_a_first_build_the_page_says_so(tmp_path: Path) -> None:
    """`qwenbuild review` on a campaign never built: a placeholder page, no error."""
    campaign = tmp_path / "campaign.toml"
    campaign.write_text('[campaign]\nname = "fresh"\n')
    target = ReviewTarget.of(campaign)
    assert not target.out.exists()
    live = LiveServer(LiveState(), port=0)
    live.set_root(target.out, target.name)
    live.set_review(target, "Ana Lima", follow_builds=True)
    live.start()
    try:
        status, _, page = _request(live, "GET", "/")
        assert status == 200 and b"No outputs yet" in page
        assert live_info(page)["token"] == live.httpd.token
    finally:
        live.stop()
