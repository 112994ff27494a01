"""Start-up imports (issue 17): `qwenbuild --help`, every command's `--help` and the no-op
fast path import nothing outside the standard library and qwenbuild (so no httpx, Pillow,
Jinja2 or pydantic), in a fresh interpreter each, as users run them; the fast path not even
the rest of qwenbuild."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qwenbuild.cli import main

from .conftest import build_file_tree

#: The heavy third-party modules the issue names, and the others the library may load.
HEAVY = ("httpx", "PIL", "jinja2", "pydantic", "obstore", "watchfiles", "pytesseract",
         "rapidocr", "onnxruntime", "numpy", "cv2", "anyio", "httpcore")


def imported(*args: str, cwd: Path | None = None) -> set[str]:
    """The modules `python -X importtime -m qwenbuild ARGS` imports beyond what a bare
    `python -c pass` of the same interpreter does (its site-packages hooks)."""
    def names(command: list[str]) -> set[str]:
        proc = subprocess.run([sys.executable, "-X", "importtime", *command],
                              capture_output=True, text=True, cwd=cwd, timeout=120,
                              env={**os.environ, "COLUMNS": "100"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:") and line.count("|") == 2}
    return names(["-m", "qwenbuild", *args]) - names(["-c", "pass"])


def _outside(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] not in sys.stdlib_module_names
                  and m.split(".")[0] != "qwenbuild" and m != "runpy")


def _commands() -> list[list[str]]:
    from qwenbuild.cli.app import parser

    found: list[list[str]] = []

    def walk(p: argparse.ArgumentParser, prefix: list[str]) -> None:
        found.append(prefix)
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, [*prefix, name])

    walk(parser(), [])
    return found


COMMANDS = _commands()


def test_every_command_is_listed() -> None:
    names = {" ".join(c) for c in COMMANDS}
    assert {"", "build", "plan", "watch", "check", "cache", "cache gc", "init"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "qwenbuild")
def test_help_imports_nothing_heavy(command: list[str]) -> None:
    modules = imported(*command, "--help")
    assert not [m for m in modules if m.split(".")[0] in HEAVY], sorted(modules)
    assert not _outside(modules)


@pytest.mark.parametrize("command", [["providers"], ["completion", "bash"], ["--version"]])
def test_commands_that_need_no_library_import_none(command: list[str]) -> None:
    modules = imported(*command)
    assert not [m for m in modules if m.split(".")[0] in HEAVY], sorted(modules)


def test_the_oracle_sees_a_heavy_import() -> None:
    """`imported` sees what a command loads (here `schema`, which needs pydantic)."""
    assert "pydantic" in imported("schema")


def test_the_fast_path_imports_only_itself(tmp_path: Path) -> None:
    build_file_tree(tmp_path, {
        ".git/HEAD": "ref: refs/heads/main\n",
        "templates/poster.j2": "A poster: {{ copy.headline }}",
        "campaign.toml": ('[campaign]\nname = "imports"\n[brand]\nname = "Acme"\n'
                          '[defaults]\ntemplate = "poster.j2"\naspects = ["1:1"]\n'
                          'providers = ["small"]\n[providers.small]\nkind = "preview"\n'
                          'scale = 0.1\n[[assets]]\nid = "hero"\n[assets.copy]\n'
                          'headline = "HELLO"\n'),
    })
    camp = str(tmp_path / "campaign.toml")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["build", camp]) == 0
    for args in (["build", camp], ["build", camp, "--json"], ["build", "-q", camp]):
        modules = imported(*args)
        ours = sorted(m for m in modules if m.startswith("qwenbuild"))
        assert ours == ["qwenbuild", "qwenbuild.cachedir", "qwenbuild.cli", "qwenbuild.noop"]
        assert not _outside(modules), args
