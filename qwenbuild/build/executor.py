"""The executor: run a plan's jobs, put images in the store, write outputs and the manifest.

For each job not up to date: an image in the store is restored without calling the
provider; a miss asks the provider (bounded per provider, retried on transient faults),
verifies the image with Pillow, puts it in the store, then writes the output. A failed job
never stops the others. Before paying for a key, the build claims it in the store (a
per-key lock on this machine, a lease in the team cache): a build that finds the key
claimed waits for the image to appear instead of paying for it too. Work that follows a
job or the build (text check and rerolls, export renditions, the review page) runs as
steps (`steps.py`). The manifest is written once, atomically, when the build ends or is
interrupted.

The review file (review/decisions.py) locks approved and picked outputs: `assess` makes
their jobs `Action.LOCKED` when their inputs changed, and the executor never writes a
locked output (a guard in `write_output`, whatever step asks). With `candidates`, the new
image of a locked job goes beside it (`<stem>.candidate.<ext>`, the manifest's
`candidates`); a candidate that no longer stands for a locked output's inputs is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from .. import noop
from ..campaign import Campaign
from ..contracts import Action, CacheRecord, JobStatus, ManifestEntry, Reason
from ..costs import check_budget, estimate
from ..errors import BudgetError, FileSystemError, InputError, ProviderError
from ..exports import ExportsStep
from ..fsutil import (
    check_writable,
    file_sha256,
    shown_path,
    sweep_temporary_files,
    write_chunks_if_changed,
    write_fault,
)
from ..images import verify_image
from ..keys import normalise
from ..manifest import Manifest
from ..plan import (
    Assessment,
    Job,
    Plan,
    Selection,
    assess,
    assess_one,
    candidate_of,
    candidate_path,
    plan,
)
from ..plan.shard import Shard, shard_plan
from ..prompts import Prompts
from ..provenance import write_output
from ..providers.base import TaskHandle, TaskUnknown
from ..redact import redact, secrets_in_environment
from ..retry import retry_delay
from ..review.decisions import ReviewFile, review_path
from ..review.page import ReviewPageStep
from ..store import Claim, ClaimState, PendingTask, StatCache, Store, open_store
from ..textcheck.choices import recover_choice, restore_source
from ..textcheck.reroll import VerifyTextStep
from .report import INTERRUPTED, Activity, BuildReport, JobResult
from .steps import Step

log = logging.getLogger(__name__)

#: A lease lasts the provider's whole time for a job (`timeout`, retries included) plus
#: this margin for verifying, storing and uploading the image.
LEASE_MARGIN = 60.0
#: A build waiting for another's image looks again after this long at first, then less and
#: less often, up to `_POLL_MAX`.
_POLL_FIRST, _POLL_MAX = 0.2, 2.0
#: How often a wait is reported (BuildOptions.on_wait), in seconds.
_WAIT_REPORT = 15.0

#: on_wait(job, holder, seconds until its lease ends or None) while a job waits for the
#: image another build is making.
WaitCallback = Callable[[Job, str, float | None], None]

T = TypeVar("T")


@dataclass(frozen=True)
class BuildOptions:
    force: bool = False
    #: Cap on jobs in flight across all providers (None: the sum of provider concurrency).
    jobs: int | None = None
    #: Called as on_event(result) when a job finishes (progress display).
    on_event: Callable[[JobResult], None] | None = None
    #: Called once with the assessments before any job runs.
    on_plan: Callable[[list[Assessment]], None] | None = None
    #: Refuse to start when more than this many jobs would call a paid provider (a
    #: spending guard for watch mode); None: no limit.
    max_generate: int | None = None
    #: Refuse to start when the estimated cost is over this many USD; None: the
    #: campaign's `budget` (checked on every build, watch rebuilds included).
    budget_usd: float | None = None
    #: Read each image's text back and reroll what scores under `min_score`, at most
    #: `max_rerolls` times per image (qwenbuild/textcheck/reroll.py); with `repair`, a
    #: red image is first repaired by an edit request (repairs count in `max_rerolls`).
    verify_text: bool = False
    min_score: float = 1.0
    max_rerolls: int = 2
    #: Never call a provider: what neither cache holds fails (`qwenbuild pull`).
    restore_only: bool = False
    #: Called while a job waits for another build's image (progress display).
    on_wait: WaitCallback | None = None
    #: With verify_text: record the result in every manifest entry checked (else only in
    #: the entries the build writes anyway; see textcheck/reroll.py).
    record_text: bool = False
    #: Called with each Activity (the estimate, requests, answers, retries) as it happens.
    on_activity: Callable[[Activity], None] | None = None
    #: Called once when the build notices Ctrl-C (its jobs are cancelled; what finished is
    #: being saved): the CLI stops further Ctrl-Cs from interrupting that.
    on_interrupt: Callable[[], None] | None = None
    #: Make the new image of a locked output (approved or picked, inputs changed) beside
    #: it, as `<stem>.candidate.<ext>`.
    candidates: bool = False
    #: Asset ids (globs) whose locks this build releases: their approved outputs are
    #: rebuilt like any other (the decisions then describe an earlier image: outdated).
    unlock: tuple[str, ...] = ()
    #: With verify_text: repair an image whose text reads wrong by an edit request before
    #: rerolling it (textcheck/reroll.py).
    repair: bool = False
    #: Whether an up-to-date result may be recorded for the no-op fast path (noop.py):
    #: not when the campaign built is not the one on disk (watch's screen-size previews).
    record_noop: bool = True


def default_steps(options: BuildOptions) -> list[Step]:
    """The steps of `qwenbuild build`: the text check (with --verify-text), export
    renditions, then the review page (which shows the other two)."""
    steps: list[Step] = []
    if options.verify_text:
        steps.append(VerifyTextStep(options.min_score, options.max_rerolls,
                                    options.max_generate, options.budget_usd,
                                    record=options.record_text, repair=options.repair))
    steps += [ExportsStep(), ReviewPageStep()]
    return steps


def build(campaign: Campaign, selection: Selection | None = None,
          options: BuildOptions | None = None, store: Store | None = None,
          shard: Shard | None = None) -> BuildReport:
    """Build the selected jobs (of one shard) of a campaign with the default steps. Raises
    InputError before writing anything."""
    store = store or open_store(campaign.cache_dir, campaign.repo_root)
    the_plan = shard_plan(plan(campaign, selection, store), shard)
    return asyncio.run(build_plan(the_plan, options or BuildOptions(), store=store))


async def build_plan(the_plan: Plan, options: BuildOptions | None = None,
                     steps: Sequence[Step] | None = None,
                     store: Store | None = None) -> BuildReport:
    """Build a plan. `steps` default to `default_steps(options)`.

    Whatever may refuse the build comes first and writes nothing (not even a lock file):
    the budget, the spending guard, the steps' input checks, then folders that cannot be
    written. Only then is the output folder locked, and the jobs run."""
    options = options or BuildOptions()
    campaign = the_plan.campaign
    store = store or open_store(campaign.cache_dir, campaign.repo_root)
    started = time.perf_counter()
    chosen = default_steps(options) if steps is None else list(steps)
    run, assessments = await _prepare(the_plan, store, options, chosen, plain=steps is None)
    # A build with nothing to make writes nothing in the output folder (a read-only
    # checkout builds up to date); the cache holds the lock, so it must always be writable.
    _check_folders(campaign, store,
                   output=any(a.action != Action.KEEP for a in assessments)
                   or not campaign.out.is_dir())
    try:
        lock = store.output_lock(campaign.out)
        lock.__enter__()
    except OSError as exc:
        raise FileSystemError(f"{write_fault(exc)}: the cache folder must be writable; set "
                              "QWENBUILD_CACHE_DIR to a writable folder") from None
    try:
        if not run.manifest.same_on_disk():
            # Another build wrote the folder between the survey and the lock: again.
            run, assessments = await _prepare(the_plan, store, options, chosen,
                                              plain=steps is None)
        report = await run.run(assessments, started)
    finally:
        lock.__exit__(None, None, None)
    # Only a build with the default steps goes on (`check --repair` never generates a job
    # afresh: it says which outputs are out of date instead).
    again = _children_of_rewritten(the_plan, assessments, report) if steps is None else ()
    if not again or report.interrupted:
        return report
    # A step (the text check's repair or reroll) replaced an output that was up to date,
    # after its children had been found up to date with the old image: make them again
    # from the new one, within what is left of the spending limits.
    spent = report.cost
    budget = options.budget_usd if options.budget_usd is not None else campaign.budget
    more = replace(
        options,
        budget_usd=None if budget is None else max(0.0, budget - spent),
        max_generate=None if options.max_generate is None else max(
            0, options.max_generate - sum(1 for r in report.results
                                          if r.status == JobStatus.GENERATED and r.job.billable)))
    second = await build_plan(replace(the_plan, jobs=again), more, store=store)
    return _merged(report, second)


def _children_of_rewritten(the_plan: Plan, assessments: Sequence[Assessment],
                           report: BuildReport) -> tuple[Job, ...]:
    """The jobs made from an output this build's steps replaced although the plan had
    found it up to date (so its children were found up to date too), with their own
    children: every job of the plan below such an output. One pass: the plan lists parents
    before their children."""
    kept = {a.job.output for a in assessments if a.action == Action.KEEP}
    changed = {r.job.output for r in report.results
               if r.job.output in kept and r.status in (JobStatus.GENERATED, JobStatus.CACHED)}
    below: list[Job] = []
    for job in the_plan.jobs if changed else ():
        if job.parent in changed:
            below.append(job)
            changed.add(job.output)
    return tuple(below)


def _merged(first: BuildReport, second: BuildReport) -> BuildReport:
    """One report of a build made in two passes (see `build_plan`): the second pass's
    results replace the first's for the jobs it made again."""
    again = {r.job.output for r in second.results}
    return replace(
        first,
        results=[r for r in first.results if r.job.output not in again] + second.results,
        stale=sorted(set(first.stale) | set(second.stale)),
        interrupted=second.interrupted,
        seconds=first.seconds + second.seconds,
        exports=sorted(set(first.exports) | set(second.exports)),
        estimated_usd=None if first.estimated_usd is None and second.estimated_usd is None
        else (first.estimated_usd or 0.0) + (second.estimated_usd or 0.0),
        problems=first.problems + [p for p in second.problems if p not in first.problems],
        reviews={**first.reviews, **second.reviews})


