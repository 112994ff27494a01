"""Progress of a build: a one-line bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from ..contracts import locked_text
from .common import colour_enabled


class Progress:
    def __init__(self, campaign: Any, quiet: bool = False, stream: TextIO = sys.stdout,
                 summary: bool = True) -> None:
        self.campaign = campaign
        #: No bar and no line per job (failures are still printed).
        self.quiet = quiet
        #: The summary when the build ends (-q keeps it; --json has its own report).
        self.summary = summary
        self.stream = stream
        self.tty = stream.isatty()
        self.color = colour_enabled(stream)
        self.total = 0
        self.done = 0
        self.counts: dict[str, int] = {}
        self._drawn = 0.0

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def start(self, assessments: list[Any]) -> None:
        self.total = len(assessments)

    def event(self, result: Any) -> None:
        self.done += 1
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        if self.quiet:
            if result.status == "failed":
                print(f"failed: {self._where(result)}: {result.error}", file=self.stream)
            return
        if result.status == "failed":
            self._clear()
            print(f"{self._paint('failed', '31;1')}  {self._where(result)}: {result.error}",
                  file=self.stream)
        elif not self.tty and result.status not in ("up_to_date", "locked"):
            print(f"{result.status:>9}  {self._output(result)}", file=self.stream)
        if self.tty and (self.done == self.total or time.monotonic() - self._drawn > 0.05):
            self._bar()  # at most 20 redraws a second: 20,000 up-to-date jobs come at once

    def _where(self, result: Any) -> str:
        job = result.job
        return f"{job.provider} {job.asset} {job.aspect} seed {job.seed}"

    def _output(self, result: Any) -> str:
        path = self.campaign.out / result.job.output
        return str(os.path.relpath(path, self.campaign.root)).replace(os.sep, "/")

    def _bar(self) -> None:
        width = 28
        filled = int(width * self.done / self.total) if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        counts = " ".join(f"{k.replace('_', '-')} {v}" for k, v in sorted(self.counts.items()))
        self.stream.write(f"\r[{bar}] {self.done}/{self.total}  {counts}\033[K")
        self.stream.flush()
        self._drawn = time.monotonic()

    def _clear(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")

    def finish(self, report: Any) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
        if not self.summary:
            return
        out = self.stream
        for rel in report.stale if not self.quiet else ():
            path = os.path.relpath(self.campaign.out / rel, self.campaign.root)
            print(f"{self._paint('stale', '35')}  {path}: no longer in the campaign "
                  "(kept; not deleted)", file=out)
        locked = [r for r in report.results if r.status == "locked"]
        for r in locked if not self.quiet else ():
            print(f"{self._paint('locked', '36')}  {self._output(r)} "
                  f"({locked_text(r.reasons)})", file=out)
        if locked and not self.quiet:
            print("  approved images are kept: build --candidates makes the new ones beside "
                  "them, --unlock ASSET replaces them", file=out)
        parts = [
            f"{report.count('generated')} generated",
            f"{report.count('cached')} from cache",
            f"{report.count('up_to_date')} up to date",
        ]
        if locked:
            parts.append(f"{len(locked)} locked")
        if report.failed:
            parts.append(self._paint(f"{len(report.failed)} failed", "31;1"))
        print(f"{len(report.results)} jobs: {', '.join(parts)}; "
              f"cost ${report.cost:.4f}; {report.seconds:.2f}s", file=out)
        out_rel = os.path.relpath(self.campaign.out, os.getcwd())
        print(f"outputs in {out_rel}/ (manifest.json)", file=out)
