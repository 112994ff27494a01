"""`qwenbuild check CAMPAIGN [--repair]`: read the text of every built output back and
score it; with `--repair`, repair (and reroll) what reads wrong.

Checks each output of the campaign's current plan that the manifest lists, and writes the
results into the manifest entries (`text_check`) under the build's output lock. Returns a
`CheckReport`; the CLI prints it (qwenbuild/cli/check.py).

`repair_red` then runs the build's text step (`reroll.VerifyTextStep`, with repairs) on
the red outputs that are up to date, exactly as `build --verify-text --repair` would: it
pays for repairs and rerolls, within the budget (the campaign's or `--budget`) and
`--max-rerolls`, and never generates a job afresh (an output out of date is left for
`build`). Exports of a repaired output are rendered again by the next `build`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..campaign import Campaign
from ..errors import InputError, LockError
from ..fsutil import file_sha256
from ..manifest import MANIFEST_NAME, Manifest
from ..plan import Job, Plan, Selection, plan
from ..review.page import refresh_review
from ..store import Store

if TYPE_CHECKING:
    from ..build import BuildReport
from . import (
    AMBER,
    DEFAULT_MIN_SCORE,
    ERROR,
    GREEN,
    NONE,
    RED,
    UNREADABLE_STATUS,
    TextChecker,
    TextResult,
    engines,
    expectations,
)

#: Keys of a manifest entry's `text_check` that `build --verify-text` owns: a later
#: `check` of the same image keeps them.
_REROLL_KEYS = ("attempts", "chosen")
#: Exit code of `check` when no image is red but some are unreadable.
EXIT_UNREADABLE = 3


@dataclass
class ImageCheck:
    """One output: its expected lines and what the check found (or why it was not read)."""

    job: Job
    lines: tuple[str, ...]
    result: TextResult | None = None
    sha256: str | None = None
    #: Why the output was not checked ("not built yet"), or a remark about it.
    note: str | None = None


@dataclass
class CheckReport:
    campaign: Campaign
    min_score: float
    images: list[ImageCheck] = field(default_factory=list)
    #: Whether the scores were to be written into the manifest (`--record`).
    recorded: bool = False
    #: Whether the manifest was written (False when nothing changed in it).
    saved: bool = False
    #: Why the scores could not be written (another build holds the output folder).
    unsaved: str | None = None
    #: The plan the check was made for (not reported).
    plan: Plan | None = field(default=None, repr=False)
    #: What `--repair` did (set by the CLI after `repair_red`).
    repair: RepairReport | None = None

    def status(self, item: ImageCheck) -> str:
        return "missing" if item.result is None else item.result.status(self.min_score)

    def count(self, status: str) -> int:
        return sum(1 for item in self.images if self.status(item) == status)

    @property
    def failed(self) -> bool:
        """Whether any image reads wrong (red) or could not be opened."""
        return any(self.status(item) in (RED, ERROR) for item in self.images)

    @property
    def notes(self) -> list[str]:
        """What the reading went without (a locale's language data), each said once."""
        return list(dict.fromkeys(note for item in self.images if item.result is not None
                                  for note in item.result.notes))

    @property
    def unreadable(self) -> bool:
        """Whether any image could not be read with confidence."""
        return any(self.status(item) == UNREADABLE_STATUS for item in self.images)

    def output(self, item: ImageCheck) -> str:
        path = self.campaign.out / item.job.output
        return os.path.relpath(path, self.campaign.root).replace(os.sep, "/")

    def to_json(self) -> dict[str, Any]:
        images = []
        for item in self.images:
            data: dict[str, Any] = {
                "output": self.output(item), "asset": item.job.asset,
                "aspect": item.job.aspect, "provider": item.job.provider,
                "seed": item.job.seed, "status": self.status(item), "note": item.note,
                **({"locale": item.job.locale} if item.job.locale else {}),
            }
            if item.result is not None:
                data.update(item.result.to_manifest(self.min_score))
                data["cached"] = item.result.cached
            images.append(data)
        return {
            "min_score": self.min_score,
            **{s: self.count(s) for s in (GREEN, AMBER, RED, UNREADABLE_STATUS, NONE, ERROR,
                                          "missing")},
            "read": sum(1 for i in self.images if i.result is not None and not i.result.cached),
            "cached": sum(1 for i in self.images if i.result is not None and i.result.cached),
            "images": images,
            **({"notes": self.notes} if self.notes else {}),
            **({"repair": self.repair.to_json()} if self.repair is not None else {}),
        }


def check_campaign(campaign: Campaign, selection: Selection | None = None,
                   min_score: float = DEFAULT_MIN_SCORE, engine: engines.OcrEngine | None = None,
                   workers: int | None = None, save: bool = True,
                   record: bool = False) -> CheckReport:
    """Check the built outputs of a campaign. Raises InputError (exit 2) when nothing is
    built yet, a template of expect_text is broken or no OCR engine is installed.

    The results are cached (by image) and shown on the review page (with `save`); they go
    into the manifest only with `record`, so a check leaves a committed manifest as it
    is."""
    store = Store(campaign.cache_dir)
    the_plan = plan(campaign, selection, store)
    manifest_file = campaign.out / MANIFEST_NAME
    out_shown = os.path.relpath(campaign.out, campaign.root).replace(os.sep, "/")
    if not manifest_file.is_file():
        raise InputError(f"{campaign.shown}: nothing to check: {out_shown}/{MANIFEST_NAME} "
                         f"does not exist yet; run `qwenbuild build {campaign.shown}` first")
    manifest = Manifest.load(campaign.out, campaign.name)
    expected = expectations(the_plan)
    report = CheckReport(campaign, min_score, recorded=record, plan=the_plan)
    todo: list[tuple[ImageCheck, Path]] = []
    for job in the_plan.jobs:
        item = ImageCheck(job, expected[job.output])
        report.images.append(item)
        entry = manifest.entries.get(job.output)
        file = campaign.out / job.output
        if entry is None or not file.is_file():
            item.note = "not built yet" if entry is None else "output file missing"
            continue
        item.sha256 = file_sha256(file)
        if item.sha256 != entry.sha256:
            item.note = "changed since the build: checked as it is, not recorded"
        todo.append((item, file))
    if not todo:
        raise InputError(f"{campaign.shown}: nothing to check: no output of the selection is "
                         f"built yet; run `qwenbuild build {campaign.shown}` first")
    checker = TextChecker(engine or engines.default_engine(), store)

    def run(pair: tuple[ImageCheck, Path]) -> None:
        item, file = pair
        assert item.sha256 is not None
        item.result = checker.check(file, item.sha256, item.lines, item.job.locale)

    # One Tesseract process per image at a time, several images at once.
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 2)) as pool:
        list(pool.map(run, todo))
    if save:
        try:
            report.saved = _save(the_plan, store, report, record)
        except (LockError, OSError) as exc:  # the scores are still reported, and cached
            report.unsaved = str(exc) if isinstance(exc, LockError) else \
                f"{exc.filename}: {exc.strerror or exc}"
    return report