async def _prepare(the_plan: Plan, store: Store, options: BuildOptions, steps: list[Step],
                   plain: bool) -> tuple[Build, list[Assessment]]:
    """Read what the build would do and refuse it (raising) over its limits or on bad
    input. Writes nothing but what the team cache holds of the jobs to generate, into the
    local cache (a restore costs nothing, so the spending checks count only what is left
    to pay for)."""
    campaign = the_plan.campaign
    manifest = Manifest.load(campaign.out, campaign.name)
    review = ReviewFile.load(review_path(campaign.path))  # an invalid one stops here
    review.picks(manifest.entries)  # two picks for one group: stop before any request
    stats = store.stat_cache(campaign.out)
    assessments = assess(
        the_plan, manifest.entries, store, stats, force=options.force,
        locks=review.locks(options.unlock) if review.exists else None,
        candidates=manifest.candidates if options.candidates else None)
    assessments = await asyncio.to_thread(from_team_cache, store, assessments, options.force)
    estimated = None
    if not options.restore_only:  # nothing is paid for: no spending guard
        _check_limit(assessments, options.max_generate)
        estimated = check_budget(the_plan, assessments, options.budget_usd)
    run = Build(the_plan, store, manifest, stats, options, steps, plain=plain, review=review)
    run.estimated_usd = estimated.usd if estimated is not None else None
    for step in steps:
        step.prepare(run, assessments)  # input errors: now, before anything is sent
    return run, assessments


