"""What a build shows while it runs: the live display on a terminal, plain lines elsewhere,
retries and failures as they happen, an error that repeats said once per provider, and the
warning of `plan` about a provider whose API key is missing."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import SIMPLE_TEMPLATE, build_file_tree
from .fakes.aimlapi import FAKE_KEY, FakeAimlapi
from .fakes.server import FakeServer, Reply

ASSETS = 4


def _campaign(root: Path, providers: str = '["ai", "tiny"]') -> Path:
    body = ('[campaign]\nname = "progress"\n[brand]\nname = "Acme"\n'
            '[providers.ai]\nkind = "aimlapi"\nconcurrency = 2\n'
            '[providers.tiny]\nkind = "preview"\nscale = 0.1\n'
            f'[defaults]\ntemplate = "poster.j2"\naspects = ["1:1"]\nproviders = {providers}\n'
            + "".join(f'\n[[assets]]\nid = "a{i}"\n[assets.copy]\nheadline = "HEADLINE {i}"\n'
                      for i in range(ASSETS)))
    build_file_tree(root, {"templates/poster.j2": SIMPLE_TEMPLATE, "campaign.toml": body})
    return root / "campaign.toml"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAimlapi]:
    app = FakeAimlapi()
    with FakeServer(app) as server:
        monkeypatch.setenv("AIMLAPI_BASE_URL", server.url)
        yield app


def _busy(app: FakeAimlapi, headline: str, times: int = 1) -> None:
    app.prompt_faults.extend(
        [(headline, Reply(503, {"message": "busy", "statusCode": "503"}))] * times)


# -- a missing API key --------------------------------------------------------------------------


def test_plan_warns_about_a_provider_without_its_key(tmp_path: Path, run, fake: FakeAimlapi,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = _campaign(tmp_path)
    result = run("plan", campaign)
    assert result.code == 0
    assert (f"WARNING: provider ai: AIMLAPI_API_KEY is not set, so a build would fail its "
            f"{ASSETS} jobs to generate") in result.err
    assert "tiny" not in result.err  # the preview needs no key
    assert run("plan", campaign, "--json").json()["warnings"] == [
        line.removeprefix("WARNING: ") for line in result.err.splitlines()]
    assert run("plan", campaign, "--check").err.count("WARNING") == 0  # CI spends nothing

    monkeypatch.setenv("AIMLAPI_API_KEY", FAKE_KEY)
    assert "WARNING" not in run("plan", campaign).err
    assert run("build", campaign).code == 0
    monkeypatch.delenv("AIMLAPI_API_KEY")
    # Nothing left that needs the provider: nothing to warn about.
    assert "WARNING" not in run("plan", campaign).err


@pytest.mark.parametrize("mode", ["plain", "-q", "--json"])
def test_build_says_a_missing_key_once_per_provider(tmp_path: Path, run, fake: FakeAimlapi,
                                                    mode: str) -> None:
    campaign = _campaign(tmp_path)
    result = run("build", campaign, *([] if mode == "plain" else [mode]))
    assert result.code == 1
    shown = result.err if mode == "--json" else result.out + result.err  # not the report
    assert shown.count("AIMLAPI_API_KEY is not set") == 2, shown  # the first, then the count
    assert (f"{ASSETS - 1} more jobs of provider ai failed the same way: AIMLAPI_API_KEY is "
            "not set") in shown
    if mode == "--json":
        jobs = result.json()["jobs"]
        assert sum(1 for j in jobs if "AIMLAPI_API_KEY" in (j["error"] or "")) == ASSETS


# -- plain lines --------------------------------------------------------------------------------


def test_plain_lines_show_each_file_retries_and_failures(tmp_path: Path, run,
                                                         fake: FakeAimlapi,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", FAKE_KEY)
    campaign = _campaign(tmp_path)
    _busy(fake, "HEADLINE 1")
    fake.prompt_faults.append(("HEADLINE 2", Reply(400, {"message": "bad prompt",
                                                         "statusCode": "400"})))
    result = run("build", campaign)
    assert result.code == 1
    lines = result.out.splitlines()
    assert any(re.fullmatch(r" +retry  ai a1 1:1 seed \d+: HTTP 503 .*busy; retry 1/3 in "
                            r"[\d.]+s", line) for line in lines), lines
    assert any(line.startswith("failed  ai a2 1:1 seed ") and "bad prompt" in line
               for line in lines)
    assert "generated  out/1x1/ai/a1.png" in lines and "generated  out/1x1/tiny/a0.png" in lines
    assert "\033[" not in result.out


# -- on a terminal ------------------------------------------------------------------------------


def _on_terminal(campaign: Path, env: dict[str, str]) -> str:
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "qwenbuild", "build", str(campaign)],
                            stdout=follower, stderr=follower,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "120", **env})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode()


_COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|38|9[0-7])(?:;[0-9;]*)?m")


def test_a_terminal_shows_the_live_display_then_what_changed(tmp_path: Path,
                                                             fake: FakeAimlapi) -> None:
    campaign = _campaign(tmp_path)
    fake.latency = 0.3
    _busy(fake, "HEADLINE 3")
    shown = _on_terminal(campaign, {"AIMLAPI_API_KEY": FAKE_KEY})
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)  # the screen's words
    for words in ("jobs", "images/min", "ETA", "spent $", "estimated", "in flight",
                  "retries"):
        assert words in text, words
    assert re.search(r"\bai +\d/2\b", text)  # in flight of the concurrency, per provider
    assert re.search(r"retry +ai a3 1:1 seed \d+: HTTP 503", text)
    assert f"{2 * ASSETS}/{2 * ASSETS} jobs" in text
    # At the end, every file that changed, then the summary.
    tail = text[text.rindex("generated  out/1x1/ai/a0.png"):]
    for i in range(ASSETS):
        assert f"generated  out/1x1/ai/a{i}.png" in tail
        assert f"generated  out/1x1/tiny/a{i}.png" in tail
    assert f"{2 * ASSETS} jobs: {2 * ASSETS} generated" in tail
    assert _COLOUR.search(shown)  # coloured on a terminal...

    for rel in ("1x1/ai/a0.png", "1x1/tiny/a1.png"):
        (tmp_path / "out" / rel).unlink()
    plain = _on_terminal(campaign, {"AIMLAPI_API_KEY": FAKE_KEY, "NO_COLOR": "1"})
    assert "2 from cache" in plain and not _COLOUR.search(plain)  # ...never with NO_COLOR


def test_a_no_op_build_on_a_terminal_loads_no_display(project: Path, run) -> None:
    """rich is imported only when a build on a terminal has work to do."""
    assert run("build", project).code == 0
    code = ("import sys, pty, os; "
            "from qwenbuild.cli import main; "
            "leader, follower = pty.openpty(); "
            "sys.stdout = os.fdopen(follower, 'w'); "
            f"code = main(['build', {str(project)!r}]); "
            "sys.stdout.flush(); "
            "sys.exit(10 if 'rich' in sys.modules else code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_help_loads_neither_the_display_nor_the_library() -> None:
    code = ("import sys; from qwenbuild.cli import main; main(['--help']); "
            "heavy = [m for m in ('rich', 'pydantic', 'jinja2', 'httpx', 'PIL') "
            "if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr
