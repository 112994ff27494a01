"""What a build would do with each job, and why: compare the plan with the manifest, the
outputs on disk (through the stat cache) and the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contracts import Action, ManifestEntry, Reason, reason_text
from ..store import StatCache, Store
from .jobs import Job
from .planner import Plan

#: Key fields and the reason a change in them gives, in the order reasons are listed.
_FIELD_REASONS: tuple[tuple[tuple[str, ...], Reason], ...] = (
    (("prompt",), Reason.PROMPT),
    (("negative",), Reason.NEGATIVE),
    (("width", "height"), Reason.SIZE),
    (("seed",), Reason.SEED),
    (("kind", "model"), Reason.MODEL),
    (("references",), Reason.REFERENCES),
    (("prompt_extend",), Reason.PROMPT_EXTEND),
    (("options",), Reason.OPTIONS),
    (("design",), Reason.DESIGN),
    (("renderer",), Reason.RENDERER),
    (("fonts",), Reason.FONTS),
    (("parent",), Reason.PARENT),
)


@dataclass(frozen=True, slots=True)
class Assessment:
    """One job and what a build would do with it."""

    job: Job
    action: Action
    reasons: tuple[Reason, ...]

    @property
    def reason(self) -> str:
        """The reasons as text: `prompt changed, size changed`."""
        return reason_text(self.reasons)


def assess(the_plan: Plan, entries: Mapping[str, ManifestEntry], store: Store,
           stats: StatCache, force: bool = False) -> list[Assessment]:
    """Say, job by job, whether a build would call the provider, restore from the store,
    or leave the output alone, and why.

    A job made from another job's output (`Job.pending`) is resolved here when that output
    is up to date (its key follows from the output's sha256); when the parent will change
    in this build, the job is to be made after it (`parent changes`)."""
    out = the_plan.campaign.out
    result: list[Assessment] = []
    by_output: dict[str, Assessment] = {}
    for job in the_plan.jobs:
        if job.pending:
            resolved = _resolve(the_plan, job, by_output, entries, stats, force)
            if resolved is None:
                a = Assessment(job, Action.GENERATE, (Reason.PARENT_CHANGES,))
                result.append(a)
                by_output[job.output] = a
                continue
            job = resolved
        a = assess_one(job, entries.get(job.output), out / job.output, store, stats, force)
        result.append(a)
        by_output[job.output] = a
    return result


def assess_one(job: Job, entry: ManifestEntry | None, file: Path, store: Store,
               stats: StatCache, force: bool = False) -> Assessment:
    """What a build would do with one job whose key is known."""
    reasons = _why(job, entry, file, stats, store)
    if force:
        return Assessment(job, Action.GENERATE, (Reason.FORCED,))
    if not reasons:
        return Assessment(job, Action.KEEP, (Reason.UP_TO_DATE,))
    if store.has(job.key, job.ext):
        return Assessment(job, Action.RESTORE, reasons if entry else (Reason.RESTORED,))
    return Assessment(job, Action.GENERATE, reasons)


def _resolve(the_plan: Plan, job: Job, by_output: Mapping[str, Assessment],
             entries: Mapping[str, ManifestEntry], stats: StatCache,
             force: bool) -> Job | None:
    """`job` with its key when its parent's output stays as it is in this build; None when
    the parent is to be made (or is missing)."""
    assert job.parent is not None
    parent = by_output.get(job.parent)
    entry = entries.get(job.parent)
    file = the_plan.campaign.out / job.parent
    if force or entry is None:
        return None
    if parent is not None:
        if parent.action != Action.KEEP:
            return None
    elif entry.stale or stats.problem(job.parent, file, entry.sha256) is not None:
        return None  # a parent outside the selection that is not built as recorded
    return the_plan.resolve(job, entry.sha256, file.read_bytes)


def _why(job: Job, entry: ManifestEntry | None, file: Path, stats: StatCache,
         store: Store) -> tuple[Reason, ...]:
    """Why the output is not up to date; empty when it is."""
    if entry is None:
        return (Reason.NEW,)
    if entry.key != job.key:
        return _changed(job, entry, store)
    problem = stats.problem(job.output, file, entry.sha256)
    if problem is None:
        return ()
    return (Reason(problem),)


def _changed(job: Job, entry: ManifestEntry, store: Store) -> tuple[Reason, ...]:
    old = store.record(entry.key, job.ext) if entry.key else None
    before: Mapping[str, Any] | None = old.inputs if old else None
    if before is None:
        # Without the old record, the manifest still knows size, seed and model.
        before = {"width": entry.width, "height": entry.height, "seed": entry.seed,
                  "kind": entry.kind, "model": entry.model}
    reasons = tuple(reason for names, reason in _FIELD_REASONS
                    if any(n in before and before[n] != job.key_fields.get(n) for n in names))
    return reasons or (Reason.INPUTS,)