def _check_folders(campaign: Campaign, store: Store, output: bool = True) -> None:
    """The output folder (when `output`) and the cache folder can be written: else one
    message, before any request (a read-only mount, `out = "/proc/x"`, a file in the way,
    no permission)."""
    folders = [(store.root, "the cache folder", "set QWENBUILD_CACHE_DIR to a writable folder")]
    if output:
        folders.insert(0, (campaign.out, "the output folder", "change `out` in [campaign] or "
                           "fix the folder's permissions"))
    for folder, what, hint in folders:
        try:
            check_writable(folder)
        except OSError as exc:
            shown = shown_path(folder, campaign.root)
            raise FileSystemError(f"{campaign.shown}: cannot write {what} {shown}: "
                              f"{exc.strerror or exc}; {hint}. Nothing was requested") from None


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


def from_team_cache(store: Store, assessments: list[Assessment],
                    force: bool = False) -> list[Assessment]:
    """The assessments with every job the team cache holds turned from GENERATE into
    RESTORE, its image downloaded (verified) into the local store. Only when something is
    to be generated: an up-to-date build makes no request to the team cache. Raises
    RemoteCacheError (exit 2) for a team cache that cannot work, before anything is paid."""
    wanted = [(a.job.key, a.job.ext) for a in assessments
              if a.action == Action.GENERATE and not a.job.pending]
    if store.remote is None or not wanted or not store.remote_ready() or force:
        return assessments
    found = store.fetch_many(wanted)
    if not found:
        return assessments
    return [replace(a, action=Action.RESTORE,
                    reasons=(Reason.RESTORED,) if a.reasons == (Reason.NEW,) else a.reasons)
            if a.action == Action.GENERATE and a.job.key in found else a
            for a in assessments]


class _Wait:
    """A job waiting for the image another build is making: polls that grow further apart,
    a report now and then, and a bound (a lease ends by itself; a process on this machine
    holds its lock until it ends, so it gets the lease's time)."""

    def __init__(self, job: Job, ttl: float, report: WaitCallback | None) -> None:
        self.job = job
        self.ttl = ttl
        self.report = report
        self.started: float | None = None
        self.next_report = 0.0
        self.delay = _POLL_FIRST

    async def wait(self, claim: Claim) -> None:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        waited = now - self.started
        if (claim.expires is None and waited > self.ttl) or waited > 2 * self.ttl:
            raise ProviderError(f"{claim.holder or 'another build'} has been making this "
                                f"image for over {self.ttl:g}s; not waiting longer (run the "
                                "build again once it has finished)")
        if self.report is not None and now >= self.next_report:
            left = claim.expires - time.time() if claim.expires is not None else None
            self.report(self.job, claim.holder, left)
            self.next_report = now + _WAIT_REPORT
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 1.5, _POLL_MAX)


def _window(concurrency: int) -> int:
    """How many jobs of a provider are under way at once: its concurrency, as many again
    verifying, storing and writing (or restoring, or checking text) meanwhile, and a few
    waiting for another build's image."""
    return 2 * concurrency + 4


def _check_limit(assessments: list[Assessment], limit: int | None) -> None:
    if limit is None:
        return
    paid = [a for a in assessments if a.action == Action.GENERATE and a.job.billable]
    if len(paid) > limit:
        shown = ", ".join(a.job.label for a in paid[:5]) + (", ..." if len(paid) > 5 else "")
        raise BudgetError(f"{len(paid)} jobs would call a paid provider, over the limit of "
                          f"{limit} per build ({shown}); raise --max-jobs or narrow the build")


