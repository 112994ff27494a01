"""`qwenbuild check CAMPAIGN`: read the text of every built output back and score it.

Checks each output of the campaign's current plan that the manifest lists, and writes the
results into the manifest entries (`text_check`) under the build's output lock. Returns a
`CheckReport`; the CLI prints it (qwenbuild/cli/check.py).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..campaign import Campaign
from ..errors import InputError, LockError
from ..fsutil import file_sha256
from ..manifest import MANIFEST_NAME, Manifest
from ..plan import Job, Plan, Selection, plan
from ..review.page import refresh_review
from ..store import Store
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

    def status(self, item: ImageCheck) -> str:
        return "missing" if item.result is None else item.result.status(self.min_score)

    def count(self, status: str) -> int:
        return sum(1 for item in self.images if self.status(item) == status)

    @property
    def failed(self) -> bool:
        """Whether any image reads wrong (red) or could not be opened."""
        return any(self.status(item) in (RED, ERROR) for item in self.images)

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
    report = CheckReport(campaign, min_score, recorded=record)
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
        item.result = checker.check(file, item.sha256, item.lines)

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
