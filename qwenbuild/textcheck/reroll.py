"""`build --verify-text [--repair]`: read each image's text back, repair or generate again
what reads wrong.

A build step (`VerifyTextStep`). Per job, once its output is generated, restored or found
up to date, attempts are made one at a time while the last one reads wrong (red):

- attempt 0 is the job's own image (its planned key);
- with `--repair`, a red image made from the job's request (attempt 0, or a reroll) is
  first **repaired**: an edit request on the same provider that changes the text read
  wrong to the copy (`repair.py`), its own store entry with its own stable key, paid for
  once and kept. Each such image gets one repair (`REPAIRS_PER_IMAGE`);
- then, while it is still red, **reroll** n = 1, 2, ... (`choices.reroll_seed`): the job's
  request with a new seed, its own store entry too;
- `--max-rerolls N` caps the attempts after the first, repairs and rerolls together (N
  new images per output at most), and every one that must be paid for counts against
  `max_generate` and the budget (the campaign's `budget` or `--budget`): an attempt that
  would exceed either is not sent, and the best image so far stays;
- a repair already in the store is used even without `--repair` (it costs nothing), and
  one the choice record lists for the same image is used again even when the reading of
  that image (and so the instruction) has changed since.

Attempts are checked in order (results cached by image), stopping at the first that is
not red (green, amber, unreadable: new images are paid for text read wrong only); the best
wins (`TextResult.rank`: green > amber > unreadable > red, then score; the earliest on a
tie) and becomes the output. The manifest entry keeps the job's planned key (so the next
plan sees the output up to date) and records every attempt in `text_check.attempts`, with
how it was obtained (`how`: generated, restored, repaired from attempt n, reroll n); a
choice record names the chosen attempt (`choices.py`).

A rerun finds every attempt in the store and every score in the result cache: it neither
reads nor pays again, and a larger `--max-rerolls` goes on where the last run stopped.
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
from .choices import (
    CHOICE_FORMAT,
    PLANNED,
    REPAIR,
    REROLL,
    known_repairs,
    read_choice,
    reroll_seed,
    reseed,
    write_choice,
)
from .repair import Repair, repair_of, stored_repair

log = logging.getLogger(__name__)

#: Repairs of each image made from the job's request (the planned one, each reroll).
REPAIRS_PER_IMAGE = 1


@dataclass
class _Attempt:
    number: int
    kind: str  # planned, repair, reroll
    job: Job
    image: StoredImage
    text: TextResult
    how: str
    #: The attempt made from the job's request this one comes from (itself, unless a repair).
    base: int
    repair: Repair | None = None
    #: Repairs: the attempt repaired.
    source: int | None = None

    def manifest(self, min_score: float) -> dict[str, Any]:
        data: dict[str, Any] = {
            "attempt": self.number, "kind": self.kind, "how": self.how, "seed": self.job.seed,
            "key": self.job.key, "score": self.text.score,
            "status": self.text.status(min_score), "cost_usd": self.image.record.cost_usd}
        if self.repair is not None:
            data["source"] = self.source
            data["instruction"] = self.repair.instruction
            data["mode"] = self.repair.mode
        return data


class VerifyTextStep(Step):
    """Checks the text of each finished job; repairs (with `repair`) and rerolls what reads
    wrong.

    `prepare` reads the expected text and finds the OCR engine, so a broken `expect_text`
    template or a missing engine stops the build (exit code 2) before anything is sent.
    """

    wants_up_to_date = True

    def __init__(self, min_score: float, max_rerolls: int, max_generate: int | None,
                 budget_usd: float | None, record: bool = False,
                 repair: bool = False) -> None:
        #: Record the result in every manifest entry checked, not only in those the build
        #: writes anyway (see `_settle`).
        self.record = record
        self.min_score = min_score
        self.max_rerolls = max_rerolls
        self.max_generate = max_generate
        self.budget_override = budget_usd
        self.repair = repair
        self.expected: dict[str, tuple[str, ...]] = {}
        self.checker: TextChecker | None = None
        self.plan: Plan | None = None
        self.budget: float | None = None
        self.paid_jobs = 0
        self.spent = 0.0
        self._noted: set[str] = set()
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
        """Check `result`'s image; repair and reroll while it reads wrong; keep the best."""
        if result.status == JobStatus.FAILED:
            return result
        job = result.job
        lines = self.expected.get(job.output, ())
        if not lines:
            return result
        generated = result.status == JobStatus.GENERATED
        paid = (result.cost or 0.0) if generated else 0.0
        image = ctx.store.get(job.key, job.ext)
        if image is None:
            # An output up to date whose store entry is gone (a cache cleared by hand):
            # the output file stands in for the planned image.
            image = _output_image(ctx, job)
            if image is None:
                return result
        attempts = [_Attempt(0, PLANNED, job, image, await self._check(image, job, lines),
                             self._how_planned(ctx, result), 0)]
        choice = await asyncio.to_thread(read_choice, ctx.store, job)
        known = known_repairs(choice)
        tried = {job.key}
        repaired: set[int] = set()
        rerolls = 0
        stop_reason = ""
        while attempts[-1].text.status(self.min_score) == RED:
            if len(attempts) - 1 >= self.max_rerolls:
                break
            number = len(attempts)
            base = next(a for a in reversed(attempts) if a.kind != REPAIR)
            repair: Repair | None = None
            if base.number not in repaired and self._repairs_of(attempts, base) < \
                    REPAIRS_PER_IMAGE:
                repaired.add(base.number)
                found = await self._repair(ctx, job, base, known)
                if isinstance(found, Repair) and found.job.key not in tried:
                    repair = found
                elif isinstance(found, str) and self.repair:
                    log.info("%s: attempt %d not repaired: %s", job.output, base.number,
                             found)
            if repair is not None:
                what = f"repair of attempt {base.number}"
                target = repair.job
            else:
                rerolls += 1
                what = f"reroll {rerolls}"
                target = reseed(job, reroll_seed(job.asset, job.seed, rerolls))
            tried.add(target.key)
            image = ctx.store.get(target.key, job.ext)
            if image is None:
                refusal = self._reserve(target, what)
                if refusal:
                    stop_reason = refusal
                    break
                image, cost, error = await self._generate(ctx, target, repair is not None)
                if image is None:
                    stop_reason = f"{what} failed: {error}"
                    break
                paid += cost or 0.0
                generated = True
            text = await self._check(image, job, lines)
            if repair is not None:
                candidate = _Attempt(number, REPAIR, target, image, text,
                                     f"repaired from attempt {base.number}", base.number,
                                     repair, base.number)
            else:
                candidate = _Attempt(number, REROLL, target, image, text, f"reroll {rerolls}",
                                     number)
            attempts.append(candidate)
        chosen = max(attempts, key=lambda a: (a.text.rank(self.min_score), -a.number))
        written = self.record or result.status != JobStatus.UP_TO_DATE
        rewritten = await self._settle(ctx, job, attempts, chosen, choice, written)
        self._report(job, attempts, chosen, stop_reason)
        repairs = sum(1 for a in attempts if a.kind == REPAIR)
        shown = chosen.text.to_manifest(self.min_score)
        if generated:
            return JobResult(job, JobStatus.GENERATED, result.reasons, cost=paid,
                             rerolls=rerolls, repairs=repairs, text_check=shown)
        if rewritten:
            return JobResult(job, JobStatus.CACHED, result.reasons, rerolls=rerolls,
                             repairs=repairs, text_check=shown)
        return replace(result, rerolls=rerolls, repairs=repairs, text_check=shown)

    @staticmethod
    def _repairs_of(attempts: Sequence[_Attempt], base: _Attempt) -> int:
        return sum(1 for a in attempts if a.kind == REPAIR and a.base == base.number)

    @staticmethod
    def _how_planned(ctx: BuildContext, result: JobResult) -> str:
        """How the planned image was obtained: by this build, else as the manifest said."""
        if result.status == JobStatus.GENERATED:
            return "generated"
        if result.status == JobStatus.CACHED:
            return "restored"
        entry = ctx.previous.get(result.job.output)
        old = (entry.text_check or {}).get("attempts") if entry is not None else None
        if isinstance(old, list) and old and isinstance(old[0], dict) and \
                old[0].get("how") in ("generated", "restored"):
            return str(old[0]["how"])
        return "generated"

    async def _repair(self, ctx: BuildContext, job: Job, base: _Attempt,
                      known: dict[str, dict[str, Any]]) -> Repair | str:
        """The repair of `base`'s image: the one the choice record lists for this image
        when it is stored, else the one its reading calls for (when it is stored, or
        `--repair` allows a new one); or why there is none."""
        store = ctx.store
        sha = base.image.record.sha256 or ""
        listed = known.get(sha) if sha else None
        if listed is not None:
            record = store.record(listed["key"], job.ext)
            again = stored_repair(job, listed["key"], record.inputs) if record else None
            if again is not None:
                return Repair(again, str(listed.get("instruction", "")), sha,
                              str(listed.get("source_key", base.job.key)),
                              str(listed.get("mode", "")))
        assert self.plan is not None
        provider = self.plan.providers[job.provider]

        def make() -> Repair | str:
            from PIL import Image

            data = base.image.path.read_bytes()
            with Image.open(base.image.path) as opened:
                size = opened.size
            return repair_of(base.job, provider, base.job.key, data, job.ext, base.text, size)

        try:
            found = await asyncio.to_thread(make)
        except OSError as exc:
            return f"cannot read the image: {exc}"
        if isinstance(found, Repair) and not self.repair and \
                not store.has(found.job.key, job.ext):
            return "repairs not asked for (--repair)"
        return found

    def _reserve(self, job: Job, what: str) -> str | None:
        """Count a new image against max_generate and the budget; why not, when it may
        not be paid for."""
        if not job.billable:
            return None  # free and offline
        if self.max_generate is not None and self.paid_jobs + 1 > self.max_generate:
            return (f"{what} not sent: the build may call a paid provider at most "
                    f"{self.max_generate} times")
        assert self.plan is not None
        price = job_price(self.plan, job)
        if self.budget is not None and self.spent + price > self.budget + 1e-9:
            return (f"{what} not sent: it would bring the spending to "
                    f"{usd(self.spent + price)}, over the budget of {usd(self.budget)}")
        self.paid_jobs += 1
        self.spent += price
        return None

    async def _generate(self, ctx: BuildContext, job: Job, repair: bool
                        ) -> tuple[StoredImage | None, float | None, str | None]:
        """Generate a repair or reroll into the store only (the output is written once
        chosen)."""
        reason = Reason.TEXT_REPAIR if repair else Reason.TEXT_REROLL
        outcome = await ctx.generate(job, (reason,), to_output=False)
        failed = outcome.status == JobStatus.FAILED
        actual = 0.0 if failed else outcome.cost
        if job.billable and actual is not None:
            # What it really cost (nothing when it failed) instead of the price reserved.
            assert self.plan is not None
            self.spent += actual - job_price(self.plan, job)
        if failed:
            return None, None, outcome.error
        return ctx.store.get(job.key, job.ext), outcome.cost, None

    async def _check(self, image: StoredImage, job: Job, lines: Sequence[str]) -> TextResult:
        assert self.checker is not None
        sha = image.record.sha256 or ""
        if sha:
            found = self.checker.cached(sha, lines, job.locale)
            if found is not None:
                return found
        else:
            sha = await asyncio.to_thread(file_sha256, image.path)
        async with self._ocr:
            return await asyncio.to_thread(self.checker.check, image.path, sha, lines,
                                           job.locale)

    async def _settle(self, ctx: BuildContext, job: Job, attempts: list[_Attempt],
                      chosen: _Attempt, choice: dict[str, Any] | None, written: bool
                      ) -> bool:
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
        # The attempt the output holds now: the chosen one when its bytes are the ones
        # the last choice wrote, else the planned image (generated, restored or up to date).
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
        repairs: list[Any] = list((choice or {}).get("repairs") or ())
        for a in attempts:
            if a.repair is not None and all(
                    isinstance(r, dict) and r.get("key") != a.job.key for r in repairs):
                repairs.append(a.repair.record())
        record: dict[str, Any] | None = None
        if chosen.number or repairs:
            record = {"v": CHOICE_FORMAT, "attempt": chosen.number, "kind": chosen.kind,
                      "how": chosen.how, "key": chosen.job.key, "seed": chosen.job.seed,
                      "attempt0_sha256": planned.sha256 if planned else None,
                      "output_sha256": entry.sha256}
            if chosen.repair is not None:
                record["source_key"] = chosen.repair.source_key
            if repairs:
                record["repairs"] = repairs
        text_check: dict[str, Any] = chosen.text.to_manifest(self.min_score)
        text_check["attempts"] = [a.manifest(self.min_score) for a in attempts]
        text_check["chosen"] = chosen.number
        if record_it:
            ctx.manifest.set(job.output, replace(entry, text_check=text_check))
        expected = self.expected[job.output]
        checker = self.checker

        def files() -> None:
            write_choice(store, job, record)
            # The output's bytes differ from the store's (provenance): file the result
            # under them too, so `qwenbuild check` of this output reads nothing again.
            checker.remember(entry.sha256, expected, chosen.text, job.locale)

        await asyncio.to_thread(files)
        return rewritten

    def _report(self, job: Job, attempts: list[_Attempt], chosen: _Attempt,
                stop_reason: str) -> None:
        text = chosen.text
        status = text.status(self.min_score)
        for note in text.notes:
            if note not in self._noted:  # once per build
                self._noted.add(note)
                log.warning("%s", note)
        if text.error is not None:
            log.warning("%s: text not checked: %s", job.output, text.error)
        elif status == UNREADABLE_STATUS:
            log.warning("%s: text unreadable (not confirmed right or wrong)%s", job.output,
                        f": {text.unreadable}" if text.unreadable else "")
        elif status == RED and text.score is not None:
            worst = text.worst
            assert worst is not None
            log.warning("%s: text reads wrong (score %.2f, min %.2f) after %s%s; kept "
                        "attempt %d (expected %r, read %r)", job.output, text.score,
                        self.min_score, _tried(attempts),
                        f" ({stop_reason})" if stop_reason else "", chosen.number,
                        worst.expected, worst.read)
        elif chosen.kind == REPAIR:
            log.info("%s: text %s (attempt %d) reads %s; it is the output", job.output,
                     chosen.how, chosen.number, status)
        elif chosen.number:
            log.info("%s: text reroll (attempt %d, seed %d) reads %.2f; it is the output",
                     job.output, chosen.number, chosen.job.seed, text.score or 0.0)


