"""`qwenbuild watch CAMPAIGN`: build, then rebuild on every change; serve the review page."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import UsageError
from . import interrupts
from .common import EXIT_OK, Parser, add_campaign_arguments

if TYPE_CHECKING:
    from ..build import Activity, JobResult
    from ..watch import WatchEvent
    from .progress import Progress

NAME = "watch"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents,
        help="build, then rebuild on every change and serve a live review page",
        description="Build a campaign, then watch the campaign file, its template folders "
                    "and its reference images, and rebuild what an edit affects. The review "
                    "page (<out>/index.html) is served on 127.0.0.1 and reloads itself after "
                    "each rebuild. Ctrl-C stops.")
    add_campaign_arguments(p, selection=False)
    p.add_argument("--port", type=int, default=8000, metavar="N",
                   help="serve the review page on 127.0.0.1:N (default 8000; 0 picks a free "
                        "port)")
    p.add_argument("--by", metavar="NAME",
                   help="who the page's decisions are by (default: QWENBUILD_REVIEWER, else "
                        "git config user.name)")
    p.add_argument("--no-serve", action="store_true",
                   help="only watch and rebuild; do not serve the page")
    p.add_argument("--full-size", action="store_true",
                   help="draw the preview's comps at their full size (default while "
                        "watching: half, unless the provider sets scale)")
    p.add_argument("--max-jobs", type=int, default=20, metavar="N",
                   help="refuse a rebuild that would send more than N jobs to a paid "
                        "provider (default 20)")
    return p


class WatchPrinter:
    """Turns the watch loop's events into lines: progress and results on `out`, errors on
    `err`; with `as_json`, one JSON object per event on `out` instead."""

    def __init__(self, out: TextIO, err: TextIO, quiet: bool = False,
                 as_json: bool = False) -> None:
        self.out, self.err = out, err
        self.quiet, self.as_json = quiet, as_json
        self.progress: Progress | None = None

    def status(self, event: WatchEvent) -> None:
        from .progress import Progress

        if self.as_json:
            self._json(event)
            return
        if event.kind == "serving":
            self._line(f"serving the review page at {event.url} (Ctrl-C to stop)")
        elif event.kind == "changed":
            self._line(f"\nchanged: {', '.join(event.changed)}")
        elif event.kind == "building" and event.campaign is not None:
            self.progress = Progress(event.campaign, quiet=self.quiet, stream=self.out)
            self.progress.start(list(event.assessments))
        elif event.kind == "built" and event.report is not None:
            if self.progress is not None:
                self.progress.finish(event.report)
            if event.latency is not None:
                self._line(f"rebuilt {event.latency:.2f}s after the save")
        elif event.kind == "failed":
            if self.progress is not None:
                self.progress.close()
            for line in (event.error or "").splitlines() or [""]:
                print(f"ERROR: {line}", file=self.err, flush=True)
            print("still watching; the last good outputs are in place", file=self.err,
                  flush=True)
        elif event.kind == "stopped":
            if self.progress is not None:
                self.progress.close()
            self._line("\nstopped")

    def activity(self, act: Activity) -> None:
        if not self.as_json and self.progress is not None:
            self.progress.activity(act)

    def job(self, result: JobResult) -> None:
        if self.as_json:
            print(json.dumps({"event": "job", "output": result.job.output,
                              "status": str(result.status), "error": result.error}),
                  file=self.out, flush=True)
        elif self.progress is not None:
            self.progress.event(result)

    def _line(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.out, flush=True)

    def _json(self, event: WatchEvent) -> None:
        data: dict[str, Any] = {"event": event.kind, "build": event.number}
        if event.changed:
            data["changed"] = list(event.changed)
        if event.url:
            data["url"] = event.url
        if event.error:
            data["error"] = event.error
        if event.latency is not None:
            data["latency_s"] = round(event.latency, 3)
        if event.report is not None:
            data["report"] = event.report.to_json()
        print(json.dumps(data, ensure_ascii=False), file=self.out, flush=True)


def run(args: argparse.Namespace) -> int:
    from ..watch import watch

    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if args.max_jobs < 0:
        raise UsageError("--max-jobs must be 0 or more")

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # a service manager's stop ends the watch like Ctrl-C does

    printer = WatchPrinter(sys.stdout, sys.stderr, quiet=args.quiet, as_json=args.json)
    if threading.current_thread() is threading.main_thread():
        # main() restores the handler when the command returns (interrupts.held).
        signal.signal(signal.SIGTERM, _terminate)
    # Returns on Ctrl-C (after a clean shutdown): ending a watch is not a failure.
    watch(args.campaign, port=args.port, serve=not args.no_serve, max_jobs=args.max_jobs,
          on_status=printer.status, on_job=printer.job, on_stopping=interrupts.stopping,
          on_activity=printer.activity, reviewer=args.by, full_size=args.full_size)
    return EXIT_OK
