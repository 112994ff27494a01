"""A cache and manifest written by qwenbuild 0.1.0 (tests/data/legacy-v0.1, made by that
release's code against the fakes) are read by this version without paying again."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from .conftest import REPO, run_subprocess
from .fakes import FakeProviders

LEGACY = REPO / "tests" / "data" / "legacy-v0.1"
PAID = ("rw20b", "rw2", "aiml", "emp")


def test_a_cache_from_the_previous_release_is_restored_without_a_request(
        tmp_path: Path, fake_providers: FakeProviders,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_providers.start()
    shutil.copytree(LEGACY, tmp_path / "repo", ignore=shutil.ignore_patterns("cache"))
    cache = tmp_path / "cache"
    shutil.copytree(LEGACY / "cache", cache)
    monkeypatch.setenv("QWENBUILD_CACHE_DIR", str(cache))
    campaign = tmp_path / "repo" / "campaign.toml"

    result = run_subprocess("build", campaign, "--json")
    assert result.code == 0, result.err
    assert fake_providers.api_calls() == 0  # every paid image came from the old cache
    report = json.loads(result.out)
    paid = [j for j in report["jobs"] if j["provider"] in PAID]
    assert paid and all(j["status"] == "cached" for j in paid)

    expected = json.loads((LEGACY / "expected-manifest.json").read_text())
    written = json.loads((campaign.parent / "out" / "manifest.json").read_text())
    for rel, entry in expected["outputs"].items():
        if entry["provider"] in PAID:
            assert written["outputs"][rel] == entry, rel  # same key, same bytes
            data = (campaign.parent / "out" / rel).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert set(written["outputs"]) == set(expected["outputs"])
