"""`build --verify-text`: read each image's text back and generate again what reads wrong.

Per job, once its output is generated, restored or found up to date:

- attempt 0 is the job's own image (its planned key); attempt n = 1..N sends the job's
  exact request with only the seed changed to `reroll_seed(asset, seed, n)`. Another seed
  is another key, so every attempt is its own cache entry, paid for once and kept;
- attempts are checked in order (results cached by image), stopping at the first that
  is not red (green, amber, unreadable: a reroll is paid for text read wrong only); the
  best wins (`TextResult.rank`: green > amber > unreadable > red, then score; the
  earliest on a tie) and becomes the output. The manifest entry keeps the job's planned
  key (so the next plan sees the output up to date) and records every attempt in
  `text_check.attempts`;
- a choice record `<cache>/textcheck/choices/<planned key>.json` names the chosen reroll,
  so a restore from the cache brings back the chosen image (`restore_source`); it is void
  once the planned key's image changes (`--force`).

A rerun finds every attempt in the cache and every score in the result cache: it neither
reads nor pays again, and a larger `--max-rerolls` goes on where the last run stopped.
Rerolls count against `max_generate` and the budget (the campaign's `budget` or
`--budget`): a reroll that would exceed either is not sent, and the best image so far stays.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import Cache, CacheEntry
from .fsutil import atomic_write
from .plan import BUILD, CACHED, Assessment, Job, Plan
from .textcheck import RED, UNREADABLE_STATUS

if TYPE_CHECKING:
    from .build import BuildOptions, JobResult, _State
    from .providers.base import Provider
    from .textcheck import TextResult

log = logging.getLogger(__name__)

REROLL_REASON = "text reroll"


def reroll_seed(asset: str, seed: int, attempt: int) -> int:
    """The seed of reroll `attempt` (1, 2, ...) of the job of `asset` with `seed`: the first
    4 bytes of sha256("qwenbuild-reroll:<asset>:<seed>:<attempt>"), 31 bits (every provider
    takes it). Stable on every machine, so each reroll has a stable key and is paid once."""
    digest = hashlib.sha256(f"qwenbuild-reroll:{asset}:{seed}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def reseed(job: Job, seed: int) -> Job:
    """The same job with another seed: the planned request, prompts as rendered, with only
    the seed changed, and the key that follows from it. Same output path."""
    from .keys import job_key

    request = replace(job.request, seed=seed)
    fields = {**job.key_fields, "seed": seed}
    made = (request, fields)
    return Job(asset=job.asset, aspect=job.aspect, provider=job.provider, kind=job.kind,
               model=job.model, seed=seed, variant=job.variant, output=job.output,
               width=job.width, height=job.height, key=job_key(fields),
               _make=lambda: made, _made=[made])


# -- the choice record ----------------------------------------------------------------------


def _choice_path(cache: Cache, key: str) -> Path:
    return cache.root / "textcheck" / "choices" / f"{key}.json"


def read_choice(cache: Cache, job: Job) -> dict[str, Any] | None:
    """The reroll chosen for `job`, while the planned key's image is still the one the
    choice was made against (a forced rebuild replaces it and voids the choice)."""
    try:
        choice = json.loads(_choice_path(cache, job.key).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    planned = cache.record(job.key, _ext(job)) or {}
    if not isinstance(choice, dict) or planned.get("sha256") != choice.get("attempt0_sha256"):
        return None
    return choice


def restore_source(cache: Cache, job: Job) -> Job:
    """The job whose cached image a restore of `job` brings back: the chosen reroll when a
    text check chose one, else `job` itself."""
    choice = read_choice(cache, job)
    if choice is None:
        return job
    try:
        source = reseed(job, int(choice["seed"]))
    except (KeyError, TypeError, ValueError):  # a damaged record: restore the planned image
        return job
    if source.key != choice.get("key") or not cache.has(source.key, _ext(job)):
        return job
    return source


def _ext(job: Job) -> str:
    return job.output.rsplit(".", 1)[1]


# -- the loop -------------------------------------------------------------------------------


@dataclass
class _Attempt:
    number: int
    job: Job
    entry: CacheEntry
    text: TextResult

    @property
    def score(self) -> float:
        return -1.0 if self.text.score is None else self.text.score


class TextVerifier:
    """Checks the text of each finished job and rerolls what scores under the threshold.

    Made before any job runs, so a broken `expect_text` template or a missing OCR engine
    stops the build (exit code 2) before anything is generated.
    """

    def __init__(self, the_plan: Plan, assessments: Sequence[Assessment],
                 options: BuildOptions) -> None:
        from .costs import estimate
        from .textcheck import TextChecker, engines, expectations

        self.plan = the_plan
        self.expected = expectations(the_plan)
        self.checker = TextChecker(engines.default_engine(), the_plan.campaign.cache_dir)
        self.min_score = options.min_score
        self.max_rerolls = options.max_rerolls
        self.max_generate = options.max_generate
        budget = options.budget_usd
        self.budget = budget if budget is not None else getattr(the_plan.campaign, "budget",
                                                                None)
        self.paid_jobs = sum(1 for a in assessments
                             if a.status == BUILD and a.job.kind != "preview")
        self.spent = estimate(the_plan, assessments).usd  # what the build plans to pay
        # OCR runs in threads (a Tesseract process each): at most one per CPU.
        self._ocr = asyncio.Semaphore(max(1, min(8, os.cpu_count() or 2)))

    async def verify(self, state: _State, provider: Provider, result: JobResult,
                     slots: tuple[asyncio.Semaphore, ...]) -> JobResult:
        """Check `result`'s image, reroll while it reads wrong, keep the best image."""
        from .build import GENERATED, JobResult

        job = result.job
        lines = self.expected.get(job.output, ())
        if not lines:
            return result
        paid = (result.cost or 0.0) if result.status == GENERATED else 0.0
        generated = result.status == GENERATED
        attempts: list[_Attempt] = []
        stop_reason = ""
        for number in range(self.max_rerolls + 1):
            candidate = job if number == 0 else reseed(
                job, reroll_seed(job.asset, job.seed, number))
            entry = state.cache.get(candidate.key, _ext(job))
            if entry is None and number == 0:
                # An output up to date whose cache entry is gone (a cache cleared by hand):
                # the output file stands in for the planned image.
                entry = _output_entry(state, job)
                if entry is None:
                    continue
            if entry is None:
                refusal = self._reserve(provider, candidate)
                if refusal:
                    stop_reason = refusal
                    break
                entry, cost, error = await self._reroll(state, provider, candidate, slots)
                if entry is None:
                    stop_reason = f"reroll {number} failed: {error}"
                    break
                paid += cost or 0.0
                generated = True
            text = await self._check(entry, lines)
            attempts.append(_Attempt(number, candidate, entry, text))
            if text.status(self.min_score) != RED:
                break
        if not attempts:
            return result
        chosen = max(attempts, key=lambda a: (a.text.rank(self.min_score), -a.number))
        rewritten = await self._settle(state, job, attempts, chosen)
        self._report(job, attempts, chosen, stop_reason)
        if generated:
            return JobResult(job, GENERATED, _reason(result.reason, attempts), cost=paid)
        if rewritten:
            return JobResult(job, CACHED, _reason(result.reason, attempts))
        return result

    def _reserve(self, provider: Provider, job: Job) -> str | None:
        """Count a reroll against max_generate and the budget; why not, when it may not."""
        from .costs import job_price, usd

        if job.kind == "preview":
            return None  # free and offline
        if self.max_generate is not None and self.paid_jobs + 1 > self.max_generate:
            return (f"reroll not sent: the build may call a paid provider at most "
                    f"{self.max_generate} times")
        price = job_price(self.plan, job)
        if self.budget is not None and self.spent + price > self.budget + 1e-9:
            return (f"reroll not sent: it would bring the spending to "
                    f"{usd(self.spent + price)}, over the budget of {usd(self.budget)}")
        self.paid_jobs += 1
        self.spent += price
        return None

    async def _reroll(self, state: _State, provider: Provider, job: Job,
                      slots: tuple[asyncio.Semaphore, ...]
                      ) -> tuple[CacheEntry | None, float | None, str | None]:
        """Generate one reroll into the cache only (the output is written once chosen)."""
        from .build import FAILED, _generate
        from .costs import job_price

        outcome = await _generate(state, provider, job, REROLL_REASON, slots, to_output=False)
        actual = 0.0 if outcome.status == FAILED else outcome.cost
        if job.kind != "preview" and actual is not None:
            # What it really cost (nothing when it failed) instead of the price reserved.
            self.spent += actual - job_price(self.plan, job)
        if outcome.status == FAILED:
            return None, None, outcome.error
        return state.cache.get(job.key, _ext(job)), outcome.cost, None

    async def _check(self, entry: CacheEntry, lines: Sequence[str]) -> TextResult:
        sha = str(entry.record.get("sha256") or "")
        if sha:
            found = self.checker.cached(sha, lines)
            if found is not None:
                return found
        else:
            from .fsutil import file_sha256

            sha = await asyncio.to_thread(file_sha256, entry.image)
        async with self._ocr:
            return await asyncio.to_thread(self.checker.check, entry.image, sha, lines)

    async def _settle(self, state: _State, job: Job, attempts: list[_Attempt],
                      chosen: _Attempt) -> bool:
        """Make the chosen image the output, record the attempts and the choice; returns
        whether the output file was rewritten. The manifest is changed on the event loop,
        file writes happen in threads."""
        from .build import _record_output, _target
        from .provenance import write_output

        cache = state.cache
        entry = state.manifest.entries.get(job.output) or {}
        # The attempt the output holds now: the chosen reroll when its bytes are the ones
        # the last choice wrote, else the planned image (generated, restored or up to date).
        choice = read_choice(cache, job)
        current = job.key
        if choice is not None and entry.get("sha256") == choice.get("output_sha256"):
            current = str(choice.get("key"))
        rewritten = False
        if chosen.job.key != current or not entry:
            target = _target(state, job)
            data = await asyncio.to_thread(chosen.entry.image.read_bytes)
            sha = await asyncio.to_thread(write_output, target, data, chosen.job,
                                          chosen.entry.record)
            _record_output(state, job, chosen.entry.record, sha, target)
            rewritten = True
        entry = dict(state.manifest.entries[job.output])
        planned = cache.record(job.key, _ext(job)) or {}
        record = None if chosen.number == 0 else {
            "key": chosen.job.key, "seed": chosen.job.seed, "attempt": chosen.number,
            "attempt0_sha256": planned.get("sha256"), "output_sha256": entry["sha256"]}
        text_check = chosen.text.to_manifest(self.min_score)
        text_check["attempts"] = [
            {"attempt": a.number, "seed": a.job.seed, "key": a.job.key, "score": a.text.score,
             "status": a.text.status(self.min_score), "cost_usd": a.entry.record.get("cost_usd")}
            for a in attempts]
        text_check["chosen"] = chosen.number
        state.manifest.set(job.output, {**entry, "text_check": text_check})

        def files() -> None:
            path = _choice_path(cache, job.key)
            if record is None:
                path.unlink(missing_ok=True)
            elif record != choice:
                atomic_write(path, json.dumps(record, indent=2, sort_keys=True).encode())
            # The output's bytes differ from the cache's (provenance): file the result
            # under them too, so `qwenbuild check` of this output reads nothing again.
            self.checker.remember(entry["sha256"], self.expected[job.output], chosen.text)

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
                        self.min_score,
                        tried, f" ({stop_reason})" if stop_reason else "", chosen.number,
                        worst.expected, worst.read)
        elif chosen.number:
            log.info("%s: text reroll %d (seed %d) reads %.2f; it is the output", job.output,
                     chosen.number, chosen.job.seed, text.score or 0.0)


def _output_entry(state: _State, job: Job) -> CacheEntry | None:
    """The output file as a stand-in cache entry of the planned key (its manifest entry
    as the record), when the output is there and the manifest describes it."""
    entry = state.manifest.entries.get(job.output)
    file = state.campaign.out / job.output
    if not entry or entry.get("key") != job.key or not file.is_file():
        return None
    return CacheEntry(job.key, file, dict(entry))


def _reason(reason: str, attempts: list[_Attempt]) -> str:
    rerolls = len(attempts) - 1
    return f"{reason}; {rerolls} text reroll{'s' if rerolls != 1 else ''}" if rerolls else reason
