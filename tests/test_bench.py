"""Smoke test of the benchmark script at a tiny size (benchmarks are not tests: no time is
asserted, only that every measure runs and reports)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO


def test_bench_quick_runs_every_measure() -> None:
    result = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--quick"],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][2:]
    measures = " ".join(row.split("|")[1] for row in rows)
    for name in ("no-op build", "no-op plan", "incremental", "cold build against a fake",
                 "preview renderer", "watch: save to rebuilt", "--help",
                 "review page, 200 images: size", "review page, 200 images: writing it",
                 "review page, 200 images: load in headless chromium"):
        assert name in measures, (name, result.stdout)
    assert "not measured" not in result.stdout
    assert result.stdout.startswith("Machine: ")
