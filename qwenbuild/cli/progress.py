"""Progress of a build: a live display on a terminal, plain lines otherwise.

On a terminal, while a build has work to do, a live display (rich) shows the jobs done of
the total, images per minute, the time left, what was spent against the estimate, and per
provider the requests in flight, done, failed and retried; retries and failures are
printed above it as they happen, and at the end the files that changed are listed. rich
is imported only then: a no-op build, `--help` and every command without a terminal never
pay for it.

Elsewhere (a pipe, a file, CI) one plain line per job that changed, per retry and per
failure, as before. Either way an error that repeats for one provider (a missing API key,
a rejected key) is printed once, and counted at the end.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..contracts import locked_text
from .common import colour_enabled

#: At most this many identical failures of one provider are printed (the rest counted).
SAME_ERROR_SHOWN = 1


@dataclass
class _ProviderState:
    concurrency: int = 1
    in_flight: int = 0
    done: int = 0
    failed: int = 0
    retries: int = 0


@dataclass
class _Failures:
    """Failures by (provider, error): the first is shown, the others counted."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def first(self, provider: str, error: str) -> bool:
        self.counts[(provider, error)] += 1
        return self.counts[(provider, error)] <= SAME_ERROR_SHOWN

    def repeated(self) -> list[tuple[str, str, int]]:
        return [(provider, error, n - SAME_ERROR_SHOWN)
                for (provider, error), n in sorted(self.counts.items()) if n > SAME_ERROR_SHOWN]


def _cost(report: Any) -> str:
    """`cost $0.0700 (estimated $0.0750)`: what the providers reported against the estimate
    made before the build, and how many images reported no cost (not counted)."""
    text = f"cost ${report.cost:.4f}"
    notes = []
    estimated = getattr(report, "estimated_usd", None)
    if estimated:
        notes.append(f"estimated ${estimated:.4f}")
    unreported = getattr(report, "unreported", 0)
    if unreported:
        notes.append(f"{unreported} image{'s' if unreported != 1 else ''} without a "
                     "reported cost")
    return text + (f" ({'; '.join(notes)})" if notes else "")


