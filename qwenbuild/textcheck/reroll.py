"""`build --verify-text`: read each image's text back and generate again what reads wrong.

A build step (`VerifyTextStep`). Per job, once its output is generated, restored or found
up to date:

- attempt 0 is the job's own image (its planned key); attempt n = 1..N is reroll n
  (`choices.reroll_seed`), its own store entry, paid for once and kept;
- attempts are checked in order (results cached by image), stopping at the first that
  is not red (green, amber, unreadable: a reroll is paid for text read wrong only); the
  best wins (`TextResult.rank`: green > amber > unreadable > red, then score; the earliest
  on a tie) and becomes the output. The manifest entry keeps the job's planned key (so the
  next plan sees the output up to date) and records every attempt in
  `text_check.attempts`; a choice record names the chosen reroll (`choices.py`).

A rerun finds every attempt in the store and every score in the result cache: it neither
reads nor pays again, and a larger `--max-rerolls` goes on where the last run stopped.
Rerolls count against `max_generate` and the budget (the campaign's `budget` or
`--budget`): a reroll that would exceed either is not sent, and the best image so far stays.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..build.report import JobResult
from ..build.steps import BuildContext, Step
from ..contracts import Action, CacheRecord, JobStatus, ManifestEntry, Reason
from ..costs import estimate, job_price, usd
from ..fsutil import file_sha256
from ..plan import Assessment, Job, Plan
from ..store import StoredImage
from . import RED, UNREADABLE_STATUS, TextChecker, TextResult, engines, expectations
from .choices import read_choice, reroll_seed, reseed, write_choice

log = logging.getLogger(__name__)


@dataclass
class _Attempt:
    number: int
    job: Job
    image: StoredImage
    text: TextResult

    @property
    def score(self) -> float:
        return -1.0 if self.text.score is None else self.text.score


class VerifyTextStep(Step):
    """Checks the text of each finished job and rerolls what scores under the threshold.

    `prepare` reads the expected text and finds the OCR engine, so a broken `expect_text`
    template or a missing engine stops the build (exit code 2) before anything is sent.
    """

    wants_up_to_date = True

    def __init__(self, min_score: float, max_rerolls: int, max_generate: int | None,
                 budget_usd: float | None, record: bool = False) -> None:
        #: Record the result in every manifest entry checked, not only in those the build
        #: writes anyway (see `_settle`).
        self.record = record
        self.min_score = min_score
        self.max_rerolls = max_rerolls
        self.max_generate = max_generate
        self.budget_override = budget_usd
        self.expected: dict[str, tuple[str, ...]] = {}
        self.checker: TextChecker | None = None
        self.plan: Plan | None = None
        self.budget: float | None = None
        self.paid_jobs = 0
        self.spent = 0.0
        # OCR runs in threads (a Tesseract process each): at most one per CPU.
        self._ocr = asyncio.Semaphore(max(1, min(8, os.cpu_count() or 2)))

    def prepare(self, ctx: BuildContext, assessments: Sequence[Assessment]) -> None:
        self.plan = ctx.plan
        self.expected = expectations(ctx.plan)
        self.checker = TextChecker(engines.default_engine(), ctx.store)
        campaign = ctx.plan.campaign
        self.budget = (self.budget_override if self.budget_override is not None
                       else campaign.budget)
        self.paid_jobs = sum(1 for a in assessments
                             if a.action == Action.GENERATE and a.job.billable)
        self.spent = estimate(ctx.plan, assessments).usd  # what the build plans to pay

    async def job_finished(self, ctx: BuildContext, result: JobResult) -> JobResult:
        """Check `result`'s image, reroll while it reads wrong, keep the best image."""
        if result.status == JobStatus.FAILED:
            return result
        job = result.job
        lines = self.expected.get(job.output, ())
        if not lines:
            return result
        generated = result.status == JobStatus.GENERATED
        paid = (result.cost or 0.0) if generated else 0.0
        attempts: list[_Attempt] = []
        stop_reason = ""
        for number in range(self.max_rerolls + 1):
            candidate = job if number == 0 else reseed(
                job, reroll_seed(job.asset, job.seed, number))
            image = ctx.store.get(candidate.key, job.ext)
            if image is None and number == 0:
                # An output up to date whose store entry is gone (a cache cleared by hand):
                # the output file stands in for the planned image.
                image = _output_image(ctx, job)
                if image is None:
                    continue
            if image is None:
                refusal = self._reserve(candidate)
                if refusal:
                    stop_reason = refusal
                    break
                image, cost, error = await self._reroll(ctx, candidate)
                if image is None:
                    stop_reason = f"reroll {number} failed: {error}"
                    break
                paid += cost or 0.0
                generated = True
            text = await self._check(image, lines)
            attempts.append(_Attempt(number, candidate, image, text))
            if text.status(self.min_score) != RED:
                break
        if not attempts:
            return result
        chosen = max(attempts, key=lambda a: (a.text.rank(self.min_score), -a.number))
        written = self.record or result.status != JobStatus.UP_TO_DATE
        rewritten = await self._settle(ctx, job, attempts, chosen, written)
        self._report(job, attempts, chosen, stop_reason)
        rerolls = len(attempts) - 1
        shown = chosen.text.to_manifest(self.min_score)
        if generated:
            return JobResult(job, JobStatus.GENERATED, result.reasons, cost=paid,
                             rerolls=rerolls, text_check=shown)
        if rewritten:
            return JobResult(job, JobStatus.CACHED, result.reasons, rerolls=rerolls,
                             text_check=shown)
        return replace(result, rerolls=rerolls, text_check=shown)

    def _reserve(self, job: Job) -> str | None:
        """Count a reroll against max_generate and the budget; why not, when it may not."""
        if not job.billable:
            return None  # free and offline
        if self.max_generate is not None and self.paid_jobs + 1 > self.max_generate:
            return (f"reroll not sent: the build may call a paid provider at most "
                    f"{self.max_generate} times")
        assert self.plan is not None
        price = job_price(self.plan, job)
        if self.budget is not None and self.spent + price > self.budget + 1e-9:
            return (f"reroll not sent: it would bring the spending to "
                    f"{usd(self.spent + price)}, over the budget of {usd(self.budget)}")
        self.paid_jobs += 1
        self.spent += price
        return None

    async def _reroll(self, ctx: BuildContext, job: Job
                      ) -> tuple[StoredImage | None, float | None, str | None]:
        """Generate one reroll into the store only (the output is written once chosen)."""
        outcome = await ctx.generate(job, (Reason.TEXT_REROLL,), to_output=False)
        failed = outcome.status == JobStatus.FAILED
        actual = 0.0 if failed else outcome.cost
        if job.billable and actual is not None:
            # What it really cost (nothing when it failed) instead of the price reserved.
            assert self.plan is not None
            self.spent += actual - job_price(self.plan, job)
        if failed:
            return None, None, outcome.error
        return ctx.store.get(job.key, job.ext), outcome.cost, None

    async def _check(self, image: StoredImage, lines: Sequence[str]) -> TextResult:
        assert self.checker is not None
        sha = image.record.sha256 or ""
        if sha:
            found = self.checker.cached(sha, lines)
            if found is not None:
                return found
        else:
            sha = await asyncio.to_thread(file_sha256, image.path)
        async with self._ocr:
            return await asyncio.to_thread(self.checker.check, image.path, sha, lines)

    async def _settle(self, ctx: BuildContext, job: Job, attempts: list[_Attempt],
                      chosen: _Attempt, written: bool) -> bool:
        """Make the chosen image the output, record the attempts and the choice; returns
        whether the output file was rewritten.

        The manifest entry gets the result (`text_check`) only when it changes anyway
        (`written`: the build made or restored the output; the chosen attempt changed) or
        rerolls were paid for (their keys must stay listed): checking an output that is up
        to date and reads right leaves the manifest, and so the git tree, as it was. The
        result itself is in the check cache either way."""
        assert self.checker is not None
        store = ctx.store
        entry = ctx.manifest.entries.get(job.output)
        # The attempt the output holds now: the chosen reroll when its bytes are the ones
        # the last choice wrote, else the planned image (generated, restored or up to date).
        choice = read_choice(store, job)
        current = job.key
        if choice is not None and entry is not None and \
                entry.sha256 == choice.get("output_sha256"):
            current = str(choice.get("key"))
        rewritten = False
        if chosen.job.key != current or entry is None:
            data = await asyncio.to_thread(chosen.image.path.read_bytes)
            await asyncio.to_thread(ctx.write_output, chosen.job, data, chosen.image.record,
                                    job)
            rewritten = True
        entry = ctx.manifest.entries[job.output]
        record_it = written or rewritten or len(attempts) > 1
        planned = store.record(job.key, job.ext)
        record = None if chosen.number == 0 else {
            "key": chosen.job.key, "seed": chosen.job.seed, "attempt": chosen.number,
            "attempt0_sha256": planned.sha256 if planned else None,
            "output_sha256": entry.sha256}
        text_check: dict[str, Any] = chosen.text.to_manifest(self.min_score)
        text_check["attempts"] = [
            {"attempt": a.number, "seed": a.job.seed, "key": a.job.key, "score": a.text.score,
             "status": a.text.status(self.min_score), "cost_usd": a.image.record.cost_usd}
            for a in attempts]
        text_check["chosen"] = chosen.number
        if record_it:
            ctx.manifest.set(job.output, replace(entry, text_check=text_check))
        expected = self.expected[job.output]
        checker = self.checker

        def files() -> None:
            write_choice(store, job, record)
            # The output's bytes differ from the store's (provenance): file the result
            # under them too, so `qwenbuild check` of this output reads nothing again.
            checker.remember(entry.sha256, expected, chosen.text)

        await asyncio.to_thread(files)
        return rewritten

    def _report(self, job: Job, attempts: list[_Attempt], chosen: _Attempt,
                stop_reason: str) -> None:
        text = chosen.text
        status = text.status(self.min_score)
        if text.error is not None:
            log.warning("%s: text not checked: %s", job.output, text.error)
        elif status == UNREADABLE_STATUS:
            log.warning("%s: text unreadable (not confirmed right or wrong)%s", job.output,
                        f": {text.unreadable}" if text.unreadable else "")
        elif status == RED and text.score is not None:
            worst = text.worst
            assert worst is not None
            tried = f"{len(attempts) - 1} rerolls" if len(attempts) > 1 else "no reroll"
            log.warning("%s: text reads wrong (score %.2f, min %.2f) after %s%s; kept "
                        "attempt %d (expected %r, read %r)", job.output, text.score,
                        self.min_score, tried, f" ({stop_reason})" if stop_reason else "",
                        chosen.number, worst.expected, worst.read)
        elif chosen.number:
            log.info("%s: text reroll %d (seed %d) reads %.2f; it is the output", job.output,
                     chosen.number, chosen.job.seed, text.score or 0.0)


def _output_image(ctx: BuildContext, job: Job) -> StoredImage | None:
    """The output file as a stand-in for the planned key's stored image (its manifest entry
    as the record), when the output is there and the manifest describes it."""
    entry: ManifestEntry | None = ctx.manifest.entries.get(job.output)
    file = ctx.campaign.out / job.output
    if entry is None or entry.key != job.key or not file.is_file():
        return None
    record = CacheRecord(key=job.key, provider=entry.provider, kind=entry.kind,
                         model=entry.model, seed=entry.seed,
                         provider_seed=entry.provider_seed, cost_usd=entry.cost_usd,
                         width=entry.width, height=entry.height, sha256=entry.sha256,
                         bytes=entry.bytes)
    return StoredImage(job.key, job.ext, file, record)
