"""`qwenbuild watch`: build, then rebuild whenever an input changes, with a live review page.

Like `mkdocs serve`: watch + rebuild + live reload. The inputs are the campaign file, its
template folders and its reference images; that set is derived again after every reload,
since an edit may add a folder or a reference. Watcher threads (watchfiles) only record
which relevant files changed; one loop, in the calling thread, waits for a burst of saves
to settle, reloads the campaign and rebuilds. The build regenerates only the jobs whose
inputs changed (the cache and the manifest see to that).

A running build is never cancelled, so no image already paid for is lost: saves made
during a build are collected and give one more rebuild when it ends. An edit that makes
the campaign invalid (or a rebuild over the `--max-jobs` spending guard) reports the
error, shows it on the open page and keeps watching; the last good outputs stay in place.

The loop prints nothing: it reports `WatchEvent`s (and each finished job) to its caller;
the CLI turns them into lines (qwenbuild/cli/watch.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from .build import Activity, BuildReport, JobResult
from .build.executor import BuildOptions, build_plan
from .campaign import Campaign, load_campaign
from .errors import CampaignError, QwenbuildError
from .plan import Assessment, plan
from .review.actions import ReviewTarget
from .review.decisions import reviewer as default_reviewer
from .review.server import LiveServer, LiveState
from .store import open_store

log = logging.getLogger(__name__)

#: A burst of saves ends after this long without another (an editor's save-all, a
#: formatter on save): the whole burst gives one rebuild. watchfiles already waits for
#: _STEP_MS without a change before it reports a burst: this only joins two reports.
QUIET_S = 0.05
#: ...but a rebuild never waits more than this after the first save of a burst, so that a
#: process writing without pause cannot hold rebuilds back forever.
MAX_WAIT_S = 1.0
#: watchfiles' own batching (milliseconds): kept short, the quiet time above decides.
_DEBOUNCE_MS, _STEP_MS = 150, 50
#: Default of `--max-jobs`: jobs a rebuild may send to a paid provider.
DEFAULT_MAX_JOBS = 20
#: The preview's comps while watching, unless its table sets `scale` (or `--full-size`):
#: half their size (a 1328x1328 comp drawn at 672x672, about what a screen shows of it),
#: three times faster to draw. The scale is part of the cache key (and of the size), so
#: a watch's comps and a build's full-size ones are never mistaken for each other; a
#: watch's build leaves no record for the no-op fast path, the next `build` decides.
WATCH_PREVIEW_SCALE = 0.5


def screen_size(campaign: Campaign, scale: float = WATCH_PREVIEW_SCALE) -> Campaign:
    """`campaign` with its preview providers that set no `scale` drawing at `scale`."""
    specs = {name: replace(spec, options={**spec.options, "scale": scale})
             if spec.kind == "preview" and "scale" not in spec.options else spec
             for name, spec in campaign.providers.items()}
    return campaign if specs == campaign.providers else replace(campaign, providers=specs)


@dataclass(frozen=True)
class WatchEvent:
    """What the watch loop did, for callers that follow along (the tests, a UI)."""

    #: serving | changed (a burst of saves settled; a rebuild starts) | building (the
    #: campaign loaded; its build starts) | built | failed | stopped
    kind: str
    number: int = 0  # the build's number: 1 is the first build
    report: BuildReport | None = None
    error: str | None = None
    changed: tuple[str, ...] = ()  # the files whose change started this build
    url: str | None = None  # the review page's address (kind "serving")
    latency: float | None = None  # seconds from the last save to the end of the build
    campaign: Campaign | None = None  # the campaign being built (kind "building")
    #: Every job of the build, before any runs (kind "building").
    assessments: tuple[Assessment, ...] = ()


@dataclass(frozen=True)
class WatchSet:
    """The files and folders a campaign is built from, and the folders it writes to."""

    campaign: Path
    files: frozenset[Path]  # the campaign file and the reference images
    folders: tuple[Path, ...]  # template folders: any file under them counts
    ignored: tuple[Path, ...] = ()  # the output and cache folders

    @classmethod
    def of(cls, campaign: Campaign) -> WatchSet:
        refs = {r for asset in campaign.assets for r in asset.references}
        return cls(campaign.path, frozenset({campaign.path, *refs}), campaign.template_dirs,
                   (campaign.out, campaign.cache_dir))

    def roots(self) -> dict[Path, bool]:
        """Folders to watch, each with whether to watch it recursively.

        A file is watched through its folder, not by itself: editors that save by writing
        a new file and renaming it over the old one would end a watch on the file.
        """
        roots = {folder: True for folder in self.folders if folder.is_dir()}
        for file in self.files:
            parent = file.parent
            if parent.is_dir() and not any(parent.is_relative_to(f) for f in roots
                                           if roots[f]):
                roots.setdefault(parent, False)
        # A recursive root inside another recursive root is watched already.
        return {r: rec for r, rec in roots.items()
                if not any(r != o and roots[o] and r.is_relative_to(o) for o in roots)}

    def relevant(self, path: Path) -> bool:
        """Whether a change to `path` can change the build."""
        if any(path.is_relative_to(folder) for folder in self.ignored):
            return False  # the build's own writes (the outputs, the page, the cache)
        return path in self.files or any(path.is_relative_to(f) for f in self.folders)


class _Changes:
    """Changed paths reported by the watcher threads, waited for by the build loop."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._paths: set[str] = set()
        self._first = self._last = 0.0

    def add(self, paths: Iterable[str]) -> None:
        with self._cond:
            now = time.monotonic()
            if not self._paths:
                self._first = now
            self._paths.update(paths)
            self._last = now
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def take(self, stop: threading.Event) -> set[str] | None:
        """The paths of the next burst of changes, once it has settled; None when stopped."""
        with self._cond:
            while not self._paths:
                if stop.is_set():
                    return None
                # Watchers wake us when stopped; the timeout is only a safety net.
                self._cond.wait(1.0)
            while not stop.is_set():
                until = min(self._last + QUIET_S, self._first + MAX_WAIT_S)
                remaining = until - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)  # a new save moves `_last`, and the deadline
            if stop.is_set():
                return None
            paths, self._paths = self._paths, set()
            return paths


