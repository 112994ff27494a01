"""The bad-input catalogue: every broken campaign under tests/data/bad_campaigns gets exit 2,
a message naming the file and the place, no traceback, no request and nothing written.

Each `NAME.toml` starts with `# expect: FRAGMENT`, the part of the message it must show.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import tree_snapshot
from .fakes.aimlapi import FakeAimlapi
from .fakes.server import FakeServer

CATALOGUE = Path(__file__).parent / "data" / "bad_campaigns"
CASES = sorted(CATALOGUE.glob("*.toml"))


def _expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), path
    return first[len("# expect: "):]


#: Messages about something missing from the file, which has no line to point at.
UNLOCATED = ("campaign: missing required table", "assets: no assets")


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.fixture
def provider_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAimlapi]:
    """A provider that would answer, so that a request sent by mistake would be seen."""
    app = FakeAimlapi()
    with FakeServer(app) as server:
        for name in ("AIMLAPI", "RUNWARE", "EMPIRIOLABS"):
            monkeypatch.setenv(f"{name}_BASE_URL", server.url)
            monkeypatch.setenv(f"{name}_API_KEY", "test-key-bad-input")
        yield app


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_campaign(case: Path, tmp_path: Path, run, cache_dir: Path,
                      provider_server: FakeAimlapi) -> None:
    work = tmp_path / "repo"
    shutil.copytree(CATALOGUE, work)
    campaign = work / case.name
    before = tree_snapshot(work)
    for command in ("plan", "build"):
        result = run(command, campaign)
        assert result.code == 2, (command, result.out, result.err)
        assert "Traceback" not in result.err
        lines = [line for line in result.err.splitlines() if line.startswith("ERROR: ")]
        assert lines, result.err
        expected = _expected(case)
        assert any(expected in line for line in lines), (expected, result.err)
        # Every message names the file, or the asset whose template is at fault.
        for line in lines:
            assert (re.match(rf"ERROR: {re.escape(str(campaign))}(:\d+:\d+)?: ", line)
                    or line.startswith("ERROR: asset ")), line
            # A problem in the file has its line, unless what is missing has none.
            if line.startswith(f"ERROR: {campaign}: "):
                unlocated = tuple(f"ERROR: {campaign}: {what}" for what in UNLOCATED)
                assert line.startswith(unlocated), line
    assert tree_snapshot(work) == before
    assert tree_snapshot(cache_dir) == {}
    assert provider_server.requests == []
