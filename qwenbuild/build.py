"""The build: run the plan's jobs, put images in the cache, write outputs and the manifest.

For each job not up to date: a cache hit is restored without calling the provider; a miss
asks the provider (bounded per provider, retried on transient faults), verifies the image
with Pillow, stores it in the cache, then writes the output. A failed job never stops the
others. The manifest is written once, atomically, when the build ends or is interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import Cache, verify_image
from .campaign import Campaign
from .costs import check_budget
from .errors import LockError, ProviderError
from .exports import render_exports
from .fsutil import folder_tag
from .manifest import Manifest, StatCache
from .plan import BUILD, CACHED, UP_TO_DATE, Assessment, Job, Plan, Selection, assess, plan
from .provenance import write_output
from .providers.base import Provider

log = logging.getLogger(__name__)

GENERATED, FAILED = "generated", "failed"


@dataclass
class JobResult:
    job: Job
    status: str  # generated | cached | up_to_date | failed
    reason: str = ""
    error: str | None = None
    cost: float | None = None


@dataclass(repr=False)  # asyncio may format a finished task's result: 20,000 jobs of it
class BuildReport:
    campaign: Campaign
    results: list[JobResult]
    stale: list[str]
    interrupted: bool = False
    seconds: float = 0.0
    #: Export renditions written by this build (paths relative to the output root).
    exports: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def cost(self) -> float:
        return round(sum(r.cost or 0.0 for r in self.results if r.status == GENERATED), 6)

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if r.status == FAILED]

    def to_json(self) -> dict[str, Any]:
        root = self.campaign.root
        return {
            "generated": self.count(GENERATED),
            "cached": self.count(CACHED),
            "up_to_date": self.count(UP_TO_DATE),
            "failed": self.count(FAILED),
            "cost_usd": self.cost,
            "stale": self.stale,
            "interrupted": self.interrupted,
            "seconds": self.seconds,
            "exports": self.exports,
            "jobs": [
                {
                    "asset": r.job.asset,
                    "aspect": r.job.aspect,
                    "provider": r.job.provider,
                    "seed": r.job.seed,
                    "key": r.job.key,
                    "status": r.status,
                    "output": _relative(self.campaign.out / r.job.output, root),
                    "error": r.error,
                }
                for r in self.results
            ],
        }


@dataclass(frozen=True)
class BuildOptions:
    force: bool = False
    #: Cap on jobs in flight across all providers (None: the sum of provider concurrency).
    jobs: int | None = None
    #: Called as on_event(result) when a job finishes (progress display).
    on_event: Callable[[JobResult], None] | None = None
    #: Called once with the assessments before any job runs.
    on_plan: Callable[[list[Assessment]], None] | None = None
    #: Refuse to start when more than this many jobs would call a provider (a spending
    #: guard for watch mode); None: no limit.
    max_generate: int | None = None
    #: Refuse to start when the estimated cost is over this many USD; None: the
    #: campaign's `budget` (checked on every build, watch rebuilds included).
    budget_usd: float | None = None
    #: Read each image's text back and reroll what scores under `min_score`, at most
    #: `max_rerolls` times per image (qwenbuild/verify.py).
    verify_text: bool = False
    min_score: float = 1.0
    max_rerolls: int = 2


@dataclass
class _State:
    campaign: Campaign
    cache: Cache
    manifest: Manifest
    stats: StatCache
    options: BuildOptions
    results: dict[str, JobResult] = field(default_factory=dict)
    #: The text check of `--verify-text` (None without it).
    verifier: Any = None


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def build(
    campaign: Campaign,
    selection: Selection = Selection(),
    options: BuildOptions = BuildOptions(),
) -> BuildReport:
    """Build the selected jobs of a campaign. Raises InputError before writing anything."""
    the_plan = plan(campaign, selection)
    return asyncio.run(build_plan(the_plan, options))


async def build_plan(the_plan: Plan, options: BuildOptions = BuildOptions()) -> BuildReport:
    campaign = the_plan.campaign
    started = time.perf_counter()
    cache = Cache(campaign.cache_dir)
    with OutputLock(campaign.cache_dir, campaign.out):
        manifest = Manifest.load(campaign.out, campaign.name)
        stats = StatCache(campaign.cache_dir, campaign.out)
        assessments = assess(the_plan, manifest, cache, stats, force=options.force)
        _check_limit(assessments, options.max_generate)
        check_budget(the_plan, assessments, options.budget_usd)
        verifier = _text_verifier(the_plan, assessments, options)  # input errors: now
        previous = {rel: dict(entry) for rel, entry in manifest.entries.items()}
        if options.on_plan:
            options.on_plan(assessments)
        state = _State(campaign, cache, manifest, stats, options, verifier=verifier)
        stale = _stale(the_plan, manifest)
        _sweep_temporary_files(campaign.out)
        interrupted = False
        exported: list[str] = []
        try:
            await _run(the_plan, assessments, state)
            exported = render_exports(the_plan, manifest, stats)
        except asyncio.CancelledError:
            # Ctrl-C: asyncio cancels the build; what finished is kept and reported.
            interrupted = True
        finally:
            manifest.save()
            stats.save()
            the_plan.remember()
        results = [
            state.results.get(a.job.output)
            or JobResult(a.job, FAILED, a.reason, error="interrupted before it finished")
            for a in assessments
        ]
        report = BuildReport(campaign, results, stale, interrupted,
                             round(time.perf_counter() - started, 3), exported)
        _write_review(the_plan, report, manifest, previous, cache)
    return report


def _text_verifier(the_plan: Plan, assessments: list[Assessment],
                   options: BuildOptions) -> Any:
    """The text check of --verify-text; raises InputError (a broken expect_text template,
    no OCR engine) before anything is generated."""
    if not options.verify_text:
        return None
    from .verify import TextVerifier

    return TextVerifier(the_plan, assessments, options)


def _check_limit(assessments: list[Assessment], limit: int | None) -> None:
    if limit is None:
        return
    paid = [a for a in assessments if a.status == BUILD and a.job.kind != "preview"]
    if len(paid) > limit:
        from .errors import BudgetError

        shown = ", ".join(a.job.label for a in paid[:5]) + (", ..." if len(paid) > 5 else "")
        raise BudgetError(f"{len(paid)} jobs would call a paid provider, over the limit of "
                          f"{limit} per build ({shown}); raise --max-jobs or narrow the build")


def _write_review(the_plan: Plan, report: BuildReport, manifest: Manifest,
                  previous: dict[str, dict[str, Any]], cache: Cache) -> None:
    """Write <out>/index.html, the review page of every output of the campaign."""
    from .review import write_review

    write_review(the_plan, report, manifest, previous, cache)


def _sweep_temporary_files(out: Path) -> None:
    """Remove temporary files a killed build may have left among the outputs."""
    if not out.is_dir():
        return
    for folder, _, files in os.walk(out):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))


def _stale(the_plan: Plan, manifest: Manifest) -> list[str]:
    stale = []
    for rel in sorted(manifest.entries):
        if rel in the_plan.all_outputs:
            continue
        if (the_plan.campaign.out / rel).is_file():
            manifest.set(rel, {**manifest.entries[rel], "stale": True})
            stale.append(rel)
        else:
            manifest.remove(rel)
    return stale


async def _run(the_plan: Plan, assessments: list[Assessment], state: _State) -> None:
    providers = the_plan.providers
    limits = {name: asyncio.Semaphore(p.spec.concurrency) for name, p in providers.items()}
    total = state.options.jobs or sum(p.spec.concurrency for p in providers.values()) or 1
    overall = asyncio.Semaphore(total)
    missing_keys = {name: p.api_key_env for name, p in providers.items()
                    if p.api_key_env and not os.environ.get(p.api_key_env)}

    async def one(a: Assessment) -> None:
        try:
            result = await attempt(a)
            if state.verifier is not None and result.status != FAILED:
                result = await state.verifier.verify(state, providers[a.job.provider], result,
                                                     (limits[a.job.provider], overall))
        except (ProviderError, OSError) as exc:
            # A file that cannot be written fails its job only, with the reason.
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            result = JobResult(a.job, FAILED, a.reason, error=f"cannot write output: {detail}")
        _finish(state, result)

    async def attempt(a: Assessment) -> JobResult:
        job = a.job
        if a.status == UP_TO_DATE:  # here only to have its text verified
            return JobResult(job, UP_TO_DATE, a.reason)
        if a.status == CACHED and _restore(state, job):
            return JobResult(job, CACHED, a.reason)
        if job.provider in missing_keys:
            return JobResult(job, FAILED, a.reason, error=(
                f"{missing_keys[job.provider]} is not set: provider {job.provider} needs an "
                "API key in the environment"))
        _target(state, job)  # refuse an unsafe path before paying for the image
        return await _generate(state, providers[job.provider], job, a.reason,
                               slots=(limits[job.provider], overall))

    async with AsyncExitStack() as stack:
        for provider in providers.values():
            stack.push_async_callback(provider.aclose)
        # Up-to-date jobs need no task (thousands of them cost nothing but a result each)
        # unless their text is to be verified.
        verify = state.verifier is not None
        for a in assessments:
            if a.status == UP_TO_DATE and not verify:
                _finish(state, JobResult(a.job, UP_TO_DATE, a.reason))
        tasks = [asyncio.create_task(one(a)) for a in assessments
                 if a.status != UP_TO_DATE or verify]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


def _finish(state: _State, result: JobResult) -> None:
    state.results[result.job.output] = result
    if state.options.on_event:
        state.options.on_event(result)


def _restore(state: _State, job: Job) -> bool:
    """Copy a cached image to the job's output. False when the entry turns out damaged."""
    ext = _ext(job)
    source = _restore_source(state, job)
    entry = state.cache.get(source.key, ext)
    if entry is None:
        return False
    target = _target(state, job)
    data = entry.image.read_bytes()
    if entry.record.get("sha256") not in (None, hashlib.sha256(data).hexdigest()):
        log.warning("cache entry %s is damaged; generating it again", source.key)
        state.cache.discard(source.key, ext)
        return False
    # The cache holds the provider's bytes; the output gets them with its provenance.
    sha = write_output(target, data, source, entry.record)
    _record_output(state, job, entry.record, sha, target)
    return True


