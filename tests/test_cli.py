"""Command-line conventions: common options anywhere, did-you-mean, JSON errors, exit codes,
closed pipes, shell completion."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, run_subprocess


@pytest.mark.parametrize("argv", [
    ["-q", "build", "{c}"], ["build", "{c}", "-q"], ["--quiet", "build", "-j", "2", "{c}"]])
def test_common_options_go_before_or_after_the_command(project: Path, run, argv) -> None:
    result = run(*[a.format(c=project) for a in argv])
    assert result.code == 0, result.err
    assert "out/1x1/small/hero-v1.png" not in result.out  # quiet: no line per file
    assert "5 jobs: 5 generated" in result.out  # ...but the result


def test_json_before_the_command_prints_the_report(project: Path, run) -> None:
    result = run("--json", "build", project)
    assert result.code == 0
    assert result.json()["generated"] == 5


def test_verbose_and_quiet_together_are_a_usage_error(project: Path, run) -> None:
    result = run("-v", "build", project, "-q")
    assert result.code == 2 and "contradict" in result.err


def test_a_mistyped_command_gets_a_suggestion() -> None:
    result = run_subprocess("biuld", "x.toml")
    assert result.code == 2
    assert "did you mean 'build'?" in result.err
    assert "Traceback" not in result.err


def test_a_mistyped_option_gets_the_commands_usage_and_a_suggestion(project: Path) -> None:
    result = run_subprocess("build", project, "--regnerate")
    assert result.code == 2
    assert "usage: qwenbuild build" in result.err  # the command's usage, not the top level
    assert "did you mean '--regenerate'?" in result.err


def test_json_errors_are_an_object_on_stdout(tmp_path: Path, run) -> None:
    result = run("plan", tmp_path / "missing.toml", "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert "no such file" in error["message"] and error["kind"] == "CampaignError"
    assert error["problems"] == [error["message"]]
    usage = run_subprocess("--json", "build")  # argparse's own errors too
    assert usage.code == 2
    assert "required" in json.loads(usage.out)["error"]["message"]


def test_an_internal_error_has_its_own_exit_code(project: Path, run, monkeypatch) -> None:
    import qwenbuild.survey

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(qwenbuild.survey, "survey", broken)
    result = run("plan", project)
    assert result.code == 70
    assert "internal error: RuntimeError: boom" in result.err and "a bug" in result.err
    assert "Traceback" not in result.err
    assert run("plan", project, "--json").json()["error"]["kind"] == "InternalError"


def test_the_old_force_flag_still_regenerates_and_says_so(project: Path, run) -> None:
    assert run("build", project).code == 0
    result = run("build", project, "--force", "--json")
    assert result.code == 0
    assert result.json()["generated"] == 5
    assert "--force is now --regenerate" in result.err


def test_a_closed_pipe_ends_quietly() -> None:
    proc = subprocess.run(f"'{sys.executable}' -m qwenbuild providers | head -1",
                          shell=True, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.startswith("preview")
    assert proc.stderr == ""


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_completes_commands_options_and_files(tmp_path: Path) -> None:
    script = run_subprocess("completion", "bash")
    assert script.code == 0
    (tmp_path / "qb.bash").write_text(script.out)
    (tmp_path / "campaign.toml").write_text("")

    def complete(*words: str) -> list[str]:
        line = " ".join(["qwenbuild", *words])
        proc = subprocess.run(
            ["bash", "-c", f'source qb.bash; COMP_WORDS=({line}); '
                           f'COMP_CWORD={len(words)}; _qwenbuild; '
                           'printf "%s\\n" "${COMPREPLY[@]}"'],
            capture_output=True, text=True, cwd=tmp_path, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    assert "build" in complete("bu")
    assert complete("build", "--reg") == ["--regenerate"]
    assert complete("build", "--re") == ["--record", "--regenerate", "--remote"]
    assert "campaign.toml" in complete("build", "camp")
    assert complete("cache", "") == ["gc", "push"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_name_every_command(shell: str) -> None:
    from qwenbuild.cli import COMMANDS

    result = run_subprocess("completion", shell)
    assert result.code == 0
    for module in COMMANDS:
        assert module.NAME in result.out
    assert ("--regenerate" if shell == "zsh" else "-l regenerate") in result.out
    checker = shutil.which(shell)
    if checker:  # the shell parses it
        flag = ["-n"] if shell == "zsh" else ["--no-execute"]
        proc = subprocess.run([checker, *flag], input=result.out, capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr


def test_verbose_errors_are_one_message_without_a_stray_line(tmp_path: Path) -> None:
    result = run_subprocess("-v", "plan", tmp_path / "missing.toml")
    assert result.code == 2
    assert result.err.strip().splitlines() == [f"ERROR: {tmp_path / 'missing.toml'}: no such file"]


def test_the_readme_set_up_and_test_commands_are_what_ci_runs() -> None:
    """The first command installs only what running qwenbuild needs and builds the demo;
    the test command installs the test extra and the system packages; .ci/run calls it."""
    import re

    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, re.S)
    set_up, tests = blocks[0], blocks[1]
    assert set_up == ("python3 -m venv .venv && .venv/bin/pip install -e . && "
                      ".venv/bin/qwenbuild build projects/aurelia-transit/campaign.toml")
    assert tests == "bash scripts/test"
    script = (REPO / "scripts" / "test").read_text()
    assert "pip install --quiet -e '.[test]'" in script
    for package in ("chromium", "tesseract-ocr-eng", "tesseract-ocr-chi-sim",
                    "fonts-wqy-microhei", "fonts-dejavu-core", "fontconfig"):
        assert package in script and package in readme, package
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith("#")]
    assert ci[-1] == tests  # CI runs the README's test command as written
    # The test extra is not what running qwenbuild needs.
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    for name in ("pytest", "playwright", "hypothesis", "ruff", "mypy"):
        assert name not in runtime, name
