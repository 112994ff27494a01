"""The demo projects' real-provider campaigns (live.toml), built against all three fakes at
once: five models, several aspects, providers running side by side, a rerun sends nothing."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from qwenbuild.campaign import load_campaign
from qwenbuild.plan import plan

from .conftest import REPO, run_subprocess
from .fakes import FakeProviders

LIVE = sorted((REPO / "projects").glob("*/live.toml"))


def test_every_demo_project_has_a_live_campaign() -> None:
    demos = {p.parent.name for p in (REPO / "projects").glob("*/campaign.toml")}
    assert {p.parent.name for p in LIVE} >= demos - {"kyoto-spring"}
    assert len(LIVE) >= 2


@pytest.mark.parametrize("path", LIVE, ids=[p.parent.name for p in LIVE])
def test_live_campaigns_plan_within_every_providers_rules(path: Path) -> None:
    the_plan = plan(load_campaign(path))  # raises on anything a provider would refuse
    assert {job.kind for job in the_plan.jobs} == {"runware", "aimlapi", "empiriolabs"}


@pytest.mark.parametrize("name", [p.parent.name for p in LIVE])
def test_live_campaign_builds_against_the_fakes(name: str, tmp_path: Path,
                                                fake_providers: FakeProviders) -> None:
    fake_providers.start()
    shutil.copytree(REPO / "qwenbuild" / "templates", tmp_path / "qwenbuild" / "templates")
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

    calls = fake_providers.api_calls()
    again = json.loads(run_subprocess("build", campaign, "--json").out)
    assert again["up_to_date"] == len(report["jobs"])
    assert fake_providers.api_calls() == calls  # a rerun sends no request at all
