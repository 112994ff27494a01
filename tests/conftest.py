from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qwenbuild.cli import main

from .fakes import FAKES, FakeProviders
from .seaweedfs import BUCKET, SeaweedFS

REPO = Path(__file__).resolve().parents[1]

SIMPLE_TEMPLATE = """\
A {{ asset.orientation }} poster for {{ brand.name }}.
Headline reading exactly: "{{ copy.headline }}".
{% if copy.subtitle is defined %}Subtitle: "{{ copy.subtitle }}".{% endif %}
{% if copy.footer is defined %}Footer: "{{ copy.footer }}".{% endif %}
"""

SIMPLE_CAMPAIGN = """\
[campaign]
name = "test"

[brand]
name = "Acme"
palette = ["teal", "cream"]

[copy]
footer = "Made by Acme"

[defaults]
template = "poster.j2"
aspects = ["1:1", "9:16"]

[providers.small]
kind = "preview"
scale = 0.1

[[assets]]
id = "hero"
providers = ["small"]
seeds = [1, 2]
[assets.copy]
headline = "HELLO WORLD"
subtitle = "First of many"

[[assets]]
id = "story"
providers = ["small"]
aspects = ["9:16"]
[assets.copy]
headline = "SECOND STORY"
"""


def build_file_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("QWENBUILD_CACHE_DIR", str(cache))
    monkeypatch.setenv("QWENBUILD_RETRY_SCALE", "0.01")
    monkeypatch.delenv("NO_COLOR", raising=False)
    for fake in FAKES.values():  # no test sees a real key, nor another test's
        monkeypatch.delenv(f"{fake.env}_API_KEY", raising=False)
    # No team cache unless a test sets one up (tests/seaweedfs.py).
    for var in ("QWENBUILD_REMOTE_CACHE", "QWENBUILD_REMOTE_MODE", "AWS_ENDPOINT_URL",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return cache


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One real SeaweedFS (S3) on 127.0.0.1 for the whole run; tests use their own prefix."""
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@dataclass
class Team:
    """A team cache for one test: the server, and a prefix of the bucket nobody else uses."""

    server: SeaweedFS
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{BUCKET}/{self.prefix}"

    def env(self, identity: str = "rw") -> dict[str, str]:
        return self.server.env(identity, self.url)

    def objects(self) -> dict[str, int]:
        return self.server.objects(self.prefix)


@pytest.fixture
def team(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> Team:
    """The team cache of this test, in the environment (read-write credentials)."""
    team = Team(seaweedfs, f"t{secrets.token_hex(6)}")
    for name, value in team.env().items():
        monkeypatch.setenv(name, value)
    return team


@pytest.fixture
def fake_providers(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProviders]:
    """The fake providers on 127.0.0.1: `fake_providers.start()` starts all of them,
    `fake_providers["runware"]` one; each sets its `<KIND>_BASE_URL` and `<KIND>_API_KEY`."""
    fakes = FakeProviders(monkeypatch.setenv)
    try:
        yield fakes
    finally:
        fakes.close()


@pytest.fixture
def cache_dir(_isolated_cache: Path) -> Path:
    return _isolated_cache


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run the CLI in-process."""

    def _run(*args: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return _run


def sigint_default() -> None:
    """`preexec_fn` of a child that the test interrupts with SIGINT: Ctrl-C must reach it
    even when the test run itself ignores SIGINT, as a shell's background job does (the
    child would inherit SIG_IGN, and Python would then never raise KeyboardInterrupt)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_subprocess(*args: str | Path, cwd: Path | None = None,
                   env: dict[str, str] | None = None) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "qwenbuild", *[str(a) for a in args]],
        capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})},
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small campaign with its own template folder; returns the campaign file."""
    build_file_tree(tmp_path, {
        "brand/templates/poster.j2": SIMPLE_TEMPLATE,
        "brand/campaign.toml": SIMPLE_CAMPAIGN,
    })
    return tmp_path / "brand" / "campaign.toml"


def tree_snapshot(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}