def _restore_source(state: _State, job: Job) -> Job:
    """The job whose cached image restores `job`'s output: the reroll a text check chose
    (build --verify-text, qwenbuild/verify.py), else `job` itself."""
    from .verify import restore_source

    return restore_source(state.cache, job)


async def _generate(state: _State, provider: Provider, job: Job, reason: str,
                    slots: tuple[asyncio.Semaphore, ...] = (),
                    to_output: bool = True) -> JobResult:
    """Generate `job`'s image into the cache, then (unless `to_output` is false: a text
    reroll, written only once chosen) into its output and the manifest."""
    spec = provider.spec
    ext = _ext(job)
    attempt = 0
    try:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        generated = None
        while generated is None:
            delay = 0.0
            async with contextlib.AsyncExitStack() as held:
                # The provider's own slot first: a job queued for a slow provider must not
                # hold a build-wide slot another provider could use meanwhile.
                for slot in slots:
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
        image = await asyncio.to_thread(verify_image, generated.data, ext)
    except TimeoutError:
        return JobResult(job, FAILED, reason, error=f"timed out after {spec.timeout:g}s"
                         + (f" and {attempt} retries" if attempt else ""))
    except ProviderError as exc:
        tries = f" (after {attempt} retries)" if attempt else ""
        return JobResult(job, FAILED, reason, error=f"{exc}{tries}")
    record = {
        "key": job.key,
        "inputs": _jsonable_inputs(job),
        "provider": job.provider,
        "kind": job.kind,
        "model": job.model,
        "seed": job.seed,
        "provider_seed": generated.seed,
        "cost_usd": generated.cost,
        "response_ids": dict(generated.response_ids),
        "width": image.width,
        "height": image.height,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    target = _target(state, job)

    def store() -> Any:
        # The cache first: once there, the image is never paid for again, come what may.
        entry = state.cache.put(job.key, image, record)
        if not to_output:
            return entry, None
        return entry, write_output(target, image.data, job, entry.record)

    entry, sha = await asyncio.to_thread(store)
    if sha is not None:
        _record_output(state, job, entry.record, sha, target)
    return JobResult(job, GENERATED, reason, cost=generated.cost)


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (1 s, 2 s, 4 s ... capped at 30 s, plus 0-1 s);
    a server's Retry-After wins when it asks for longer."""
    delay = min(30.0, 2.0 ** (attempt - 1)) + random.random()
    if retry_after is not None:
        delay = max(delay, min(retry_after, 120.0))
    return delay * retry_scale()


def retry_scale() -> float:
    """Factor on every backoff and poll wait: QWENBUILD_RETRY_SCALE (tests shrink the waits
    with it; leave it unset in real use)."""
    try:
        return max(0.0, float(os.environ.get("QWENBUILD_RETRY_SCALE", "1")))
    except ValueError:
        return 1.0


def _jsonable_inputs(job: Job) -> dict[str, Any]:
    from .keys import _normalise

    return _normalise(job.key_fields)


def _record_output(state: _State, job: Job, record: dict[str, Any], sha: str,
                   target: Path) -> None:
    previous = state.manifest.entries.get(job.output) or {}
    # The same bytes say the same text: a text check's result (and the reroll attempts it
    # lists) survives a restore of the very image it read.
    kept = {k: previous[k] for k in ("text_check",)
            if k in previous and previous.get("sha256") == sha}
    state.manifest.set(job.output, {
        **kept,
        "asset": job.asset,
        "aspect": job.aspect,
        "provider": job.provider,
        "kind": job.kind,
        "model": job.model,
        "seed": job.seed,
        "provider_seed": record.get("provider_seed"),
        "key": job.key,
        "sha256": sha,
        "bytes": target.stat().st_size,
        "width": record.get("width", job.width),
        "height": record.get("height", job.height),
        "cost_usd": record.get("cost_usd"),
    })
    state.stats.remember(job.output, target, sha)


def _target(state: _State, job: Job) -> Path:
    """The output file of a job, refusing any path that resolves outside the output root
    (ids and provider names are validated, but a symlinked folder could still point away)."""
    out = state.campaign.out
    target = out / job.output
    resolved_out = out.resolve()
    if not target.parent.resolve().is_relative_to(resolved_out) or (
        target.is_symlink() and not target.resolve().is_relative_to(resolved_out)
    ):
        raise ProviderError(f"refusing to write {job.output}: it resolves outside {out}",
                            code="unsafe_path")
    return target


def _ext(job: Job) -> str:
    return job.output.rsplit(".", 1)[1]


def try_lock(fd: int) -> str | None:
    """Take an exclusive lock on `fd` without waiting. None when taken; otherwise the pid
    the holder wrote in the file, and `fd` is closed."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        return holder
    return None


class OutputLock:
    """One build per output folder at a time (a watch and a manual build, say)."""

    def __init__(self, cache_root: Path, out: Path) -> None:
        tag = folder_tag(out)
        self.path = cache_root / "locks" / f"{tag}.lock"
        self.out = out
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        holder = try_lock(fd)
        if holder is not None:
            raise LockError(f"another qwenbuild (pid {holder}) is building into {self.out}; "
                            "wait for it to finish and run again")
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None