class _Either:
    """Set when either event is (watchfiles checks `is_set()` every step)."""

    def __init__(self, a: threading.Event, b: threading.Event) -> None:
        self.a, self.b = a, b

    def is_set(self) -> bool:
        return self.a.is_set() or self.b.is_set()


class _RootWatcher:
    """One watched folder, in a thread of its own (watchfiles watches a fixed set)."""

    def __init__(self, root: Path, recursive: bool, owner: Watcher) -> None:
        self.root, self.recursive, self.owner = root, recursive, owner
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"qwenbuild-watch:{root.name}",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import watchfiles

        default = watchfiles.DefaultFilter()  # editors' swap and backup files

        def wanted(change: watchfiles.Change, path: str) -> bool:
            return default(change, path) and self.owner.watch_set.relevant(Path(path))

        try:
            for changes in watchfiles.watch(
                self.root, watch_filter=wanted, debounce=_DEBOUNCE_MS, step=_STEP_MS,
                stop_event=_Either(self.stop, self.owner.stop), recursive=self.recursive,
                raise_interrupt=False,
            ):
                self.owner.changes.add(path for _, path in changes)
        except Exception as exc:  # the folder vanished, or the OS ran out of watches
            log.warning("stopped watching %s: %s", self.root, exc)
        finally:
            self.owner.changes.wake()


class Watcher:
    """The watch loop: build, wait for changes, rebuild; see the module's docstring."""

    def __init__(self, campaign_path: Path, *, max_jobs: int | None, stop: threading.Event,
                 on_status: Callable[[WatchEvent], None] | None = None,
                 on_job: Callable[[JobResult], None] | None = None,
                 server: LiveServer | None = None, live: LiveState | None = None,
                 on_stopping: Callable[[], None] | None = None,
                 on_activity: Callable[[Activity], None] | None = None,
                 reviewer: str | None = None, full_size: bool = False) -> None:
        self.given = campaign_path  # for messages: as the user typed it
        self.on_stopping = on_stopping
        self.on_activity = on_activity
        self.path = campaign_path.resolve()
        self.max_jobs = max_jobs
        #: Previews at their full size (else WATCH_PREVIEW_SCALE, see `screen_size`).
        self.full_size = full_size
        self.stop = stop
        self.on_status = on_status
        self.on_job = on_job
        self.server, self.live = server, live
        self.reviewer = reviewer  # who the page's decisions are by (None: found on first use)
        self.changes = _Changes()
        self.watch_set = WatchSet(self.path, frozenset({self.path}), ())
        self._roots: dict[tuple[Path, bool], _RootWatcher] = {}
        self.number = 0

    def run(self) -> None:
        """Build, then rebuild after every burst of changes until `stop` is set."""
        self._follow(self.watch_set)
        if self.server is not None:
            self.server.start()
            self.emit(WatchEvent("serving", url=self.server.url))
        self._rebuild(set())
        while (changed := self.changes.take(self.stop)) is not None:
            self._rebuild(changed)

    def close(self) -> None:
        """Stop the watcher threads."""
        self.stop.set()
        for watcher in self._roots.values():
            watcher.stop.set()
        for watcher in self._roots.values():
            watcher.thread.join(timeout=2)
        self._roots.clear()

    def emit(self, event: WatchEvent) -> None:
        if self.on_status is not None:
            self.on_status(event)

    def _follow(self, watch_set: WatchSet) -> None:
        """Watch what `watch_set` names: start watchers for new folders before stopping the
        ones no longer needed, so that no change falls between the two."""
        self.watch_set = watch_set
        wanted = set(watch_set.roots().items())
        for root, recursive in wanted - set(self._roots):
            self._roots[(root, recursive)] = _RootWatcher(root, recursive, self)
            log.info("watching %s%s", root, " (and below)" if recursive else "")
        for key in set(self._roots) - wanted:
            self._roots.pop(key).stop.set()

    def _shown(self, path: str | Path) -> str:
        return os.path.relpath(path, self.path.parent).replace(os.sep, "/")

    def _rebuild(self, changed: set[str]) -> None:
        """Reload the campaign and build it; report an invalid campaign and carry on."""
        self.number += 1
        shown = tuple(sorted(self._shown(p) for p in changed))
        if shown:
            self.emit(WatchEvent("changed", self.number, changed=shown))
        try:
            campaign = load_campaign(self.given)
            # Follow the edit before building: changes during the build must be seen.
            self._follow(WatchSet.of(campaign))
            if self.server is not None:
                self.server.set_root(campaign.out, campaign.name)
                if self.reviewer is None:
                    self.reviewer = default_reviewer(campaign.root)
                self.server.set_review(ReviewTarget(campaign.path, campaign.name, campaign.out,
                                                    campaign.cache_dir), self.reviewer)
            store = open_store(campaign.cache_dir, campaign.repo_root)
            built = campaign if self.full_size else screen_size(campaign)
            the_plan = plan(built, store=store)
            if self.live is not None:
                self.live.rebuilding()

            def started(assessments: list[Assessment]) -> None:
                self.emit(WatchEvent("building", self.number, changed=shown,
                                      campaign=campaign, assessments=tuple(assessments)))

            report = asyncio.run(build_plan(the_plan, BuildOptions(
                max_generate=self.max_jobs, on_event=self.on_job, on_plan=started,
                on_interrupt=self.on_stopping, on_activity=self.on_activity,
                record_noop=built is campaign), store=store))
        except QwenbuildError as exc:  # invalid input, the spending guard, a held lock
            self._failed(str(exc), shown)
            return
        except Exception as exc:  # a bug of ours: say so, and keep the session alive
            log.info("rebuild failed", exc_info=True)  # the traceback, with -v
            self._failed(f"internal error: {type(exc).__name__}: {exc} (run with -v for "
                         "the traceback)", shown)
            return
        if report.interrupted:
            # Ctrl-C arrived during the build: asyncio cancelled it, the build kept what had
            # finished and returned. The interrupt is for the watch: end it.
            raise KeyboardInterrupt
        latency = _since_saved(changed)
        if self.live is not None:
            self.live.built()
        self.emit(WatchEvent("built", self.number, report=report, changed=shown,
                              latency=latency))

    def _failed(self, message: str, shown: tuple[str, ...]) -> None:
        if self.live is not None:
            self.live.failed(message)
        self.emit(WatchEvent("failed", self.number, error=message, changed=shown))


