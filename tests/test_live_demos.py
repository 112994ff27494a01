"""The demo projects' real-provider campaigns (live.toml), built against all three fakes at
once: five models, several aspects, providers running side by side, a rerun sends nothing."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from qwenbuild.campaign import load_campaign
from qwenbuild.plan import plan

from .conftest import REPO, run_subprocess
from .fakes import aimlapi, empiriolabs, runware
from .fakes.server import FakeServer

LIVE = sorted((REPO / "projects").glob("*/live.toml"))


def test_every_demo_project_has_a_live_campaign() -> None:
    demos = {p.parent.name for p in (REPO / "projects").glob("*/campaign.toml")}
    assert {p.parent.name for p in LIVE} >= demos - {"kyoto-spring"}
    assert len(LIVE) >= 2


@pytest.mark.parametrize("path", LIVE, ids=[p.parent.name for p in LIVE])
def test_live_campaigns_plan_within_every_providers_rules(path: Path) -> None:
    the_plan = plan(load_campaign(path))  # raises on anything a provider would refuse
    assert {job.kind for job in the_plan.jobs} == {"runware", "aimlapi", "empiriolabs"}


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    apps = {"RUNWARE": runware.FakeRunware(), "AIMLAPI": aimlapi.FakeAimlapi(),
            "EMPIRIOLABS": empiriolabs.FakeEmpiriolabs()}
    keys = {"RUNWARE": runware.FAKE_KEY, "AIMLAPI": aimlapi.FAKE_KEY,
            "EMPIRIOLABS": empiriolabs.FAKE_API_KEY}
    servers = [FakeServer(app) for app in apps.values()]
    for (name, _), server in zip(apps.items(), servers, strict=True):
        server.__enter__()
        # Runware's base URL is the endpoint itself (https://api.runware.ai/v1).
        suffix = runware.API_PATH if name == "RUNWARE" else ""
        monkeypatch.setenv(f"{name}_BASE_URL", server.url + suffix)
        monkeypatch.setenv(f"{name}_API_KEY", keys[name])
    try:
        yield apps
    finally:
        for server in servers:
            server.__exit__(None, None, None)


def _api_calls(apps: dict[str, object]) -> int:
    return sum(len(app.api_requests()) for app in apps.values())  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", [p.parent.name for p in LIVE])
def test_live_campaign_builds_against_the_fakes(name: str, tmp_path: Path,
                                                fakes: dict[str, object]) -> None:
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / ".git").mkdir()  # a copy of the repository: templates stay inside it
    shutil.copytree(REPO / "projects" / name, tmp_path / "projects" / name,
                    ignore=shutil.ignore_patterns("out", "out-live"))
    campaign = tmp_path / "projects" / name / "live.toml"
    started = time.monotonic()
    result = run_subprocess("build", campaign, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["failed"] == 0 and report["generated"] == len(report["jobs"])
    assert report["cost_usd"] > 0
    manifest = json.loads((campaign.parent / "out-live" / "manifest.json").read_text())
    kinds = {entry["kind"] for entry in manifest["outputs"].values()}
    assert kinds == {"runware", "aimlapi", "empiriolabs"}
    for rel, entry in manifest["outputs"].items():
        with Image.open(campaign.parent / "out-live" / rel) as img:
            assert img.size == (entry["width"], entry["height"])
    print(f"{name}: {len(report['jobs'])} jobs on 3 fakes in {time.monotonic() - started:.2f}s")

    calls = _api_calls(fakes)
    again = json.loads(run_subprocess("build", campaign, "--json").out)
    assert again["up_to_date"] == len(report["jobs"])
    assert _api_calls(fakes) == calls  # a rerun sends no request at all
