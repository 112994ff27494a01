"""`qwenbuild plan`: what a build would do (jobs, renditions, stale files) and its cost.

`plan --check` is the same survey read as a test for CI: anything a build would generate,
restore or render, and any output that is stale, missing or modified, means the committed
outputs do not match the campaign. Surveying never writes a file (`remember=False`).

An output the review locks is not pending: a build keeps it (`locked`, with what changed).
`plan --check --require-approval` also needs every output that ships approved (or picked)
on the image it holds, and every export rendition approved: in a group (asset, aspect,
provider) with a pick only the pick ships; without one, every variant does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .campaign import Campaign
from .contracts import Action
from .costs import Estimate, estimate, job_price
from .exports import ExportStatus, assess_exports
from .manifest import Manifest
from .plan import Assessment, Plan, Selection, assess, plan
from .review.decisions import LOCKING, OUTDATED, REJECTED, UNREVIEWED, ReviewFile, review_path
from .store import Store


@dataclass(frozen=True)
class Survey:
    """The plan of a campaign against its manifest, its files and the store."""

    the_plan: Plan
    assessments: list[Assessment]
    #: Outputs in the manifest that the campaign no longer makes.
    stale: list[str]
    exports: list[ExportStatus]
    stale_exports: list[str]
    estimate: Estimate
    manifest: Manifest
    review: ReviewFile

    @property
    def campaign(self) -> Campaign:
        return self.the_plan.campaign

    def count(self, action: Action) -> int:
        return sum(1 for a in self.assessments if a.action == action)

    def pending(self) -> list[tuple[str, str, str]]:
        """Everything that is not up to date, as (what, path, why); paths relative to the
        campaign folder. Empty when the outputs match the campaign."""
        items = []
        for a in self.assessments:
            if a.action == Action.GENERATE:
                items.append(("generate", self.shown(a.job.output), a.reason))
            elif a.action == Action.RESTORE:
                items.append(("restore", self.shown(a.job.output), a.reason))
        items += [("render", self.shown(e.job.output), e.reason.value)
                  for e in self.exports if e.action != Action.KEEP]
        items += [("stale", self.shown(rel), "no longer in the campaign; qwenbuild clean "
                   "removes it") for rel in (*self.stale, *self.stale_exports)]
        return items

    def locked(self) -> list[Assessment]:
        """Locked outputs whose inputs changed: a build keeps them as approved."""
        return [a for a in self.assessments if a.action == Action.LOCKED]

    def review_status(self, rel: str) -> str:
        """The review status of an output or rendition as it is now."""
        entry = (self.manifest.entries.get(rel) or self.manifest.exports.get(rel)
                 or self.manifest.candidates.get(rel))
        return self.review.status(rel, entry.sha256 if entry is not None else None)

    def unapproved(self) -> list[tuple[str, str]]:
        """What ships without an approval, as (path, why), paths relative to the campaign
        folder; empty when everything that ships is approved (`--require-approval`)."""
        entries = self.manifest.entries
        picks = self.review.picks(entries)
        items = []
        for a in self.assessments:
            rel = a.job.output
            if a.job.candidate_of:
                continue
            picked = picks.get((a.job.asset, a.job.aspect, a.job.provider))
            if picked is not None and picked != rel:
                continue  # another variant is the pick: this one does not ship
            why = self._why_not(rel, entries.get(rel) is not None)
            if why:
                items.append((self.shown(rel), why))
        for e in self.exports:
            rel = e.job.output
            why = self._why_not(rel, rel in self.manifest.exports)
            if why:
                items.append((self.shown(rel), why))
        return items

    def _why_not(self, rel: str, built: bool) -> str:
        if not built:
            return "not built yet"
        status = self.review_status(rel)
        if status in LOCKING:
            return ""
        found = self.review.get(rel)
        by = f" by {found.by}" if found is not None and found.by else ""
        if status == UNREVIEWED:
            return "not reviewed"
        if status == OUTDATED and found is not None:
            return f"outdated: {found.decision}{by} on an earlier image"
        if status == REJECTED:
            return f"rejected{by}"
        return status

    def shown(self, rel: str) -> str:
        """An output path relative to the campaign folder, as messages show it."""
        campaign = self.campaign
        return os.path.relpath(campaign.out / rel, campaign.root).replace(os.sep, "/")

    def to_json(self) -> dict[str, Any]:
        price = {a.job.output: job_price(self.the_plan, a.job)
                 if a.action == Action.GENERATE else 0.0 for a in self.assessments}
        return {
            "build": self.count(Action.GENERATE),
            "cached": self.count(Action.RESTORE),
            "up_to_date": self.count(Action.KEEP),
            "estimated_cost_usd": self.estimate.usd,
            "budget_usd": self.campaign.budget,
            "stale": self.stale,
            "jobs": [{
                "asset": a.job.asset, "aspect": a.job.aspect, "provider": a.job.provider,
                "seed": a.job.seed, "key": a.job.key, "status": str(a.action),
                "reason": a.reason, "output": self.shown(a.job.output),
                "width": a.job.width, "height": a.job.height,
                "estimated_cost_usd": price[a.job.output],
                "review": self.review_status(a.job.output),
                **({"candidate_of": self.shown(a.job.candidate_of)}
                   if a.job.candidate_of else {}),
            } for a in self.assessments],
            "locked": self.count(Action.LOCKED),
            "exports": [{
                "export": e.job.export.name, "source": self.shown(e.job.source),
                "output": self.shown(e.job.output), "status": str(e.action),
                "reason": e.reason.value, "review": self.review_status(e.job.output),
            } for e in self.exports],
            "stale_exports": self.stale_exports,
        }


def survey(campaign: Campaign, selection: Selection | None = None,
           remember: bool = True, unlock: tuple[str, ...] = ()) -> Survey:
    """Plan the campaign and compare it with what is on disk. With `remember`, the keys
    are memoised for the next run (in the store); without, nothing is written. `unlock`:
    assets whose locks a build would release (`--unlock`)."""
    store = Store(campaign.cache_dir)
    the_plan = plan(campaign, selection, store)
    manifest = Manifest.load(campaign.out, campaign.name)
    review = ReviewFile.load(review_path(campaign.path))
    picks = review.export_picks(manifest.entries)
    stats = store.stat_cache(campaign.out)
    assessments = assess(the_plan, manifest.entries, store, stats,
                         locks=review.locks(unlock) if review.exists else None)
    if remember:
        the_plan.remember()
    exports, stale_exports = assess_exports(the_plan, manifest, assessments, stats, picks)
    stale = sorted(p for p in manifest.entries if p not in the_plan.all_outputs)
    return Survey(the_plan, assessments, stale, exports, stale_exports,
                  estimate(the_plan, assessments), manifest, review)
