"""Smoke test of the benchmark script at a tiny size (benchmarks are not tests: no time is
asserted, only that every measure runs and reports)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO

#: Every section but `peers`, which installs DVC and doit from PyPI (minutes, and the
#: network): that is for the bench itself to do, not the test suite.
SECTIONS = ("noop", "noopcpu", "imports", "memory", "incremental", "concurrency", "preview",
            "watch", "page", "help", "remote", "display")


def test_bench_quick_runs_every_measure() -> None:
    only = [arg for name in SECTIONS for arg in ("--only", name)]
    result = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--quick", *only],
                            capture_output=True, text=True, timeout=400, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][2:]
    measures = " ".join(row.split("|")[1] for row in rows)
    for name in ("no-op build", "no-op plan", "incremental", "cold build against a fake",
                 "preview renderer", "watch: save to rebuilt", "--help",
                 "review page, 200 images: size", "review page, 200 images: writing it",
                 "review page, 200 images: load in headless chromium",
                 "no-op build CPU, 100 jobs", "start-up imports", "cold build memory, 400"):
        assert name in measures, (name, result.stdout)
    # Issue 17's targets, each with a verdict.
    targets = result.stdout.split("Issue 17's targets:", 1)[1]
    for name in ("no-op build CPU time, 400 jobs", "start-up imports", "cold build memory",
                 "review page load", "watch: save to rebuilt"):
        assert name in targets, (name, targets)
    assert "not measured" not in result.stdout
    assert result.stdout.startswith("Machine: ")
