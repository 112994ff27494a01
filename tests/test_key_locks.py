"""One payer per key among the builds sharing one local cache (issue 16, "Paying twice"):
two terminals, a watch and a build, two campaigns sharing jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwenbuild.store import ClaimState, Store

from .conftest import SIMPLE_TEMPLATE, build_file_tree
from .fakes.aimlapi import FakeAimlapi
from .fakes.server import FakeServer

SECRET = "sk-keylocks-SECRET-41c7e2a9d0"


def shared_campaign(folder: Path, assets: int, concurrency: int = 4) -> Path:
    """A campaign of `assets` x 2 aspects on the fake AI/ML API. Two copies in two folders
    have equal jobs (equal keys) and different output folders."""
    body = (
        '[campaign]\nname = "shared"\n\n[brand]\nname = "Acme"\n\n'
        f'[providers.ai]\nkind = "aimlapi"\nconcurrency = {concurrency}\nmax_retries = 0\n\n'
        '[defaults]\ntemplate = "poster.j2"\naspects = ["1:1", "16:9"]\nproviders = ["ai"]\n\n'
        + "".join(f'[[assets]]\nid = "asset{i}"\n[assets.copy]\nheadline = "HEADLINE {i}"\n\n'
                  for i in range(assets)))
    build_file_tree(folder, {"templates/poster.j2": SIMPLE_TEMPLATE, "campaign.toml": body})
    return folder / "campaign.toml"


@pytest.fixture
def slow_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAimlapi]:
    app = FakeAimlapi(key=SECRET)
    app.latency = 0.25
    with FakeServer(app) as server:
        monkeypatch.setenv("AIMLAPI_BASE_URL", server.url)
        monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
        yield app


def generations(app: FakeAimlapi) -> int:
    return sum(1 for r in app.requests if r.method == "POST")


def start_build(campaign: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "qwenbuild", "build", str(campaign), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})})


def finish(proc: subprocess.Popen[str]) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert SECRET not in out + err
    return json.loads(out)


def test_two_builds_on_one_cache_pay_once_per_image(tmp_path: Path,
                                                    slow_fake: FakeAimlapi) -> None:
    """Two real builds at once, one cache, two campaigns with the same 30 jobs: 30
    generation requests, not 60; every image paid once, restored by the other build."""
    first = shared_campaign(tmp_path / "a", assets=15)
    second = shared_campaign(tmp_path / "b", assets=15)
    procs = [start_build(first), start_build(second)]
    reports = [finish(p) for p in procs]
    assert generations(slow_fake) == 30
    assert sum(r["generated"] for r in reports) == 30
    assert all(r["generated"] + r["cached"] == 30 and not r["failed"] for r in reports)
    manifests = [json.loads((c.parent / "out" / "manifest.json").read_text())["outputs"]
                 for c in (first, second)]
    assert {k: v["key"] for k, v in manifests[0].items()} == \
        {k: v["key"] for k, v in manifests[1].items()}


def test_equal_keys_in_one_build_are_paid_once(tmp_path: Path,
                                              slow_fake: FakeAimlapi) -> None:
    """Two providers of one kind and model make the same image: one request per key."""
    campaign = shared_campaign(tmp_path, assets=3)
    text = campaign.read_text()
    text = text.replace('[defaults]', '[providers.again]\nkind = "aimlapi"\n\n[defaults]')
    campaign.write_text(text.replace('providers = ["ai"]', 'providers = ["ai", "again"]'))
    proc = start_build(campaign)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert generations(slow_fake) == 6
    assert (report["generated"], report["cached"]) == (6, 6)
    # The second job waits for the first in this build, not for a lease of "another build".
    assert "another build" not in out + err

    # --regenerate pays again, once per key too.
    proc = subprocess.Popen(
        [sys.executable, "-m", "qwenbuild", "build", str(campaign), "--json", "--regenerate"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    again = finish(proc)
    assert generations(slow_fake) == 12
    assert (again["generated"], again["cached"]) == (6, 6)


def test_a_key_lock_is_held_by_one_process_and_freed_when_it_ends(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    key = "ab" * 32
    mine = store.claim(key, "png", ttl=60)
    assert mine.state == ClaimState.MINE
    # Another process on this machine finds it busy, and names the holder.
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from qwenbuild.store import Store; "
         "c = Store(Path(sys.argv[1])).claim(sys.argv[2], 'png', ttl=60); "
         "print(c.state, c.holder)", str(tmp_path / "cache"), key],
        capture_output=True, text=True, check=True)
    assert probe.stdout.split()[0] == "busy"
    assert str(os.getpid()) in probe.stdout
    store.release(mine)
    again = store.claim(key, "png", ttl=60)
    assert again.state == ClaimState.MINE
    store.release(again)
