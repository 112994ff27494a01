"""`qwenbuild plan`: what a build would do (jobs, renditions, stale files) and its cost.

`plan --check` is the same survey read as a test for CI: anything a build would generate,
restore or render, and any output that is stale, missing or modified, means the committed
outputs do not match the campaign. Surveying never writes a file (`remember=False`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .cache import Cache
from .campaign import Campaign
from .costs import Estimate, estimate, job_price
from .exports import ExportStatus, assess_exports
from .manifest import Manifest, StatCache
from .plan import BUILD, CACHED, UP_TO_DATE, Assessment, Plan, Selection, assess, plan


@dataclass(frozen=True)
class Survey:
    """The plan of a campaign against its manifest, its files and the cache."""

    the_plan: Plan
    assessments: list[Assessment]
    #: Outputs in the manifest that the campaign no longer makes.
    stale: list[str]
    exports: list[ExportStatus]
    stale_exports: list[str]
    estimate: Estimate

    @property
    def campaign(self) -> Campaign:
        return self.the_plan.campaign

    def count(self, status: str) -> int:
        return sum(1 for a in self.assessments if a.status == status)

    def pending(self) -> list[tuple[str, str, str]]:
        """Everything that is not up to date, as (what, path, why); paths relative to the
        campaign folder. Empty when the outputs match the campaign."""
        items = []
        for a in self.assessments:
            if a.status == BUILD:
                items.append(("generate", self.shown(a.job.output), a.reason))
            elif a.status == CACHED:
                items.append(("restore", self.shown(a.job.output), a.reason))
        items += [("render", self.shown(e.job.output), e.reason)
                  for e in self.exports if e.status != UP_TO_DATE]
        items += [("stale", self.shown(rel), "no longer in the campaign; qwenbuild clean "
                   "removes it") for rel in (*self.stale, *self.stale_exports)]
        return items

    def shown(self, rel: str) -> str:
        """An output path relative to the campaign folder, as messages show it."""
        campaign = self.campaign
        return os.path.relpath(campaign.out / rel, campaign.root).replace(os.sep, "/")

    def to_json(self) -> dict[str, Any]:
        price = {a.job.output: job_price(self.the_plan, a.job) if a.status == BUILD else 0.0
                 for a in self.assessments}
        return {
            "build": self.count(BUILD),
            "cached": self.count(CACHED),
            "up_to_date": self.count(UP_TO_DATE),
            "estimated_cost_usd": self.estimate.usd,
            "budget_usd": self.campaign.budget,
            "stale": self.stale,
            "jobs": [{
                "asset": a.job.asset, "aspect": a.job.aspect, "provider": a.job.provider,
                "seed": a.job.seed, "key": a.job.key, "status": a.status, "reason": a.reason,
                "output": self.shown(a.job.output), "width": a.job.width,
                "height": a.job.height, "estimated_cost_usd": price[a.job.output],
            } for a in self.assessments],
            "exports": [{
                "export": e.job.export.name, "source": self.shown(e.job.source),
                "output": self.shown(e.job.output), "status": e.status, "reason": e.reason,
            } for e in self.exports],
            "stale_exports": self.stale_exports,
        }


def survey(campaign: Campaign, selection: Selection | None = None,
           remember: bool = True) -> Survey:
    """Plan the campaign and compare it with what is on disk. With `remember`, the keys
    are memoised for the next run (in the cache folder); without, nothing is written."""
    the_plan = plan(campaign, selection or Selection())
    manifest = Manifest.load(campaign.out, campaign.name)
    stats = StatCache(campaign.cache_dir, campaign.out)
    assessments = assess(the_plan, manifest, Cache(campaign.cache_dir), stats)
    if remember:
        the_plan.remember()
    exports, stale_exports = assess_exports(the_plan, manifest, assessments, stats)
    stale = sorted(p for p in manifest.entries if p not in the_plan.all_outputs)
    return Survey(the_plan, assessments, stale, exports, stale_exports,
                  estimate(the_plan, assessments))
