"""The executor: run a plan's jobs, put images in the store, write outputs and the manifest.

For each job not up to date: an image in the store is restored without calling the
provider; a miss asks the provider (bounded per provider, retried on transient faults),
verifies the image with Pillow, puts it in the store, then writes the output. A failed job
never stops the others. Work that follows a job or the build (text check and rerolls,
export renditions, the review page) runs as steps (`steps.py`). The manifest is written
once, atomically, when the build ends or is interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from ..campaign import Campaign
from ..contracts import Action, CacheRecord, JobStatus, ManifestEntry, Reason
from ..costs import check_budget
from ..errors import BudgetError, InputError, ProviderError
from ..exports import ExportsStep
from ..fsutil import sweep_temporary_files
from ..images import verify_image
from ..keys import normalise
from ..manifest import Manifest
from ..plan import Assessment, Job, Plan, Selection, assess, assess_one, plan
from ..provenance import write_output
from ..providers.base import TaskHandle, TaskUnknown
from ..retry import retry_delay
from ..review import ReviewPageStep
from ..store import PendingTask, StatCache, Store
from ..textcheck.choices import restore_source
from ..textcheck.reroll import VerifyTextStep
from .report import INTERRUPTED, BuildReport, JobResult
from .steps import Step

log = logging.getLogger(__name__)


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
    repair: bool = False


def default_steps(options: BuildOptions) -> list[Step]:
    """The steps of `qwenbuild build`: the text check (with --verify-text), export
    renditions, then the review page (which shows the other two)."""
    steps: list[Step] = []
    if options.verify_text:
        steps.append(VerifyTextStep(options.min_score, options.max_rerolls,
                                    options.max_generate, options.budget_usd,
                                    repair=options.repair))
    steps += [ExportsStep(), ReviewPageStep()]
    return steps


def build(campaign: Campaign, selection: Selection | None = None,
          options: BuildOptions | None = None, store: Store | None = None) -> BuildReport:
    """Build the selected jobs of a campaign with the default steps. Raises InputError
    before writing anything."""
    store = store or Store(campaign.cache_dir)
    the_plan = plan(campaign, selection, store)
    return asyncio.run(build_plan(the_plan, options or BuildOptions(), store=store))


async def build_plan(the_plan: Plan, options: BuildOptions | None = None,
                     steps: Sequence[Step] | None = None,
                     store: Store | None = None) -> BuildReport:
    """Build a plan. `steps` default to `default_steps(options)`."""
    options = options or BuildOptions()
    campaign = the_plan.campaign
    store = store or Store(campaign.cache_dir)
    started = time.perf_counter()
    with store.output_lock(campaign.out):
        manifest = Manifest.load(campaign.out, campaign.name)
        stats = store.stat_cache(campaign.out)
        assessments = assess(the_plan, manifest.entries, store, stats, force=options.force)
        _check_limit(assessments, options.max_generate)
        estimated = check_budget(the_plan, assessments, options.budget_usd)
        run = Build(the_plan, store, manifest, stats, options,
                    default_steps(options) if steps is None else list(steps))
        run.estimated_usd = estimated.usd
        return await run.run(assessments, started)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


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
                 options: BuildOptions, steps: list[Step]) -> None:
        self.plan = the_plan
        self.store = store
        self.manifest = manifest
        self.stats = stats
        self.options = options
        self.steps = steps
        self.previous: Mapping[str, ManifestEntry] = dict(manifest.entries)
        self.results: dict[str, JobResult] = {}
        self._slots: dict[str, tuple[asyncio.Semaphore, ...]] = {}
        self._done: dict[str, asyncio.Event] = {}
        #: The estimate the budget check made before the build (for the summary).
        self.estimated_usd: float | None = None

    @property
    def campaign(self) -> Campaign:
        return self.plan.campaign

    async def run(self, assessments: list[Assessment], started: float) -> BuildReport:
        campaign = self.campaign
        for step in self.steps:
            step.prepare(self, assessments)  # input errors: now, before anything is sent
        if self.options.on_plan:
            self.options.on_plan(assessments)
        stale = self._stale()
        sweep_temporary_files(campaign.out)
        interrupted = False
        try:
            try:
                await self._run_jobs(assessments)
            except asyncio.CancelledError:
                # Ctrl-C: asyncio cancels the build; what finished is kept and reported.
                interrupted = True
            results = [self.results.get(a.job.output)
                       or JobResult(a.job, JobStatus.FAILED, a.reasons, error=INTERRUPTED)
                       for a in assessments]
            report = BuildReport(campaign, results, stale, interrupted,
                                 round(time.perf_counter() - started, 3),
                                 estimated_usd=self.estimated_usd)
            for step in self.steps:
                step.build_finished(self, report)
        finally:
            self.manifest.save()
            self.stats.save()
            self.plan.remember()
        return report

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
        # rest concurrently.
        self._done = {a.job.output: asyncio.Event() for a in assessments}

        async def one(a: Assessment) -> None:
            try:
                if a.job.pending:
                    waited = await self._after_parent(a)
                    if isinstance(waited, JobResult):
                        self._finish(waited)
                        return
                    a = waited
                result = await attempt(a)
                for step in self.steps:
                    if result.status != JobStatus.UP_TO_DATE or step.wants_up_to_date:
                        result = await step.job_finished(self, result)
            except (ProviderError, OSError) as exc:
                # A file that cannot be written fails its job only, with the reason.
                detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                result = JobResult(a.job, JobStatus.FAILED, a.reasons,
                                   error=f"cannot write output: {detail}")
            self._finish(result)

        async def attempt(a: Assessment) -> JobResult:
            job = a.job
            if a.action == Action.KEEP:  # here only for a step that wants every job
                return JobResult(job, JobStatus.UP_TO_DATE, a.reasons)
            if a.action == Action.RESTORE and await asyncio.to_thread(self._restore, job):
                return JobResult(job, JobStatus.CACHED, a.reasons)
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
                if a.action == Action.KEEP and not every_job:
                    self._finish(JobResult(a.job, JobStatus.UP_TO_DATE, a.reasons))
            tasks = [asyncio.create_task(one(a)) for a in assessments
                     if a.action != Action.KEEP or every_job]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

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
        return assess_one(resolved, self.manifest.entries.get(job.output),
                          self.campaign.out / job.output, self.store, self.stats,
                          self.options.force)

    def _restore(self, job: Job) -> bool:
        """Copy a stored image to the job's output. False when the entry turns out damaged
        (it is discarded: the job is generated again)."""
        source = restore_source(self.store, job)
        found = self.store.load(source.key, job.ext)
        if found is None:
            return False
        data, record = found
        # The store holds the provider's bytes; the output gets them with its provenance.
        self.write_output(source, data, record, output_of=job)
        return True

    # -- services for steps (BuildContext) ------------------------------------------------

    async def generate(self, job: Job, reasons: tuple[Reason, ...],
                       to_output: bool = True) -> JobResult:
        """Generate `job`'s image into the store, then (unless `to_output` is false: a text
        reroll, written only once chosen) into its output and the manifest."""
        if job.pending:  # a bug: only a job with its parent's image may be sent
            raise RuntimeError(f"{job.label}: sent before its parent's output was known")
        provider = self.plan.providers[job.provider]
        spec = provider.spec
        attempt = 0
        handle = self._task_handle(job, provider.info.task_retention)
        try:
            loop = asyncio.get_running_loop()
            deadline: float | None = None
            generated = None
            while generated is None:
                delay = 0.0
                async with contextlib.AsyncExitStack() as held:
                    for slot in self._slots.get(job.provider, ()):
                        await held.enter_async_context(slot)
                    if deadline is None:  # the job's time starts when it is first sent
                        deadline = loop.time() + spec.timeout
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
                if generated is None:
                    # Backing off holds no slot: other jobs go out meanwhile.
                    if loop.time() + delay > deadline:
                        raise TimeoutError
                    await asyncio.sleep(delay)
            # Decoding a 2K image takes tens of ms: off the event loop and outside the
            # provider's slots, so the next request goes out meanwhile.
            image = await asyncio.to_thread(verify_image, generated.data, job.ext)
            # An image that is not what was asked (another size, another variant than the
            # answer should say) was paid for: kept aside for inspection, never an output.
            unusable = generated.mismatch or provider.size_problem(job.request, image.width,
                                                                   image.height)
        except TimeoutError:
            return JobResult(job, JobStatus.FAILED, reasons,
                             error=f"timed out after {spec.timeout:g}s"
                             + (f" and {attempt} retries" if attempt else ""))
        except ProviderError as exc:
            tries = f" (after {attempt} retries)" if attempt else ""
            return JobResult(job, JobStatus.FAILED, reasons, error=f"{exc}{tries}")
        record = CacheRecord(
            key=job.key,
            inputs=normalise(job.key_fields),
            provider=job.provider,
            kind=job.kind,
            model=job.model,
            seed=job.seed,
            provider_seed=generated.seed,
            cost_usd=generated.cost,
            response_ids=dict(generated.response_ids),
            width=image.width,
            height=image.height,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        if unusable:
            where = await asyncio.to_thread(self.store.quarantine, job.key, image, record,
                                            unusable)
            shown = os.path.relpath(where, self.campaign.root)
            return JobResult(job, JobStatus.FAILED, reasons, cost=generated.cost,
                             error=f"{unusable}; not used: the image is kept for inspection "
                                   f"in {shown} (`cache gc` removes it)")
        self.output_file(job)

        def store() -> None:
            # The store first: once there, the image is never paid for again, come what may.
            stored = self.store.put(job.key, image, record)
            if to_output:
                self.write_output(job, image.data, stored.record)

        await asyncio.to_thread(store)
        self.store.forget_task(job.key)
        return JobResult(job, JobStatus.GENERATED, reasons, cost=generated.cost)

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
        target = self.output_file(owner)
        sha = write_output(target, data, job, record)
        self.record_output(owner, record, sha)
        return sha

    def record_output(self, job: Job, record: CacheRecord, sha: str) -> None:
        target = self.campaign.out / job.output
        previous = self.manifest.entries.get(job.output)
        # The same bytes say the same text: a text check's result (and the reroll attempts
        # it lists) survives a restore of the very image it read.
        text_check = (previous.text_check if previous is not None and previous.sha256 == sha
                      else None)
        self.manifest.set(job.output, ManifestEntry(
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