class Build:
    """One running build: the state the jobs share, and the services steps may use
    (`BuildContext`)."""

    def __init__(self, the_plan: Plan, store: Store, manifest: Manifest, stats: StatCache,
                 options: BuildOptions, steps: list[Step], plain: bool = False,
                 review: ReviewFile | None = None) -> None:
        self.plan = the_plan
        self.store = store
        self.manifest = manifest
        self.stats = stats
        self.options = options
        self.steps = steps
        #: The default steps: a no-op of this build can be answered by noop.py.
        self.plain = plain
        self.review = review if review is not None else ReviewFile(
            review_path(the_plan.campaign.path))
        self.previous: Mapping[str, ManifestEntry] = dict(manifest.entries)
        self.results: dict[str, JobResult] = {}
        #: File-system faults that failed no job (a cache write that failed, say).
        self.problems: list[str] = []
        #: Ctrl-C came: what was received is being kept, nothing more is sent.
        self.stopping = False
        self._slots: dict[str, tuple[asyncio.Semaphore, ...]] = {}
        self._done: dict[str, asyncio.Event] = {}
        #: The estimate the budget check made before the build (for the summary).
        self.estimated_usd: float | None = None
        #: Outputs the review locks: nothing may write them (but a restore of their key).
        self._locked: frozenset[str] = frozenset()
        #: Job keys being generated by this build (see `generate`).
        self._making: dict[str, asyncio.Event] = {}

    @property
    def campaign(self) -> Campaign:
        return self.plan.campaign

    async def run(self, assessments: list[Assessment], started: float) -> BuildReport:
        campaign = self.campaign
        if self.options.on_plan:
            self.options.on_plan(assessments)
        if self.options.on_activity:
            usd = self.estimated_usd
            if usd is None:
                usd = estimate(self.plan, assessments).usd
            self.options.on_activity(Activity("estimate", usd=usd))
        stale = self._stale()
        self._locked = frozenset(a.job.output for a in assessments if a.locked)
        sweep_temporary_files(campaign.out)  # under the output lock: all of them are stale
        if any(a.action != Action.KEEP for a in assessments):
            # The cache is shared with other builds: only leftovers old enough to be a
            # killed process's (a no-op build does not even look).
            self.store.sweep_temporary()
        interrupted = False
        report = BuildReport(campaign, [], stale)
        try:
            try:
                await self._run_jobs(assessments)
            except asyncio.CancelledError:
                # Ctrl-C: asyncio cancels the build; what finished is kept and reported.
                interrupted = True
            if not interrupted:
                self._sweep_candidates(assessments)
            report.results = [self.results.get(a.job.output)
                              or JobResult(a.job, JobStatus.FAILED, a.reasons,
                                           error=INTERRUPTED)
                              for a in assessments]
            report.interrupted = interrupted
            report.seconds = round(time.perf_counter() - started, 3)
            report.problems.extend(self.problems)
            report.estimated_usd = self.estimated_usd
            report.reviews = self._reviews(report.results)
            for step in self.steps:
                try:
                    step.build_finished(self, report)
                except OSError as exc:
                    # The outputs are what was paid for, and they are fine: a page or a
                    # rendition that cannot be written is reported, the build goes on.
                    report.problems.append(write_fault(exc, campaign.root))
        finally:
            # The manifest records what succeeded, whatever failed before; the records of
            # the cache only save work next time (a failure to write them costs nothing).
            try:
                self.manifest.save()
            except OSError as exc:
                report.problems.append(f"{write_fault(exc, campaign.root)}; the outputs "
                                       "written are kept, and the next build records them")
            for save in (self.stats.save, self.plan.remember):
                try:
                    save()
                except OSError as exc:
                    log.warning("%s (a cache record: the next build redoes its work)",
                                write_fault(exc, campaign.root))
        self._record_noop(report)
        return report

    def _record_noop(self, report: BuildReport) -> None:
        """After a plain build of the whole campaign that left every output as the campaign
        says, record what that depends on for the no-op fast path (noop.py); after any
        other build, forget the record (the next build decides)."""
        campaign = self.campaign
        plain = (self.plain and self.options.record_noop and not self.options.force
                 and not self.options.verify_text
                 and len(self.plan.jobs) == len(self.plan.all_outputs))
        clean = (not report.interrupted and not report.failed and not report.stale
                 and not report.problems
                 and not any(r.status == JobStatus.LOCKED for r in report.results)
                 and not any(e.stale for e in self.manifest.exports.values()))
        if not (plain and clean):
            noop.forget(campaign.path)
            return
        files: list[Path] = [campaign.path, *campaign.extra_inputs]
        folders: list[Path] = []
        prompts = Prompts(campaign.template_dirs, campaign.template_root)
        files += prompts.files()
        for root in campaign.template_dirs:
            folders += _folders(root)
        for asset in campaign.assets:
            files += [*asset.references, *(p for p in (asset.init_image, asset.mask) if p)]
        for provider in self.plan.providers.values():
            more_files, more_folders = provider.environment_paths()
            files += more_files
            folders += more_folders
        # Everything in the output folder: outputs, renditions, the manifest, the page.
        for folder, _dirs, names in os.walk(campaign.out):
            folders.append(Path(folder))
            files += [Path(folder) / name for name in names]
        # Outputs as the build last checked their bytes: one that moved since is not
        # recorded as up to date.
        verified = {os.path.abspath(campaign.out / rel): (e[0], e[1], e[3], e[4])
                    for rel, e in self.stats.entries.items() if len(e) == 5}
        # What the fast path prints is not redacted there (redact.py needs `re`): a report
        # that redaction would change is not recorded (the full build prints it).
        if redact(str(campaign.out)) != str(campaign.out):
            noop.forget(campaign.path)
            return
        try:
            write_chunks_if_changed(Path(noop.report_file(campaign.path)),
                                    _noop_report(report), None)
        except (OSError, _NeedsRedaction):
            noop.forget(campaign.path)
            return
        noop.write(campaign.path, tuple(files), tuple(folders),
                   {"jobs": str(len(report.results)), "out": str(campaign.out)}, verified)

    def _reviews(self, results: list[JobResult]) -> dict[str, str]:
        """The review status of each output after the build (`build --json`)."""
        if not self.review.exists:
            return {}
        found = {}
        for r in results:
            rel = r.job.output
            entry = (self.manifest.candidates if r.job.candidate_of else
                     self.manifest.entries).get(rel)
            found[rel] = self.review.status(rel, entry.sha256 if entry else None)
        return found

    def _sweep_candidates(self, assessments: list[Assessment]) -> None:
        """Remove the candidates that no longer stand for a locked output's inputs (the
        output was approved anew, unlocked and rebuilt, or its inputs changed again
        without --candidates). Only for outputs this build considered; a candidate file
        edited since it was written stays (its entry goes)."""
        wanted = {a.job.output: a.job.key for a in assessments if a.job.candidate_of}
        wanted |= {candidate_path(a.job.output): a.job.key
                   for a in assessments if a.action == Action.LOCKED}
        considered = {a.job.output for a in assessments}
        out = self.campaign.out
        for rel, entry in sorted(self.manifest.candidates.items()):
            parent = candidate_of(rel)
            if parent in self.plan.all_outputs and parent not in considered:
                continue  # outside this build's selection
            if wanted.get(rel) == entry.key:
                continue
            target = out / rel
            try:
                if target.is_file() and not target.is_symlink() and \
                        file_sha256(target) == entry.sha256:
                    target.unlink()
            except OSError as exc:
                log.warning("cannot remove the old candidate %s: %s", rel, exc)
            self.manifest.remove_candidate(rel)
            self.stats.forget(rel)

    def _stale(self) -> list[str]:
        """Outputs in the manifest that the campaign no longer makes: marked stale while
        their file is there, forgotten once it is gone."""
        stale = []
        for rel in sorted(self.manifest.entries):
            if rel in self.plan.all_outputs:
                continue
            entry = self.manifest.entries[rel]
            if (self.campaign.out / rel).is_file():
                self.manifest.set(rel, replace(entry, stale=True))
                stale.append(rel)
            else:
                self.manifest.remove(rel)
        return stale

    # -- the jobs -------------------------------------------------------------------------

    async def _run_jobs(self, assessments: list[Assessment]) -> None:
        providers = self.plan.providers
        limits = {name: asyncio.Semaphore(p.spec.concurrency) for name, p in providers.items()}
        total = self.options.jobs or sum(p.spec.concurrency for p in providers.values()) or 1
        overall = asyncio.Semaphore(total)
        # The provider's own slot first: a job queued for a slow provider must not hold a
        # build-wide slot another provider could use meanwhile.
        self._slots = {name: (limit, overall) for name, limit in limits.items()}
        missing_keys = {name: env for name, p in providers.items()
                        if (env := p.info.api_key_env) and not os.environ.get(env)}
        every_job = any(step.wants_up_to_date for step in self.steps)
        # A job made from another job's output waits for that job: parents first, the
        # rest concurrently. Only parents get an event to wait on.
        planned = {a.job.output for a in assessments}
        self._done = {a.job.parent: asyncio.Event() for a in assessments
                      if a.job.parent is not None and a.job.parent in planned}

        async def one(a: Assessment) -> None:
            try:
                if a.job.pending:
                    waited = await self._after_parent(a)
                    if isinstance(waited, JobResult):
                        self._finish(waited)
                        return
                    a = waited
                result = await attempt(a)
                for step in self.steps if not a.locked else ():  # no step touches those
                    if self.stopping:
                        break  # Ctrl-C: no text check (nor reroll) after it
                    if result.status != JobStatus.UP_TO_DATE or step.wants_up_to_date:
                        result = await step.job_finished(self, result)
            except ProviderError as exc:
                result = JobResult(a.job, JobStatus.FAILED, a.reasons, error=str(exc))
            except OSError as exc:
                # A file that cannot be written (disk full, read-only, a folder in its
                # place) fails its job only, naming the file and the cause.
                result = JobResult(a.job, JobStatus.FAILED, a.reasons,
                                   error=write_fault(exc, self.campaign.root))
            self._finish(result)
            # Done with: its request (formed again if a later step asks for it).
            a.job.release()
            result.job.release()

        async def attempt(a: Assessment) -> JobResult:
            job = a.job
            if a.action == Action.KEEP:  # here only for a step that wants every job
                return JobResult(job, JobStatus.UP_TO_DATE, a.reasons)
            if a.action == Action.RESTORE and await self._uninterrupted(
                    asyncio.to_thread(self._restore, job)):
                return JobResult(job, JobStatus.CACHED, a.reasons)
            if self.options.restore_only:
                return JobResult(job, JobStatus.FAILED, a.reasons, error=self._not_cached())
            if job.provider in missing_keys:
                return JobResult(job, JobStatus.FAILED, a.reasons, error=(
                    f"{missing_keys[job.provider]} is not set: provider {job.provider} needs "
                    "an API key in the environment"))
            self.output_file(job)  # refuse an unsafe path before paying for the image
            return await self.generate(job, a.reasons)

        async with AsyncExitStack() as stack:
            for provider in providers.values():
                stack.push_async_callback(provider.aclose)
            # Up-to-date jobs need no task (thousands of them cost nothing but a result
            # each) unless a step wants to see them.
            for a in assessments:
                if a.action == Action.LOCKED:
                    self._finish(JobResult(a.job, JobStatus.LOCKED, a.reasons))
                elif a.action == Action.KEEP and (not every_job or a.locked):
                    self._finish(JobResult(a.job, JobStatus.UP_TO_DATE, a.reasons))
            # Jobs start in plan order, a few more at a time per provider than it takes at
            # once (one waiting for a slot is a whole suspended call chain: thousands of
            # them would cost more memory than the build). Parents come before their
            # children in the plan, so a child only ever waits for a job already started.
            queues: dict[str, deque[Assessment]] = {}
            for a in assessments:
                if a.action == Action.GENERATE or a.action == Action.RESTORE \
                        or (a.action == Action.KEEP and every_job and not a.locked):
                    queues.setdefault(a.job.provider, deque()).append(a)

            async def runner(queue: deque[Assessment]) -> None:
                while queue:
                    await one(queue.popleft())

            tasks = [asyncio.create_task(runner(queue)) for name, queue in queues.items()
                     for _ in range(min(len(queue), _window(providers[name].spec.concurrency)))]
            try:
                await asyncio.gather(*tasks)
            except BaseException as exc:
                self.stopping = True
                if isinstance(exc, asyncio.CancelledError) and self.options.on_interrupt:
                    self.options.on_interrupt()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    def _tell(self, activity: Activity) -> None:
        if self.options.on_activity is not None:
            self.options.on_activity(activity)

    def _finish(self, result: JobResult) -> None:
        self.results[result.job.output] = result
        done = self._done.get(result.job.output)
        if done is not None:
            done.set()
        if self.options.on_event:
            self.options.on_event(result)

    async def _after_parent(self, a: Assessment) -> Assessment | JobResult:
        """Wait for the parent of a pending job, then assess the job with its key; or its
        failure, with the reason, when the parent has no output (nothing is sent)."""
        job = a.job
        assert job.parent is not None
        done = self._done.get(job.parent)
        if done is not None:
            await done.wait()
            parent = self.results.get(job.parent)
            if parent is not None and parent.status == JobStatus.FAILED:
                return JobResult(job, JobStatus.FAILED, a.reasons,
                                 error=f"its parent {job.parent} failed: {parent.error}")
        entry = self.manifest.entries.get(job.parent)
        file = self.campaign.out / job.parent
        if entry is None or not file.is_file():
            return JobResult(job, JobStatus.FAILED, a.reasons, error=(
                f"its parent {job.parent} is not built; build it first (it is outside "
                "the selection)"))
        try:
            resolved = self.plan.resolve(job, entry.sha256, file.read_bytes)
        except (InputError, OSError) as exc:
            return JobResult(job, JobStatus.FAILED, a.reasons, error=str(exc))
        section = self.manifest.candidates if job.candidate_of else self.manifest.entries
        return assess_one(resolved, section.get(job.output), self.campaign.out / job.output,
                          self.store, self.stats, self.options.force)

    def _not_cached(self) -> str:
        """Why a job that may only be restored (`qwenbuild pull`) was not: what was looked
        at, and what would help."""
        remote = self.store.remote
        if remote is None:
            return ("not in the local cache, and no team cache is set up (see \"Working as a "
                    "team\" in the README); qwenbuild build generates it (and pays for it)")
        if remote.down:
            return ("not in the local cache, and the team cache could not be read (see the "
                    "warning above): run qwenbuild pull again once it can be")
        return ("not in the local cache nor the team cache; qwenbuild build generates it "
                "(and pays for it)")

    def _restore(self, job: Job) -> bool:
        """Copy a stored image to the job's output. False when the entry turns out damaged
        (it is discarded: the job is generated again)."""
        # A text check's choice made on another machine is in the committed manifest.
        recover_choice(self.store, job, self.manifest.entries.get(job.output))
        source = restore_source(self.store, job)
        found = self.store.load(source.key, job.ext)
        if found is None:
            return False
        data, record = found
        # The store holds the provider's bytes; the output gets them with its provenance.
        # (A locked output is restored only from the key it was approved with: the same
        # bytes, so the guard of `write_output` is not for this write.)
        self._write(source, data, record, job)
        return True

    # -- services for steps (BuildContext) ------------------------------------------------

    async def generate(self, job: Job, reasons: tuple[Reason, ...],
                       to_output: bool = True) -> JobResult:
        """Generate `job`'s image into the store, then (unless `to_output` is false: a text
        reroll, written only once chosen) into its output and the manifest."""
        if job.pending:  # a bug: only a job with its parent's image may be sent
            raise RuntimeError(f"{job.label}: sent before its parent's output was known")
        if self.stopping:
            raise asyncio.CancelledError  # Ctrl-C came: nothing more is sent
        mine: list[asyncio.Event] = []
        try:
            return await self._generate(job, reasons, to_output, mine)
        finally:
            for made in mine:
                made.set()
                if self._making.get(job.key) is made:
                    del self._making[job.key]

    async def _generate(self, job: Job, reasons: tuple[Reason, ...], to_output: bool,
                        mine: list[asyncio.Event]) -> JobResult:
        provider = self.plan.providers[job.provider]
        spec = provider.spec
        ttl = spec.timeout + LEASE_MARGIN
        attempt = 0
        handle = self._task_handle(job, provider.info.task_retention)
        claim: Claim | None = None
        waiting = _Wait(job, ttl, self.options.on_wait)
        try:
            loop = asyncio.get_running_loop()
            deadline: float | None = None
            generated = None
            sibling: asyncio.Event | None = None
            while generated is None:
                delay = 0.0
                answer: Claim | None = None
                async with contextlib.AsyncExitStack() as held:
                    for slot in self._slots.get(job.provider, ()):
                        await held.enter_async_context(slot)
                    if claim is None:
                        # Two jobs of this build with one key (two provider tables of the
                        # same kind and model, say) make one request: the first to reach
                        # its provider's slot makes it; the other waits for it outside its
                        # slot, then copies the image (or, if it failed, goes on itself).
                        other = self._making.get(job.key)
                        if other is not None and not mine:
                            sibling = other
                        else:
                            if not mine:
                                mine.append(asyncio.Event())
                                self._making[job.key] = mine[0]
                            # Claimed in the provider's slot, right before the first
                            # request: a lease's time is the request's, not the queue's.
                            answer = await asyncio.to_thread(self.store.claim, job.key,
                                                             job.ext, ttl, self.options.force)
                            if answer.state == ClaimState.MINE:
                                claim, answer = answer, None
                    if claim is not None:
                        if deadline is None:  # the job's time starts when first sent
                            deadline = loop.time() + spec.timeout
                        self._tell(Activity("request", job))
                        try:
                            async with asyncio.timeout_at(deadline):
                                generated = await provider.generate(job.request, handle)
                        except TaskUnknown as exc:
                            if handle.resume is None:
                                raise
                            # The provider no longer knows the task an earlier build left:
                            # nothing to collect, so this job is generated again.
                            log.warning("%s: the %s task an earlier build left is gone (%s); "
                                        "generating it again", job.label, job.kind, exc)
                            handle.resume = None
                            self.store.forget_task(job.key)
                            continue
                        except ProviderError as exc:
                            if not exc.retryable or attempt >= spec.max_retries:
                                raise
                            attempt += 1
                            delay = retry_delay(attempt, exc.retry_after)
                            log.info("%s: %s; retry %d/%d in %.1fs", job.label, exc, attempt,
                                     spec.max_retries, delay)
                            self._tell(Activity("retry", job, attempt, spec.max_retries,
                                                delay, str(exc)))
                        finally:
                            self._tell(Activity("answer", job))
                if sibling is not None:
                    await sibling.wait()
                    sibling = None
                    if await asyncio.to_thread(self.store.has, job.key, job.ext):
                        return await self._made_elsewhere(job, reasons, to_output)
                    continue
                if answer is not None:
                    if answer.state == ClaimState.HIT:
                        return await self._made_elsewhere(job, reasons, to_output)
                    # Another build is paying for it: wait (holding no slot), then ask again
                    # (the claim takes a lease over once it has ended).
                    await waiting.wait(answer)
                    continue
                if generated is None:
                    # Backing off holds no slot: other jobs go out meanwhile.
                    assert deadline is not None
                    if loop.time() + delay > deadline:
                        raise TimeoutError
                    await asyncio.sleep(delay)
        except TimeoutError:
            return JobResult(job, JobStatus.FAILED, reasons,
                             error=f"timed out after {spec.timeout:g}s"
                             + (f" and {attempt} retries" if attempt else ""))
        except ProviderError as exc:
            tries = f" (after {attempt} retries)" if attempt else ""
            return JobResult(job, JobStatus.FAILED, reasons, error=f"{exc}{tries}")
        finally:
            if generated is None and claim is not None:
                # A failure, or a cancelled build: no await here (a cancelled task would be
                # interrupted again), and releasing is quick (a remote that failed is off
                # by now).
                self.store.release(claim)
        received = generated
        lease = claim  # released by keep(), whatever becomes of this task meanwhile

        def keep() -> JobResult:
            try:
                return kept()
            finally:
                if lease is not None:
                    self.store.release(lease)

        def kept() -> JobResult:
            # Decoding a 2K image takes tens of ms: in a thread, outside the provider's
            # slots, so the next request goes out meanwhile.
            try:
                image = verify_image(received.data, job.ext)
            except ProviderError as exc:
                return JobResult(job, JobStatus.FAILED, reasons, error=str(exc))
            # An image that is not what was asked (another size, another variant than the
            # answer should say) was paid for: kept aside, never an output.
            unusable = received.mismatch or provider.size_problem(
                job.request, image.width, image.height)
            record = CacheRecord(
                key=job.key,
                inputs=normalise(job.key_fields),
                provider=job.provider,
                kind=job.kind,
                model=job.model,
                seed=job.seed,
                provider_seed=received.seed,
                cost_usd=received.cost,
                # Provider text written to the cache: a gateway may echo a key in it.
                response_ids={k: redact(str(v)) for k, v in received.response_ids.items()},
                width=image.width,
                height=image.height,
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            )
            if unusable:
                where = self.store.quarantine(job.key, image, record, unusable)
                shown = os.path.relpath(where, self.campaign.root)
                self.store.forget_task(job.key)
                return JobResult(job, JobStatus.FAILED, reasons, cost=received.cost,
                                 error=f"{unusable}; not used: the image is kept for "
                                       f"inspection in {shown} (`cache gc` removes it)")
            self.output_file(job)
            # The store first: once there (and in the team cache, before the claim is
            # released), the image is never paid for again, come what may.
            try:
                stored = self.store.put(job.key, image, record).record
            except OSError as exc:
                if not to_output:
                    raise  # a text reroll lives only in the store
                # Paid for: the output keeps it even when the cache cannot (disk full).
                self.problems.append(f"{write_fault(exc, self.campaign.root)}: the image of "
                                     f"{job.output} is not in the cache (its output keeps it)")
                stored = replace(record, sha256=hashlib.sha256(image.data).hexdigest(),
                                 bytes=len(image.data))
            self.store.forget_task(job.key)
            if lease is not None:
                self.store.release(lease)
            if to_output:
                self.write_output(job, image.data, stored)
            return JobResult(job, JobStatus.GENERATED, reasons, cost=received.cost)

        # Received, so paid for: kept to the end even when Ctrl-C comes meanwhile.
        return await self._uninterrupted(asyncio.to_thread(keep))

    async def _uninterrupted(self, work: Coroutine[object, object, T]) -> T:
        """Run `work` (file writes in a thread) to the end even when the build is cancelled
        meanwhile: a cancelled build then counts it as finished, and no thread writes into
        the output folder after the manifest is saved. The build is then stopping: no
        further request goes out."""
        task = asyncio.ensure_future(work)
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                self.stopping = True
        return task.result()

    async def _made_elsewhere(self, job: Job, reasons: tuple[Reason, ...],
                              to_output: bool) -> JobResult:
        """The image of `job` was made by another build meanwhile and is in the local
        store now: restore it instead of paying for it."""
        if to_output:
            found = await asyncio.to_thread(self.store.load, job.key, job.ext)
            if found is None:
                return JobResult(job, JobStatus.FAILED, reasons, error=(
                    "another build made this image, but its cache entry is damaged; run "
                    "the build again"))
            data, record = found
            await self._uninterrupted(asyncio.to_thread(self.write_output, job, data, record))
        return JobResult(job, JobStatus.CACHED, reasons)

    def _task_handle(self, job: Job, retention: float | None) -> TaskHandle:
        """The handle lent to the provider for `job`'s asynchronous task: the task an
        earlier build recorded for this job (to resume, within the provider's retention),
        and how to record a new one before waiting for it."""
        if retention is None:
            return TaskHandle()
        resume = None
        pending = self.store.pending_task(job.key)
        if pending is not None and pending.kind == job.kind and pending.ids:
            if pending.expired():
                log.warning("%s: the %s task submitted %s is past %s's retention (%s); "
                            "generating it again", job.label, job.kind,
                            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(pending.submitted)),
                            job.kind, _duration(pending.retention))
                self.store.forget_task(job.key)
            else:
                log.info("%s: resuming the %s task an earlier build submitted (%s)",
                         job.label, job.kind, ", ".join(pending.ids.values()))
                resume = dict(pending.ids)

        def submitted(ids: Mapping[str, str]) -> None:
            self.store.record_task(job.key, PendingTask(job.kind, dict(ids), time.time(),
                                                        retention))

        return TaskHandle(resume=resume, on_submitted=submitted,
                          on_finished=lambda: self.store.forget_task(job.key))

    def output_file(self, job: Job) -> Path:
        """The output file of a job, refusing any path that resolves outside the output root
        (ids and provider names are validated, but a symlinked folder could still point
        away)."""
        out = self.campaign.out
        target = out / job.output
        resolved_out = out.resolve()
        if not target.parent.resolve().is_relative_to(resolved_out) or (
            target.is_symlink() and not target.resolve().is_relative_to(resolved_out)
        ):
            raise ProviderError(f"refusing to write {job.output}: it resolves outside {out}",
                                code="unsafe_path")
        return target

    def write_output(self, job: Job, data: bytes, record: CacheRecord,
                     output_of: Job | None = None) -> str:
        """Write `data` with `job`'s provenance as the output of `output_of` (default: `job`
        itself; a text reroll's image is the output of its planned job) and record it."""
        owner = output_of or job
        if owner.output in self._locked:
            raise ProviderError(f"refusing to replace {owner.output}: the review file locks "
                                "it (approved or picked); build --unlock "
                                f"{owner.asset} releases it", code="locked")
        return self._write(job, data, record, owner)

    def _write(self, job: Job, data: bytes, record: CacheRecord, owner: Job) -> str:
        target = self.output_file(owner)
        sha = write_output(target, data, job, record)
        self.record_output(owner, record, sha)
        return sha

    def record_output(self, job: Job, record: CacheRecord, sha: str) -> None:
        target = self.campaign.out / job.output
        section = self.manifest.candidates if job.candidate_of else self.manifest.entries
        previous = section.get(job.output)
        # The same bytes say the same text: a text check's result (and the reroll attempts
        # it lists) survives a restore of the very image it read.
        text_check = (previous.text_check if previous is not None and previous.sha256 == sha
                      else None)
        record_in = self.manifest.set_candidate if job.candidate_of else self.manifest.set
        record_in(job.output, ManifestEntry(
            asset=job.asset,
            aspect=job.aspect,
            provider=job.provider,
            kind=job.kind,
            model=job.model,
            seed=job.seed,
            provider_seed=record.provider_seed,
            key=job.key,
            sha256=sha,
            bytes=target.stat().st_size,
            width=record.width if record.width is not None else job.width,
            height=record.height if record.height is not None else job.height,
            cost_usd=record.cost_usd,
            text_check=text_check,
            locale=job.locale,
            parent=job.parent,
        ))
        self.stats.remember(job.output, target, sha)


