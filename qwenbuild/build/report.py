"""What a build did: one `JobResult` per job, and the `BuildReport` of the whole build."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..campaign import Campaign
from ..contracts import JobStatus, Reason, reason_text
from ..plan import Job


@dataclass(slots=True)
class JobResult:
    job: Job
    status: JobStatus
    reasons: tuple[Reason, ...] = ()
    error: str | None = None
    cost: float | None = None
    #: Text rerolls and repairs made for this job (build --verify-text [--repair]).
    rerolls: int = 0
    #: What the text check found (build --verify-text): a manifest `text_check` object.
    text_check: Mapping[str, Any] | None = None
    repairs: int = 0

    @property
    def reason(self) -> str:
        """Why the job was built, as text (`prompt changed; 1 text repair`)."""
        text = reason_text(self.reasons)
        if self.repairs:
            text += f"; {self.repairs} text repair{'s' if self.repairs != 1 else ''}"
        if self.rerolls:
            text += f"; {self.rerolls} text reroll{'s' if self.rerolls != 1 else ''}"
        return text


@dataclass(frozen=True)
class Activity:
    """What a running build is doing, for a progress display (`BuildOptions.on_activity`).

    kind: `estimate` (once, before any job: `usd` is what the jobs to generate should
    cost), `request` (a request for `job` goes to its provider), `answer` (that request
    ended, whichever way), `retry` (`job` failed with `error` and is tried again, retry
    `attempt` of `retries`, in `delay` seconds).
    """

    kind: str
    job: Job | None = None
    attempt: int = 0
    retries: int = 0
    delay: float = 0.0
    error: str | None = None
    usd: float = 0.0


#: The error of a job that had not finished when the build was interrupted.
INTERRUPTED = "interrupted before it finished"


@dataclass(repr=False)  # asyncio may format a finished task's result: 20,000 jobs of it
class BuildReport:
    campaign: Campaign
    results: list[JobResult]
    stale: list[str]
    interrupted: bool = False
    seconds: float = 0.0
    #: Export renditions written by this build (paths relative to the output root).
    exports: list[str] = field(default_factory=list)
    #: What the build was estimated to cost before it started (None: not estimated).
    estimated_usd: float | None = None
    #: Faults of the file system that failed no job but need saying ("cannot write
    #: out/manifest.json: No space left on device"); any of them makes the exit code 1.
    problems: list[str] = field(default_factory=list)
    #: The review status of each output after the build (review/decisions.py STATUSES);
    #: empty without a review file (every output is then "unreviewed").
    reviews: dict[str, str] = field(default_factory=dict)

    def count(self, status: JobStatus) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def cost(self) -> float:
        """What the providers reported this build cost: every image paid for, including
        one kept aside because it was not what was asked (its job failed)."""
        return round(sum(r.cost or 0.0 for r in self.results
                         if r.status in (JobStatus.GENERATED, JobStatus.FAILED)), 6)

    @property
    def unreported(self) -> int:
        """Images generated whose provider reported no cost (not in `cost`)."""
        return sum(1 for r in self.results
                   if r.status == JobStatus.GENERATED and r.cost is None and r.job.billable)

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if r.status == JobStatus.FAILED]

    def to_json(self) -> dict[str, Any]:
        root = self.campaign.root
        return {
            "generated": self.count(JobStatus.GENERATED),
            "cached": self.count(JobStatus.CACHED),
            "up_to_date": self.count(JobStatus.UP_TO_DATE),
            "failed": self.count(JobStatus.FAILED),
            "locked": self.count(JobStatus.LOCKED),
            "cost_usd": self.cost,
            "estimated_cost_usd": self.estimated_usd,
            "cost_unreported": self.unreported,
            "stale": self.stale,
            "interrupted": self.interrupted,
            "seconds": self.seconds,
            "exports": self.exports,
            "problems": self.problems,
            "jobs": [self.job_json(r, root) for r in self.results],
        }

    def job_json(self, r: JobResult, root: Path | None = None,
                 up_to_date: bool = False) -> dict[str, Any]:
        """One job of `to_json` (as a no-op build would show it, if `up_to_date`: up to
        date, for that reason, no error)."""
        root = root or self.campaign.root
        return {
            "asset": r.job.asset,
            "aspect": r.job.aspect,
            "provider": r.job.provider,
            "seed": r.job.seed,
            "key": r.job.key,
            "status": str(JobStatus.UP_TO_DATE if up_to_date else r.status),
            "reason": reason_text((Reason.UP_TO_DATE,)) if up_to_date else r.reason,
            "output": _relative(self.campaign.out / r.job.output, root),
            "error": None if up_to_date else r.error,
            **({"text_check": dict(r.text_check)} if r.text_check else {}),
            "review": self.reviews.get(r.job.output, "unreviewed"),
            **({"candidate_of": _relative(self.campaign.out / r.job.candidate_of,
                                          root)} if r.job.candidate_of else {}),
        }


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()