class Progress:
    def __init__(self, campaign: Any, quiet: bool = False, stream: TextIO = sys.stdout,
                 summary: bool = True) -> None:
        self.campaign = campaign
        #: No display and no line per job (failures are still printed).
        self.quiet = quiet
        #: The summary when the build ends (-q keeps it; --json has its own report).
        self.summary = summary
        self.stream = stream
        self.tty = stream.isatty()
        self.color = colour_enabled(stream)
        self.total = 0
        self.work = 0  # jobs that are not up to date
        self.done = 0
        self.work_done = 0
        self.counts: Counter[str] = Counter()
        self.spent = 0.0
        self.estimate: float | None = None
        self.started: float | None = None  # when the first request went out
        self.providers: dict[str, _ProviderState] = {}
        self.failures = _Failures()
        self.changed: list[tuple[str, str]] = []  # (status, output) in finishing order
        self._live: Any = None

    # -- what the build reports ---------------------------------------------------------------

    def start(self, assessments: list[Any]) -> None:
        from ..contracts import Action

        self.total = len(assessments)
        for a in assessments:
            if a.action != Action.KEEP:
                self.work += 1
                name = a.job.provider
                if name not in self.providers:
                    spec = self.campaign.providers.get(name)
                    self.providers[name] = _ProviderState(getattr(spec, "concurrency", 1))
        if self.tty and not self.quiet and self.work:
            self._live = _LiveView(self)
            self._live.start()

    def activity(self, act: Any) -> None:
        if act.kind == "estimate":
            self.estimate = act.usd
            return
        state = self.providers.setdefault(act.job.provider, _ProviderState())
        if act.kind == "request":
            state.in_flight += 1
            if self.started is None:
                self.started = time.monotonic()
        elif act.kind == "answer":
            state.in_flight = max(0, state.in_flight - 1)
        elif act.kind == "retry":
            state.retries += 1
            if not self.quiet:
                self._say(f"{self._paint('retry', '33'):>9}  {self._where(act.job)}: "
                          f"{act.error}; retry {act.attempt}/{act.retries} in "
                          f"{act.delay:.1f}s")

    def waiting(self, job: Any, holder: str, left: float | None) -> None:
        """A job waits for the image another build is paying for (called when the wait
        starts, then every 15 s)."""
        if self.quiet:
            return
        until = (f"; its lease ends in {max(0, round(left))} s, then this build takes over"
                 if left is not None else "")
        self._say(f"{self._paint('waiting', '36'):>9}  {self._where(job)} (another build is "
                  f"making it: {holder or 'unknown'}{until})")

    def event(self, result: Any) -> None:
        self.done += 1
        status = str(result.status)
        self.counts[status] += 1
        if status != "up_to_date":
            self.work_done += 1
            state = self.providers.setdefault(result.job.provider, _ProviderState())
            state.done += 1
            self.changed.append((status, self._output(result)))
        if status == "generated":
            self.spent += result.cost or 0.0
        if status == "failed":
            self.providers[result.job.provider].failed += 1
            if self.failures.first(result.job.provider, result.error or ""):
                label = "failed: " if self.quiet else f"{self._paint('failed', '31;1')}  "
                line = f"{label}{self._where(result.job)}: {result.error}"
                if self.quiet:
                    print(line, file=self.stream)
                else:
                    self._say(line)
            return
        if self.quiet:
            return
        if self._live is None and not self.tty and status not in ("up_to_date", "locked"):
            print(f"{status:>9}  {self._output(result)}", file=self.stream)
        elif self._live is not None:
            self._live.update()

    def close(self) -> None:
        """Stop the live display without a summary (the build ended in an error)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def finish(self, report: Any) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
            # What the display showed only while it ran: the files that changed.
            for status, output in sorted(self.changed, key=lambda c: c[1]):
                if status in ("generated", "cached"):
                    print(f"{self._paint(status, '32' if status == 'generated' else '36'):>9}"
                          f"  {output}", file=self.stream)
        out = self.stream
        for provider, error, more in self.failures.repeated():
            message = (f"{more} more job{'s' if more != 1 else ''} of provider {provider} "
                       f"failed the same way: {error}")
            print(f"failed: {message}" if self.quiet else
                  f"{self._paint('failed', '31;1')}  {message}", file=out)
        if not self.summary:
            return
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
              f"{_cost(report)}; {report.seconds:.2f}s", file=out)
        out_rel = os.path.relpath(self.campaign.out, os.getcwd())
        print(f"outputs in {out_rel}/ (manifest.json)", file=out)

    # -- figures the display shows --------------------------------------------------------------

    def rate(self) -> float | None:
        """Images generated per minute since the first request."""
        if self.started is None:
            return None
        minutes = (time.monotonic() - self.started) / 60
        return self.counts["generated"] / minutes if minutes > 0 else None

    def eta(self) -> float | None:
        """Seconds until the last job is done, at the pace of the jobs done so far."""
        if self.started is None or not self.work_done:
            return None
        elapsed = time.monotonic() - self.started
        return (self.work - self.work_done) * elapsed / self.work_done

    # -- lines --------------------------------------------------------------------------------

    def _say(self, line: str) -> None:
        """A line as it happens: above the live display, or plain."""
        if self._live is not None:
            self._live.print(line)
        else:
            print(line, file=self.stream)

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color and self._live is None else text

    def _where(self, job: Any) -> str:
        return f"{job.provider} {job.asset} {job.aspect} seed {job.seed}"

    def _output(self, result: Any) -> str:
        path = self.campaign.out / result.job.output
        return str(os.path.relpath(path, self.campaign.root)).replace(os.sep, "/")


def duration(seconds: float) -> str:
    """`45s`, `3m 20s`, `2h 05m`."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class _LiveView:
    """The terminal display, drawn by rich (imported here: only builds on a terminal with
    work to do load it)."""

    def __init__(self, progress: Progress) -> None:
        from rich.console import Console
        from rich.live import Live

        self.progress = progress
        self.console = Console(file=progress.stream, highlight=False,
                               no_color=not progress.color)
        self.live = Live(get_renderable=self.render, console=self.console,
                         refresh_per_second=4, transient=True, redirect_stdout=False,
                         redirect_stderr=sys.stderr.isatty())

    def start(self) -> None:
        self.live.start()

    def update(self) -> None:
        self.live.refresh()

    def stop(self) -> None:
        self.live.stop()

    def print(self, line: str) -> None:
        from rich.text import Text

        self.console.print(Text.from_ansi(line) if "\033[" in line else
                           Text(line, style=_style(line)))

    def render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        p = self.progress
        counts = p.counts
        head = Table.grid(padding=(0, 1))
        head.add_row(ProgressBar(total=max(p.total, 1), completed=p.done, width=32),
                     Text(f"{p.done}/{p.total} jobs"),
                     Text(" · ".join(f"{n} {label}" for label, n in (
                         ("generated", counts["generated"]), ("from cache", counts["cached"]),
                         ("up to date", counts["up_to_date"]), ("failed", counts["failed"]))
                         if n), style="dim"))
        rate, eta = p.rate(), p.eta()
        figures = [f"{rate:.1f} images/min" if rate is not None else "images/min: -",
                   f"ETA {duration(eta)}" if eta is not None else "ETA -"]
        if p.estimate is not None:
            figures.append(f"spent ${p.spent:.3f} of ${p.estimate:.3f} estimated")
        table = Table(box=None, padding=(0, 2), show_edge=False, pad_edge=False)
        for column in ("provider", "in flight", "done", "failed", "retries"):
            table.add_column(column, justify="left" if column == "provider" else "right",
                             header_style="bold")
        for name, state in sorted(p.providers.items()):
            table.add_row(name, f"{state.in_flight}/{state.concurrency}", str(state.done),
                          Text(str(state.failed), style="red" if state.failed else ""),
                          str(state.retries))
        return Group(head, Text("  " + " · ".join(figures)), table)


def _style(line: str) -> str:
    word = line.split(maxsplit=1)[0] if line.strip() else ""
    return {"failed": "bold red", "retry": "yellow"}.get(word, "")
