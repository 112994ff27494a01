"""What a build would do with each job, and why: compare the plan with the manifest, the
outputs on disk (through the stat cache) and the store.

Locks: an output the review file approved or picked, on the image it holds now, is never
replaced. When its inputs changed the job is `Action.LOCKED` with the reasons (what
changed); a missing or modified locked file is restored only from the very key it was
approved with (the same bytes). With `candidates`, every locked job whose inputs changed
gets a second assessment: its candidate, the new image written beside the approved one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..contracts import Action, ManifestEntry, Reason, reason_text
from ..store import StatCache, Store
from .jobs import Job, candidate_path
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


class OutputLocks(Protocol):
    """Which outputs the review locks (review/decisions.py's `Locks`)."""

    def locked(self, output: str, asset: str, sha256: str) -> bool:
        """Whether a build must keep `output` while it holds the image `sha256`."""
        ...

    def released(self, output: str, asset: str, sha256: str) -> bool:
        """Whether the review locks it but `build --unlock` released it for this build."""
        ...


#: Reasons about the output file alone: its key (and so its bytes) is unchanged.
_FILE_REASONS = frozenset({Reason.OUTPUT_MISSING, Reason.OUTPUT_MODIFIED})


@dataclass(frozen=True, slots=True)
class Assessment:
    """One job and what a build would do with it."""

    job: Job
    action: Action
    reasons: tuple[Reason, ...]
    #: The review locks the job's output (whatever the action: a locked output that is up
    #: to date is KEEP, and no step may replace it).
    locked: bool = False

    @property
    def reason(self) -> str:
        """The reasons as text: `prompt changed, size changed`."""
        return reason_text(self.reasons)


def assess(the_plan: Plan, entries: Mapping[str, ManifestEntry], store: Store,
           stats: StatCache, force: bool = False, locks: OutputLocks | None = None,
           candidates: Mapping[str, ManifestEntry] | None = None) -> list[Assessment]:
    """Say, job by job, whether a build would call the provider, restore from the store,
    leave the output alone, or keep it because the review locks it, and why.

    A job made from another job's output (`Job.pending`) is resolved here when that output
    stays as it is (its key follows from the output's sha256); when the parent will change
    in this build, the job is to be made after it (`parent changes`). `locks`: the
    review's locks (None: no review file, nothing is locked). `candidates`: the manifest's
    candidates, given when the build makes them (`--candidates`).
    """
    out = the_plan.campaign.out
    result: list[Assessment] = []
    by_output: dict[str, Assessment] = {}
    for job in the_plan.jobs:
        entry = entries.get(job.output)
        held = (locks is not None and entry is not None
                and locks.locked(job.output, job.asset, entry.sha256))
        if job.pending:
            resolved = _resolve(the_plan, job, by_output, entries, stats, force)
            if resolved is None:
                # Made after its parent: a locked output stays as approved meanwhile (its
                # candidate, asked for, is made after the parent too).
                a = Assessment(job, Action.LOCKED if held else Action.GENERATE,
                               (Reason.PARENT_CHANGES,), locked=held)
                result.append(a)
                by_output[job.output] = a
                if held and candidates is not None:
                    result.append(Assessment(job.as_candidate(candidate_path(job.output)),
                                             Action.GENERATE, (Reason.PARENT_CHANGES,)))
                continue
            job = resolved
        if held:
            assert entry is not None and locks is not None
            reasons = _why(job, entry, out / job.output, stats, store)
            a = _locked(job, entry, reasons, force, store)
            result.append(a)
            by_output[job.output] = a
            # A candidate only for new inputs: the same key would make the same image.
            if a.action == Action.LOCKED and candidates is not None and entry.key != job.key:
                result.append(_candidate(job, candidates, out, stats, store))
            continue
        released = (locks is not None and entry is not None
                    and locks.released(job.output, job.asset, entry.sha256))
        a = assess_one(job, entry, out / job.output, store, stats, force, released)
        result.append(a)
        by_output[job.output] = a
    return result


def assess_one(job: Job, entry: ManifestEntry | None, file: Path, store: Store,
               stats: StatCache, force: bool = False, unlocked: bool = False) -> Assessment:
    """What a build would do with one job whose key is known (`unlocked`: its output was
    locked by the review, and the build releases it)."""
    reasons = _why(job, entry, file, stats, store)
    if reasons and unlocked:
        reasons = (Reason.UNLOCKED, *reasons)
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
    """`job` with its key when its parent's output stays as it is in this build (up to
    date, or kept as the review approved it); None when the parent is to be made (or is
    missing)."""
    assert job.parent is not None
    parent = by_output.get(job.parent)
    entry = entries.get(job.parent)
    file = the_plan.campaign.out / job.parent
    if force or entry is None:
        return None
    if parent is not None:
        if parent.action not in (Action.KEEP, Action.LOCKED):
            return None
    elif entry.stale or stats.problem(job.parent, file, entry.sha256) is not None:
        return None  # a parent outside the selection that is not built as recorded
    return the_plan.resolve(job, entry.sha256, file.read_bytes)


def _locked(job: Job, entry: ManifestEntry, reasons: tuple[Reason, ...], force: bool,
            store: Store) -> Assessment:
    """A job whose output the review locks: kept, or restored to the very same bytes."""
    if not reasons and not force:
        return Assessment(job, Action.KEEP, (Reason.UP_TO_DATE,), locked=True)
    if (not force and entry.key == job.key and set(reasons) <= _FILE_REASONS
            and store.has(job.key, job.ext)):
        return Assessment(job, Action.RESTORE, reasons, locked=True)
    return Assessment(job, Action.LOCKED, (Reason.FORCED,) if force and not reasons
                      else reasons, locked=True)


def _candidate(job: Job, candidates: Mapping[str, ManifestEntry], out: Path,
               stats: StatCache, store: Store) -> Assessment:
    """The candidate of a locked job: the image its inputs make now, beside the output."""
    made = job.as_candidate(candidate_path(job.output))
    entry = candidates.get(made.output)
    return assess_one(made, entry, out / made.output, store, stats)


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
