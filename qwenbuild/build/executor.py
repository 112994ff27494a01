"""The executor: run a plan's jobs, put images in the store, write outputs and the manifest.

For each job not up to date: an image in the store is restored without calling the
provider; a miss asks the provider (bounded per provider, retried on transient faults),
verifies the image with Pillow, puts it in the store, then writes the output. A failed job
never stops the others. Work that follows a job or the build (text check and rerolls,
export renditions, the review page) runs as steps (`steps.py`). The manifest is written
once, atomically, when the build ends or is interrupted.

The review file (review/decisions.py) locks approved and picked outputs: `assess` makes
their jobs `Action.LOCKED` when their inputs changed, and the executor never writes a
locked output (a guard in `write_output`, whatever step asks). With `candidates`, the new
image of a locked job goes beside it (`<stem>.candidate.<ext>`, the manifest's
`candidates`); a candidate that no longer stands for a locked output's inputs is removed.
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
from ..errors import BudgetError, ProviderError
from ..exports import ExportsStep
from ..fsutil import file_sha256, sweep_temporary_files
from ..images import verify_image
from ..keys import normalise
from ..manifest import Manifest
from ..plan import (
    Assessment,
    Job,
    Plan,
    Selection,
    assess,
    candidate_of,
    candidate_path,
    plan,
)
from ..provenance import write_output
from ..retry import retry_delay
from ..review.decisions import ReviewFile, review_path
from ..review.page import ReviewPageStep
from ..store import StatCache, Store
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
    #: `max_rerolls` times per image (qwenbuild/textcheck/reroll.py).
    verify_text: bool = False
    min_score: float = 0.8
    max_rerolls: int = 2
    #: Make the new image of a locked output (approved or picked, inputs changed) beside
    #: it, as `<stem>.candidate.<ext>`.
    candidates: bool = False
    #: Asset ids (globs) whose locks this build releases: their approved outputs are
    #: rebuilt like any other (the decisions then describe an earlier image: outdated).
    unlock: tuple[str, ...] = ()


def default_steps(options: BuildOptions) -> list[Step]:
    """The steps of `qwenbuild build`: the text check (with --verify-text), export
    renditions, then the review page (which shows the other two)."""
    steps: list[Step] = []
    if options.verify_text:
        steps.append(VerifyTextStep(options.min_score, options.max_rerolls,
                                    options.max_generate, options.budget_usd))
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
        review = ReviewFile.load(review_path(campaign.path))  # an invalid one stops here
        review.picks(manifest.entries)  # two picks for one group: stop before any request
        stats = store.stat_cache(campaign.out)
        assessments = assess(
            the_plan, manifest.entries, store, stats, force=options.force,
            locks=review.locks(options.unlock) if review.exists else None,
            candidates=manifest.candidates if options.candidates else None)
        _check_limit(assessments, options.max_generate)
        check_budget(the_plan, assessments, options.budget_usd)
        run = Build(the_plan, store, manifest, stats, options,
                    default_steps(options) if steps is None else list(steps), review)
        return await run.run(assessments, started)


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
                 options: BuildOptions, steps: list[Step],
                 review: ReviewFile | None = None) -> None:
        self.plan = the_plan
        self.store = store
        self.manifest = manifest
        self.stats = stats
        self.options = options
        self.steps = steps
        self.review = review if review is not None else ReviewFile(
            review_path(the_plan.campaign.path))
        self.previous: Mapping[str, ManifestEntry] = dict(manifest.entries)
        self.results: dict[str, JobResult] = {}
        self._slots: dict[str, tuple[asyncio.Semaphore, ...]] = {}
        #: Outputs the review locks: nothing may write them (but a restore of their key).
        self._locked: frozenset[str] = frozenset()

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
        self._locked = frozenset(a.job.output for a in assessments if a.locked)
        sweep_temporary_files(campaign.out)
        interrupted = False
        try:
            try:
                await self._run_jobs(assessments)
            except asyncio.CancelledError:
                # Ctrl-C: asyncio cancels the build; what finished is kept and reported.
                interrupted = True
            if not interrupted:
                self._sweep_candidates(assessments)
            results = [self.results.get(a.job.output)
                       or JobResult(a.job, JobStatus.FAILED, a.reasons, error=INTERRUPTED)
                       for a in assessments]
            report = BuildReport(campaign, results, stale, interrupted,
                                 round(time.perf_counter() - started, 3),
                                 reviews=self._reviews(results))
            for step in self.steps:
                step.build_finished(self, report)
        finally:
            self.manifest.save()
            self.stats.save()
            self.plan.remember()
        return report

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

        async def one(a: Assessment) -> None:
            try:
                result = await attempt(a)
                for step in self.steps if not a.locked else ():  # no step touches those
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
                if a.action == Action.LOCKED:
                    self._finish(JobResult(a.job, JobStatus.LOCKED, a.reasons))
                elif a.action == Action.KEEP and (not every_job or a.locked):
                    self._finish(JobResult(a.job, JobStatus.UP_TO_DATE, a.reasons))
            tasks = [asyncio.create_task(one(a)) for a in assessments
                     if a.action == Action.GENERATE or a.action == Action.RESTORE
                     or (a.action == Action.KEEP and every_job and not a.locked)]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    def _finish(self, result: JobResult) -> None:
        self.results[result.job.output] = result
        if self.options.on_event:
            self.options.on_event(result)

    def _restore(self, job: Job) -> bool:
        """Copy a stored image to the job's output. False when the entry turns out damaged
        (it is discarded: the job is generated again)."""
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
        provider = self.plan.providers[job.provider]
        spec = provider.spec
        attempt = 0
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
                            generated = await provider.generate(job.request)
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
        self.output_file(job)

        def store() -> None:
            # The store first: once there, the image is never paid for again, come what may.
            stored = self.store.put(job.key, image, record)
            if to_output:
                self.write_output(job, image.data, stored.record)

        await asyncio.to_thread(store)
        return JobResult(job, JobStatus.GENERATED, reasons, cost=generated.cost)

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
        ))
        self.stats.remember(job.output, target, sha)
