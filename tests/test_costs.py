"""Costs and budgets: the estimate in `plan`, `budget` and `build --budget`, through the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwenbuild.build.executor import BuildOptions, build_plan
from qwenbuild.campaign import load_campaign
from qwenbuild.errors import BudgetError
from qwenbuild.plan import plan
from qwenbuild.provenance import extract
from qwenbuild.providers.empiriolabs import PRICE_PRO

from .conftest import SIMPLE_TEMPLATE, build_file_tree, tree_snapshot
from .fakes import runware
from .fakes.server import FakeServer

PAID_CAMPAIGN = """\
[campaign]
name = "paid"
{budget}

[brand]
name = "Acme"

[defaults]
template = "poster.j2"

[providers.draft]
kind = "preview"
scale = 0.1

[providers.qwen]
kind = "runware"

[providers.pro]
kind = "empiriolabs"
variant = "qwen-image-2.0-pro"

[[assets]]
id = "hero"
aspects = ["1:1", "9:16"]
providers = ["qwen"]
seeds = [1, 2]
[assets.copy]
headline = "HELLO"

[[assets]]
id = "story"
aspects = ["9:16"]
providers = ["pro", "draft"]
[assets.copy]
headline = "STORY"
"""


def _project(tmp_path: Path, budget: str = "") -> Path:
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE,
                               "campaign.toml": PAID_CAMPAIGN.format(budget=budget)})
    return tmp_path / "campaign.toml"


@pytest.fixture
def fake_runware(monkeypatch: pytest.MonkeyPatch) -> Iterator[runware.FakeRunware]:
    app = runware.FakeRunware()
    with FakeServer(app) as server:
        monkeypatch.setenv("RUNWARE_BASE_URL", server.url + runware.API_PATH)
        monkeypatch.setenv("RUNWARE_API_KEY", runware.FAKE_KEY)
        yield app


def test_plan_estimates_the_cost_of_what_would_be_generated(tmp_path: Path, run) -> None:
    camp = _project(tmp_path)
    result = run("plan", camp, "--json")
    assert result.code == 0, result.err
    report = result.json()
    # 4 Runware 2.0 images at $0.035, 1 EmpirioLabs Pro at its own price, 1 free preview.
    assert report["estimated_cost_usd"] == pytest.approx(4 * 0.035 + PRICE_PRO)
    prices = {(j["asset"], j["provider"]): j["estimated_cost_usd"] for j in report["jobs"]}
    assert prices[("hero", "qwen")] == pytest.approx(0.035)
    assert prices[("story", "pro")] == pytest.approx(PRICE_PRO)
    assert prices[("story", "draft")] == 0
    text = run("plan", camp)
    assert f"estimated cost ${4 * 0.035 + PRICE_PRO:.3f}" in text.out


def test_cached_and_up_to_date_jobs_cost_nothing(tmp_path: Path, run, fake_runware) -> None:
    camp = _project(tmp_path)
    assert run("build", camp, "--provider", "qwen", "--provider", "draft").code == 0
    (camp.parent / "out/1x1/qwen/hero-v1.png").unlink()  # restored from the cache: free
    report = run("plan", camp, "--json").json()
    status = {(j["asset"], j["aspect"], j["provider"], j["seed"]): j for j in report["jobs"]}
    assert status[("hero", "1:1", "qwen", 1)]["status"] == "cached"
    assert status[("hero", "1:1", "qwen", 1)]["estimated_cost_usd"] == 0
    assert status[("hero", "9:16", "qwen", 2)]["status"] == "up_to_date"
    assert report["estimated_cost_usd"] == pytest.approx(PRICE_PRO)  # only the Pro job


def test_campaign_budget_stops_the_build_before_any_request(tmp_path: Path, run,
                                                            fake_runware, cache_dir) -> None:
    camp = _project(tmp_path, "budget = 0.1")
    assert tree_snapshot(cache_dir) == {}
    result = run("build", camp)
    assert result.code == 2
    assert ("estimated cost $0.209 for 5 images is over the budget of $0.10 "
            f"(campaign.budget in {camp})") in result.err
    # The biggest items, biggest first, with their images and amounts.
    lines = result.err.splitlines()
    assert "$0.14  hero at qwen (alibaba:qwen-image@2.0): 4 images" in lines[1]
    assert f"${PRICE_PRO}  story at pro" in lines[2]
    assert fake_runware.api_requests() == []
    assert not (camp.parent / "out").exists()  # nothing written...
    assert not any(cache_dir.iterdir())  # ...not even a lock file in the cache
    assert "over it: build will refuse" in run("plan", camp).out

    # The command line wins over the campaign, both ways.
    assert run("build", camp, "--budget", "0.05", "--provider", "qwen").code == 2
    ok = run("build", camp, "--budget", "0.15", "--provider", "qwen", "--json")
    assert ok.code == 0, ok.err
    assert ok.json()["generated"] == 4
    # Nothing left to generate there, so the estimate (and the budget check) is $0.
    assert run("build", camp, "--budget", "0", "--provider", "qwen").code == 0


def test_budget_flag_is_checked(tmp_path: Path, run) -> None:
    camp = _project(tmp_path)
    for bad in ("-1", "nan", "inf"):
        result = run("build", camp, "--budget", bad)
        assert result.code == 2 and "--budget must be" in result.err
    stopped = run("build", camp, "--budget", "lots")  # argparse's own error
    assert stopped.code == 2 and "invalid float value: 'lots'" in stopped.err


def test_bad_budget_in_the_campaign(tmp_path: Path, run) -> None:
    camp = _project(tmp_path, 'budget = -2')
    result = run("plan", camp)
    assert result.code == 2
    assert f"{camp}:3:1: campaign.budget: Input should be greater than or equal to 0" \
        in result.err
    camp.write_text(camp.read_text().replace("budget = -2", 'budget = "ten"'))
    assert "campaign.budget: expected a number" in run("plan", camp).err


def test_watch_rebuilds_honour_the_campaign_budget(tmp_path: Path) -> None:
    """Watch mode builds with BuildOptions(max_generate=...) and no budget of its own: the
    campaign's budget applies to every rebuild."""
    campaign = load_campaign(_project(tmp_path, "budget = 0.1"))
    with pytest.raises(BudgetError, match=r"over the budget of \$0.10"):
        asyncio.run(build_plan(plan(campaign), BuildOptions(max_generate=20)))
    assert not (tmp_path / "out").exists()


def test_paid_outputs_carry_provenance(tmp_path: Path, run, fake_runware) -> None:
    camp = _project(tmp_path)
    assert run("build", camp, "--provider", "qwen").code == 0
    manifest = json.loads((camp.parent / "out/manifest.json").read_text())
    entry = manifest["outputs"]["9x16/qwen/hero-v2.png"]
    info = extract((camp.parent / "out/9x16/qwen/hero-v2.png").read_bytes())
    assert info is not None
    assert (info["kind"], info["provider"], info["model"]) == (
        "runware", "qwen", "alibaba:qwen-image@2.0")
    assert info["key"] == entry["key"] and info["seed"] == "2"
    assert info["prompt"].startswith("A portrait poster for Acme.")
    # Runware 2.0 takes no seed: the one it reports is recorded and shown as the seed.
    assert info["provider_seed"] == str(entry["provider_seed"])
    assert f"Seed: {entry['provider_seed']}" in info["parameters"]