def _tried(attempts: Sequence[_Attempt]) -> str:
    """What was tried: `1 repair and 2 rerolls`, `1 rerolls`, `no reroll`."""
    repairs = sum(1 for a in attempts if a.kind == REPAIR)
    rerolls = sum(1 for a in attempts if a.kind == REROLL)
    parts = []
    if repairs:
        parts.append(f"{repairs} repair{'s' if repairs != 1 else ''}")
    if rerolls:
        parts.append(f"{rerolls} rerolls")
    return " and ".join(parts) or "no reroll"


def _output_image(ctx: BuildContext, job: Job) -> StoredImage | None:
    """The output file as a stand-in for the planned key's stored image (its manifest entry
    as the record), when the output is there, the manifest describes it and it holds the
    planned image (not a reroll or repair chosen over it)."""
    entry: ManifestEntry | None = ctx.manifest.entries.get(job.output)
    file = ctx.campaign.out / job.output
    if entry is None or entry.key != job.key or not file.is_file():
        return None
    if (entry.text_check or {}).get("chosen", 0) != 0:
        return None
    record = CacheRecord(key=job.key, provider=entry.provider, kind=entry.kind,
                         model=entry.model, seed=entry.seed,
                         provider_seed=entry.provider_seed, cost_usd=entry.cost_usd,
                         width=entry.width, height=entry.height, sha256=entry.sha256,
                         bytes=entry.bytes)
    return StoredImage(job.key, job.ext, file, record)