def _save(the_plan: Plan, store: Store, report: CheckReport, record: bool) -> bool:
    """Show each result on the review page and (with `record`) write it into its manifest
    entry, under the output lock (a build running meanwhile would otherwise overwrite the
    manifest or be overwritten). Returns whether the manifest was written."""
    campaign = the_plan.campaign
    with store.output_lock(campaign.out):
        manifest = Manifest.load(campaign.out, campaign.name)
        for item in report.images:
            entry = manifest.entries.get(item.job.output)
            if item.result is None or entry is None or entry.sha256 != item.sha256:
                continue  # only a result about the very image the entry describes
            old = entry.text_check or {}
            text_check = item.result.to_manifest(report.min_score)
            text_check.update({k: old[k] for k in _REROLL_KEYS if k in old})
            manifest.set(item.job.output, replace(entry, text_check=text_check))
        saved = manifest.save() if record else False
        # The page shows the results (the manifest in memory holds them, saved or not).
        refresh_review(the_plan, manifest, store)
        return saved


# -- check --repair ---------------------------------------------------------------------------


@dataclass
class RepairReport:
    """What `check --repair` did: the red outputs repaired (or not, and why)."""

    campaign: Campaign
    max_rerolls: int
    budget: float | None
    #: Red outputs sent to the text step, and those left alone with the reason.
    repaired: list[Job] = field(default_factory=list)
    left: list[tuple[Job, str]] = field(default_factory=list)
    build: BuildReport | None = None
    #: Outputs made from a repaired image (derived assets), out of date since: `build`
    #: makes them again.
    outdated: list[Job] = field(default_factory=list)

    @property
    def cost(self) -> float:
        return self.build.cost if self.build is not None else 0.0

    @property
    def rewrote(self) -> bool:
        """Whether a repair or reroll was paid for or chosen: its output and manifest entry
        were written."""
        from ..contracts import JobStatus

        return self.build is not None and any(
            r.status in (JobStatus.GENERATED, JobStatus.CACHED) for r in self.build.results)

    def output(self, job: Job) -> str:
        path = self.campaign.out / job.output
        return os.path.relpath(path, self.campaign.root).replace(os.sep, "/")

    def outcomes(self, manifest: Manifest) -> list[dict[str, Any]]:
        """Per output sent: its status now, the attempt chosen and how it was obtained."""
        results = {r.job.output: r for r in (self.build.results if self.build else [])}
        out = []
        for job in self.repaired:
            entry = manifest.entries.get(job.output)
            check = (entry.text_check if entry is not None else None) or {}
            chosen = check.get("chosen", 0)
            attempts = check.get("attempts") or []
            how = next((a.get("how") for a in attempts if isinstance(a, dict)
                        and a.get("attempt") == chosen), None)
            result = results.get(job.output)
            out.append({"output": self.output(job), "status": check.get("status"),
                        "chosen": chosen, "how": how,
                        "repairs": result.repairs if result else 0,
                        "rerolls": result.rerolls if result else 0,
                        **({"error": result.error} if result and result.error else {})})
        return out

    def to_json(self) -> dict[str, Any]:
        manifest = Manifest.load(self.campaign.out, self.campaign.name)
        return {"max_rerolls": self.max_rerolls, "budget_usd": self.budget,
                "cost_usd": self.cost, "images": self.outcomes(manifest),
                "left": [{"output": self.output(job), "reason": why}
                         for job, why in self.left],
                "outdated": [self.output(job) for job in self.outdated]}