def _since_saved(changed: set[str]) -> float | None:
    """Seconds from the newest change among `changed` (its mtime) to now."""
    times = []
    for path in changed:
        try:
            times.append(os.stat(path).st_mtime)
        except OSError:
            continue  # deleted: no save time to measure from
    return max(0.0, time.time() - max(times)) if times else None


def watch(campaign_path: str | os.PathLike[str], *, port: int = 8000, serve: bool = True,
          max_jobs: int | None = DEFAULT_MAX_JOBS,
          on_status: Callable[[WatchEvent], None] | None = None,
          on_job: Callable[[JobResult], None] | None = None,
          stop_event: threading.Event | None = None,
          on_stopping: Callable[[], None] | None = None,
          on_activity: Callable[[Activity], None] | None = None,
          reviewer: str | None = None, full_size: bool = False) -> None:
    """Build a campaign, then rebuild it on every change until Ctrl-C or `stop_event`.

    With `serve`, the review page is served on 127.0.0.1:`port` (0 picks a free port) and
    open pages reload after each rebuild. `max_jobs` bounds the jobs each rebuild may send
    to a paid provider (None: no bound). `on_status` hears every WatchEvent, `on_job`
    every finished job, `on_activity` the build's requests and retries as they happen
    (a progress display), `on_stopping` the moment Ctrl-C starts the stop (a build it
    interrupted is saving what finished). `reviewer`: who the page's decisions are by
    (default: QWENBUILD_REVIEWER, else git config user.name). `full_size`: the preview's
    comps at their full size (see WATCH_PREVIEW_SCALE). Returns normally on Ctrl-C,
    wherever it lands (after a "stopped" event).
    """
    path = Path(campaign_path)
    if not path.is_file():
        raise CampaignError(f"{path}: no such file")
    live = LiveState() if serve else None
    server = LiveServer(live, port) if live is not None else None  # a busy port fails now
    watcher: Watcher | None = None
    try:
        if server is not None:
            server.httpd.title = path.stem
        watcher = Watcher(path, max_jobs=max_jobs, stop=stop_event or threading.Event(),
                          on_status=on_status, on_job=on_job, server=server, live=live,
                          on_stopping=on_stopping, on_activity=on_activity,
                          reviewer=reviewer, full_size=full_size)
        watcher.run()
    except KeyboardInterrupt:
        # Ctrl-C is how a watch ends: a build it interrupted saved what it finished.
        if on_stopping is not None:
            on_stopping()
    finally:
        if watcher is not None:
            watcher.close()
        if server is not None:
            server.stop()
    if on_status is not None:
        on_status(WatchEvent("stopped", watcher.number if watcher is not None else 0))
