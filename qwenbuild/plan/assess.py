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
)


@dataclass(frozen=True)
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
    or leave the output alone, and why."""
    out = the_plan.campaign.out
    result = []
    for job in the_plan.jobs:
        entry = entries.get(job.output)
        reasons = _why(job, entry, out / job.output, stats, store)
        if force:
            result.append(Assessment(job, Action.GENERATE, (Reason.FORCED,)))
        elif not reasons:
            result.append(Assessment(job, Action.KEEP, (Reason.UP_TO_DATE,)))
        elif store.has(job.key, job.ext):
            result.append(Assessment(job, Action.RESTORE,
                                     reasons if entry else (Reason.RESTORED,)))
        else:
            result.append(Assessment(job, Action.GENERATE, reasons))
    return result


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