def red_outputs(report: CheckReport) -> list[ImageCheck]:
    """The outputs the check found red, as the manifest records them."""
    return [item for item in report.images
            if report.status(item) == RED and item.note is None]


def repair_red(report: CheckReport, max_rerolls: int = 2, budget_usd: float | None = None,
               store: Store | None = None) -> RepairReport:
    """Repair, then reroll, each red output of `report` that is up to date, with the
    build's text step (`build --verify-text --repair`). Pays for new images within the
    budget (`budget_usd`, else the campaign's) and `max_rerolls` per output."""
    import asyncio

    from ..build.executor import BuildOptions, build_plan
    from ..contracts import Action, Reason
    from ..plan import assess
    from ..review.decisions import ReviewFile, review_path
    from .reroll import VerifyTextStep

    campaign = report.campaign
    the_plan = report.plan
    assert the_plan is not None
    store = store or Store(campaign.cache_dir)
    budget = budget_usd if budget_usd is not None else campaign.budget
    result = RepairReport(campaign, max_rerolls, budget)
    red = [item.job for item in red_outputs(report)]
    if not red:
        return result
    manifest = Manifest.load(campaign.out, campaign.name)
    stats = store.stat_cache(campaign.out)
    review = ReviewFile.load(review_path(campaign.path))
    locks = review.locks() if review.exists else None
    for a in assess(replace(the_plan, jobs=tuple(red)), manifest.entries, store, stats,
                    locks=locks):
        if a.locked:
            result.left.append((a.job, "approved (or picked) in the review file, which locks "
                                       f"it: `qwenbuild build --unlock {a.job.asset}` "
                                       "releases it"))
        elif a.action == Action.KEEP:
            result.repaired.append(a.job)
        else:
            result.left.append((a.job, "out of date (" + ", ".join(r.value for r in a.reasons)
                                + "): `qwenbuild build --verify-text --repair` makes it"))
    if not result.repaired:
        return result
    step = VerifyTextStep(report.min_score, max_rerolls, None, budget_usd, repair=True)
    # max_generate 0: a job is never generated afresh here (only repaired and rerolled by
    # the step, which keeps its own count against the budget).
    options = BuildOptions(verify_text=True, repair=True, min_score=report.min_score,
                           max_rerolls=max_rerolls, budget_usd=budget_usd, max_generate=0)
    result.build = asyncio.run(build_plan(replace(the_plan, jobs=tuple(result.repaired)),
                                          options, steps=[step], store=store))
    after = Manifest.load(campaign.out, campaign.name)
    with store.output_lock(campaign.out):
        refresh_review(the_plan, after, store)
    if result.rewrote:
        # Outputs made from a repaired image are now out of date: said, left for `build`.
        full = plan(campaign, None, store)
        for a in assess(full, after.entries, store, store.stat_cache(campaign.out),
                        locks=locks):
            if a.job.parent is not None and Reason.PARENT in a.reasons:
                result.outdated.append(a.job)
    return result
