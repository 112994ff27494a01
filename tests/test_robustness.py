"""Nothing lost, nothing leaked: kill -9, Ctrl-C, two builds at once, secrets, unsafe paths."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from .conftest import SIMPLE_TEMPLATE, build_file_tree, sigint_default, tree_snapshot
from .fakes.aimlapi import FakeAimlapi
from .fakes.server import FakeServer, Reply

SECRET = "sk-qwenbuild-SECRET-7f3a9c1e5b"
JOBS = 8

CAMPAIGN = """\
[campaign]
name = "robust"

[brand]
name = "Acme"

[providers.ai]
kind = "aimlapi"
concurrency = 2
max_retries = 0

[defaults]
template = "poster.j2"
aspects = ["1:1", "16:9"]
providers = ["ai"]

"""


def _campaign(tmp_path: Path, assets: int = JOBS // 2) -> Path:
    body = CAMPAIGN + "".join(
        f'[[assets]]\nid = "asset{i}"\n[assets.copy]\nheadline = "HEADLINE NUMBER {i}"\n\n'
        for i in range(assets))
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE, "campaign.toml": body})
    return tmp_path / "campaign.toml"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAimlapi]:
    app = FakeAimlapi(key=SECRET)
    with FakeServer(app) as server:
        monkeypatch.setenv("AIMLAPI_BASE_URL", server.url)
        monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
        yield app


def _posts(app: FakeAimlapi) -> int:
    return sum(1 for r in app.requests if r.method == "POST")


def _start(campaign: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "qwenbuild", "build", str(campaign), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
        preexec_fn=sigint_default)


def _wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _cache_entries(cache_dir: Path) -> dict[str, dict]:
    """Every complete cache entry, checked: its image opens, decodes and has the recorded hash."""
    import hashlib

    entries = {}
    for record_path in (cache_dir / "objects").rglob("*.json") if cache_dir.exists() else []:
        record = json.loads(record_path.read_text())
        image = record_path.with_suffix(".png")
        data = image.read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["sha256"]
        with Image.open(image) as img:
            img.load()
        entries[record["key"]] = record
    return entries


def test_kill_9_mid_build_keeps_every_image_received(tmp_path: Path, cache_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = _campaign(tmp_path)
    # Five images are answered (with some latency, so the kill lands at a random point of
    # the fourth or fifth); the other three wait, so the build cannot finish first.
    app = _GatedAimlapi(SECRET, free=5)
    app.latency = 0.2
    with FakeServer(app) as server:
        monkeypatch.setenv("AIMLAPI_BASE_URL", server.url)
        monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
        proc = _start(campaign)
        try:
            _wait_for(lambda: len(_cache_entries(cache_dir)) >= 3, timeout=60)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
        finally:
            app.gate.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        received = _cache_entries(cache_dir)
        assert 3 <= len(received) <= 5
        manifest = tmp_path / "out" / "manifest.json"
        if manifest.exists():  # written atomically: absent or whole, never half
            json.loads(manifest.read_text())

        app.latency = 0.0
        posts_before = _posts(app)
        rerun = subprocess.run([sys.executable, "-m", "qwenbuild", "build", str(campaign),
                                "--json"], capture_output=True, text=True, timeout=60)
        assert rerun.returncode == 0, rerun.stderr
        report = json.loads(rerun.stdout)
        # Only what had not been received is requested again; the rest from the cache.
        assert _posts(app) - posts_before == JOBS - len(received)
        assert report["cached"] == len(received)
        assert report["generated"] == JOBS - len(received)
        leftovers = [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".tmp")]
        assert leftovers == []
        assert len(json.loads(manifest.read_text())["outputs"]) == JOBS


def test_ctrl_c_keeps_what_finished_and_says_what_did_not(tmp_path: Path, cache_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    campaign = _campaign(tmp_path)
    # Two images are answered at once; the others wait, so the build is certainly still
    # running when Ctrl-C comes, however loaded the machine is.
    app = _GatedAimlapi(SECRET, free=2)
    with FakeServer(app) as server:
        monkeypatch.setenv("AIMLAPI_BASE_URL", server.url)
        monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
        proc = _start(campaign)
        try:
            _wait_for(lambda: len(_cache_entries(cache_dir)) >= 2, timeout=60)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            app.gate.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        received = _cache_entries(cache_dir)
        assert len(received) == 2
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())["outputs"]
        # Everything received is in the manifest and on disk; the message counts both sides.
        assert {e["key"] for e in manifest.values()} == set(received)
        assert f"interrupted: {len(received)} jobs finished and are kept, " \
               f"{JOBS - len(received)} did not finish" in err
        posts_before = _posts(app)
        rerun = subprocess.run([sys.executable, "-m", "qwenbuild", "build", str(campaign)],
                               capture_output=True, text=True, timeout=60)
        assert rerun.returncode == 0, rerun.stderr
        assert _posts(app) - posts_before == JOBS - len(received)


class _GatedAimlapi(FakeAimlapi):
    """Answers the first `free` generations at once and holds the others until `gate` is
    set: a build is then certainly running (it holds its output folder) for as long as a
    test needs, however loaded the machine."""

    def __init__(self, key: str, free: int = 0) -> None:
        super().__init__(key=key)
        self.gate = threading.Event()
        self.free = free

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if method == "POST":
            with self.lock:
                self.free -= 1
                held = self.free < 0
            if held:
                self.gate.wait(timeout=120)
        return super().route(method, path, headers, body)


def test_two_builds_at_once_the_second_says_so(tmp_path: Path, cache_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = _campaign(tmp_path)
    app = _GatedAimlapi(SECRET)
    with FakeServer(app) as server:
        monkeypatch.setenv("AIMLAPI_BASE_URL", server.url)
        monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
        first = _start(campaign)
        try:
            # The first build has sent a request, so it holds the folder, and it cannot
            # finish before the gate opens.
            _wait_for(lambda: _posts(app) >= 1, timeout=60)
            second = subprocess.run([sys.executable, "-m", "qwenbuild", "build", str(campaign)],
                                    capture_output=True, text=True, timeout=60)
        finally:
            app.gate.set()
        first.communicate(timeout=60)
    assert second.returncode == 2, second.stderr
    assert "another qwenbuild (pid" in second.stderr and "is building into" in second.stderr
    assert first.returncode == 0
    entries = _cache_entries(cache_dir)
    assert len(entries) == JOBS
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())["outputs"]
    assert len(manifest) == JOBS
    assert _posts(app) == JOBS  # the refused build sent nothing


def test_the_api_key_is_never_written(tmp_path: Path, fake: FakeAimlapi, cache_dir: Path,
                                      run) -> None:
    campaign = _campaign(tmp_path, assets=2)
    # One failure whose provider message echoes the key back, as some APIs do.
    fake.faults.append(("/v1/images", Reply(401, {
        "message": f"Invalid key {SECRET}", "path": "", "requestId": "r1", "statusCode": "401",
        "timestamp": "now"})))
    first = run("build", campaign, "-v", "--json")
    second = run("build", campaign, "-v")
    assert first.code == 1 and second.code == 0
    texts = [first.out, first.err, second.out, second.err]
    assert "[redacted]" in first.out + first.err
    files = {**tree_snapshot(tmp_path), **{f"cache/{k}": v for k, v in
                                           tree_snapshot(cache_dir).items()}}
    assert len(files) > 4
    for name, data in files.items():
        assert SECRET.encode() not in data, name
    for text in texts:
        assert SECRET not in text


def test_no_output_lands_outside_the_output_folder(tmp_path: Path, run) -> None:
    body = ('[campaign]\nname = "p"\n[brand]\nname = "B"\n'
            '[providers.tiny]\nkind = "preview"\nscale = 0.1\n'
            '[[assets]]\nid = "a"\ntemplate = "poster.j2"\naspects = ["1:1"]\n'
            'providers = ["tiny"]\n[assets.copy]\nheadline = "HI"\n')
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE, "campaign.toml": body})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "1x1").symlink_to(elsewhere, target_is_directory=True)
    result = run("build", tmp_path / "campaign.toml", "--json")
    assert result.code == 1
    (job,) = result.json()["jobs"]
    assert job["status"] == "failed" and "resolves outside" in job["error"]
    assert list(elsewhere.iterdir()) == []
