"""Resumable provider tasks (issue 12, issue 16): an asynchronous task is recorded in the
store before it is waited for, so a build killed while waiting resumes that task on the
next run instead of paying for a new one. Real subprocess builds, killed with SIGKILL while
the fake holds the task in "processing"."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from qwenbuild.store import PendingTask, Store

from .conftest import build_file_tree
from .fakes import FakeProviders
from .fakes.empiriolabs import JobScript

TEMPLATE = 'A poster (asset-id={{ asset.id }};): "{{ copy.headline }}".\n'

#: kind -> (provider table lines, how to hold a task, how many generation requests so far,
#: how many polls so far, how to let the held task finish)
DELIVERIES: dict[str, dict[str, Any]] = {
    "runware": {
        "table": 'kind = "runware"\ndelivery = "async"\n',
        "hold": lambda fake: setattr(fake, "async_stuck_when", "asset-id=hero;"),
        "generations": lambda fake: len(fake.tasks()),
        "polls": lambda fake: len(fake.tasks("getResponse")),
        "finish": lambda fake: fake.finish_stuck(),
    },
    "empiriolabs": {
        "table": 'kind = "empiriolabs"\n',
        "hold": lambda fake: fake.script("asset-id=hero;", JobScript(never_finish=True)),
        "generations": lambda fake: len(fake.generations()),
        "polls": lambda fake: len(fake.polls()),
        "finish": lambda fake: fake.finish_all(),
    },
}


def write_campaign(root: Path, table: str) -> Path:
    build_file_tree(root, {"templates/poster.j2": TEMPLATE, "campaign.toml": (
        '[campaign]\nname = "resume"\n\n[copy]\nheadline = "HELLO"\n\n'
        '[defaults]\ntemplate = "poster.j2"\naspects = ["1:1"]\nseeds = [3]\n'
        f'providers = ["p"]\n\n[providers.p]\n{table}\n[[assets]]\nid = "hero"\n')})
    return root / "campaign.toml"


def wait_for(condition: Any, what: str, limit: float = 60.0) -> None:
    """Wait (bounded) until `condition()` holds; fail naming `what` otherwise."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("kind", sorted(DELIVERIES))
def test_a_build_killed_while_waiting_resumes_the_task_and_pays_nothing_more(
        kind: str, fake_providers: FakeProviders, tmp_path: Path, cache_dir: Path) -> None:
    fake = fake_providers[kind]
    how = DELIVERIES[kind]
    how["hold"](fake)
    campaign = write_campaign(tmp_path, how["table"])
    build = subprocess.Popen([sys.executable, "-m", "qwenbuild", "build", str(campaign)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=dict(os.environ))
    try:
        tasks = cache_dir / "tasks"
        # The task is recorded before it is waited for; kill once it is being polled.
        wait_for(lambda: tasks.is_dir() and any(tasks.iterdir()), "the task record")
        wait_for(lambda: how["polls"](fake) >= 1, "a poll")
        build.send_signal(signal.SIGKILL)
        build.wait(timeout=30)
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
    assert how["generations"](fake) == 1
    (record,) = [json.loads(p.read_text()) for p in tasks.iterdir()]
    assert record["kind"] == kind and record["ids"]
    assert not (tmp_path / "out" / "1x1" / "p" / "hero.png").exists()

    how["finish"](fake)
    polls = how["polls"](fake)
    rerun = subprocess.run([sys.executable, "-m", "qwenbuild", "build", str(campaign),
                            "--json"], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ))
    assert rerun.returncode == 0, rerun.stderr
    (job,) = json.loads(rerun.stdout)["jobs"]
    assert job["status"] == "generated"
    assert how["generations"](fake) == 1  # no second generation request: only polls
    assert how["polls"](fake) > polls
    assert (tmp_path / "out" / "1x1" / "p" / "hero.png").is_file()
    assert not any(tasks.iterdir())  # collected: nothing left to resume


def _record(cache_dir: Path, campaign: Path, run: Any, kind: str, ids: dict[str, str],
            submitted: float, retention: float) -> str:
    (job,) = run("plan", campaign, "--json").json()["jobs"]
    Store(cache_dir).record_task(job["key"], PendingTask(kind, ids, submitted, retention))
    return str(job["key"])


def test_a_task_the_provider_no_longer_knows_is_generated_again(
        fake_providers: FakeProviders, tmp_path: Path, cache_dir: Path, run: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_providers["runware"]
    campaign = write_campaign(tmp_path, DELIVERIES["runware"]["table"])
    key = _record(cache_dir, campaign, run, "runware",
                  {"taskUUID": "0f8fad5b-d9cb-469f-a165-70867728950e"}, time.time(), 3600)
    result = run("build", campaign, "--json")
    assert result.code == 0, result.err
    assert len(fake.tasks("getResponse")) >= 2  # the unknown one, then the new task's
    assert len(fake.tasks()) == 1
    assert "is gone" in caplog.text and "generating it again" in caplog.text
    assert Store(cache_dir).pending_task(key) is None


def test_a_task_past_the_providers_retention_is_not_asked_for(
        fake_providers: FakeProviders, tmp_path: Path, cache_dir: Path, run: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_providers["empiriolabs"]
    campaign = write_campaign(tmp_path, DELIVERIES["empiriolabs"]["table"])
    _record(cache_dir, campaign, run, "empiriolabs", {"job_id": "job_old"},
            time.time() - 7200, 3600)
    result = run("build", campaign, "--json")
    assert result.code == 0, result.err
    assert "/v1/jobs/job_old" not in fake.polls()
    assert len(fake.generations()) == 1
    assert "past empiriolabs's retention (1 h)" in caplog.text


def test_cache_gc_keeps_live_tasks_and_collects_expired_ones(cache_dir: Path) -> None:
    from qwenbuild.store import Liveness

    store = Store(cache_dir)
    store.record_task("a" * 64, PendingTask("runware", {"taskUUID": "x"}, time.time(), 3600))
    store.record_task("b" * 64, PendingTask("empiriolabs", {"job_id": "y"},
                                            time.time() - 7200, 3600))
    removed = [name for name, _ in store.gc(Liveness())]
    assert removed == [f"tasks/{'b' * 64}.json"]
    assert store.pending_task("a" * 64) is not None
    assert store.pending_task("b" * 64) is None