class _NeedsRedaction(Exception):
    """The no-op report holds something redact.py would blank out."""


def _noop_report(report: BuildReport) -> Iterator[bytes]:
    """What `build --json` prints for a no-op build of the same jobs (noop.SECONDS for its
    duration), as `print_json` would print it, written piece by piece: one job at a time,
    never the whole text nor every job's dict at once."""
    head = json.dumps({  # BuildReport.to_json's keys, in its order; costs as a no-op's
        # (a sum of nothing, rounded: 0)
        "generated": 0, "cached": 0, "up_to_date": len(report.results), "failed": 0,
        "locked": 0, "cost_usd": 0, "estimated_cost_usd": 0, "cost_unreported": 0,
        "stale": [], "interrupted": False, "seconds": 0.0, "exports": [], "problems": [],
        "jobs": [],
    }, indent=2, ensure_ascii=False)
    before, after = head.rsplit('"jobs": []', 1)
    yield (before + '"jobs": [').encode()
    root = report.campaign.root
    secrets = secrets_in_environment()
    for i, result in enumerate(report.results):
        job = json.dumps(report.job_json(result, root, up_to_date=True), indent=2,
                         ensure_ascii=False)
        if redact(job, secrets) != job:
            raise _NeedsRedaction
        yield ((",\n    " if i else "\n    ") + job.replace("\n", "\n    ")).encode()
    yield (("\n  ]" if report.results else "]") + after).encode()


def _folders(root: Path) -> list[Path]:
    """`root` and every folder below it (a file added or removed changes one's mtime)."""
    found = []
    for folder, _dirs, _files in os.walk(root):
        found.append(Path(folder))
    return found
