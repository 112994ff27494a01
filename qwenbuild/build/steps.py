"""Steps: work that follows a finished job or a finished build, plugged into the executor.

The text check and its rerolls, export renditions and the review page are steps. A step
sees the build through `BuildContext` (the plan, the store, the manifest, and the few
services of the executor it may use: generate a job, write an output) and never reaches
into the executor's internals.

Order of calls, per build: `prepare` (every step, before any job runs: a step raises
InputError here to stop the build before anything is sent), `job_finished` (every step,
for every job that finished, in step order; up-to-date jobs only for steps that ask), then
`build_finished` (every step, in order, once all jobs are done or the build was
interrupted); the manifest is saved after the last step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..campaign import Campaign
from ..contracts import CacheRecord, ManifestEntry, Reason
from ..manifest import Manifest
from ..plan import Assessment, Job, Plan
from ..store import StatCache, Store
from .report import BuildReport, JobResult

if TYPE_CHECKING:
    from ..review.decisions import ReviewFile


class BuildContext(Protocol):
    """What a running build offers its steps."""

    plan: Plan
    store: Store
    manifest: Manifest
    stats: StatCache
    #: The manifest's entries as they were before this build.
    previous: Mapping[str, ManifestEntry]
    #: The campaign's review file (decisions, picks, locks); empty when there is none.
    review: ReviewFile

    @property
    def campaign(self) -> Campaign: ...

    async def generate(self, job: Job, reasons: tuple[Reason, ...],
                       to_output: bool = True) -> JobResult:
        """Generate `job`'s image into the store (paying for it, with the build's retry
        policy and provider slots), then, unless `to_output` is false, into its output."""
        ...

    def output_file(self, job: Job) -> Path:
        """The output file of `job`, refusing a path that resolves outside the output root
        (raises ProviderError: that job fails, the build goes on)."""
        ...

    def write_output(self, job: Job, data: bytes, record: CacheRecord,
                     output_of: Job | None = None) -> str:
        """Write image bytes with `job`'s provenance as the output of `output_of` (default
        `job` itself; a text reroll's image becomes its planned job's output) and record
        it in the manifest; returns the sha256 written. Safe in a worker thread."""
        ...

    def record_output(self, job: Job, record: CacheRecord, sha: str) -> None:
        """Record `job`'s output file (written already) in the manifest and stat cache."""
        ...


class Step:
    """A step: override what it needs. The base does nothing."""

    #: Whether `job_finished` is called for up-to-date jobs too (they need no work
    #: otherwise, and a no-op build of thousands of them must stay cheap).
    wants_up_to_date: bool = False

    def prepare(self, ctx: BuildContext, assessments: Sequence[Assessment]) -> None:
        """Before any job runs. Raise InputError to stop the build with nothing sent."""

    async def job_finished(self, ctx: BuildContext, result: JobResult) -> JobResult:
        """After a job finished (generated, restored, up to date or failed); returns the
        result to report (a step may replace it, e.g. after a reroll)."""
        return result

    def build_finished(self, ctx: BuildContext, report: BuildReport) -> None:
        """After every job finished (or the build was interrupted), before the manifest
        is saved."""
