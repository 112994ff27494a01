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

import logging
import os
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from .campaign import Campaign
from .contracts import Action, Reason
from .costs import Estimate, estimate, job_price
from .exports import ExportStatus, assess_exports, export_warnings
from .fsutil import write_fault
from .manifest import Manifest
from .plan import Assessment, Plan, Selection, assess, plan
from .plan.shard import Shard, shard_plan
from .review.decisions import LOCKING, OUTDATED, REJECTED, UNREVIEWED, ReviewFile, review_path
from .store import Store

log = logging.getLogger(__name__)


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
    #: What the renditions a build would make would lose (exports.export_warnings).
    export_warnings: tuple[str, ...] = ()

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

    def missing_keys(self) -> list[tuple[str, str, int]]:
        """(provider, variable, jobs) for each provider a build would call whose API key is
        not set in the environment: the build would fail those jobs."""
        wanted = Counter(a.job.provider for a in self.assessments
                         if a.action == Action.GENERATE)
        found = []
        for name, jobs in sorted(wanted.items()):
            env = self.the_plan.providers[name].info.api_key_env
            if env and not os.environ.get(env):
                found.append((name, env, jobs))
        return found

    def warnings(self) -> list[str]:
        """A provider the build would call without its key; what renditions to be made
        would lose (upscaled, text cropped away)."""
        keys = [f"provider {name}: {env} is not set, so a build would fail its {jobs} "
                f"job{'s' if jobs != 1 else ''} to generate; set it in the environment "
                f"(export {env}=...)" for name, env, jobs in self.missing_keys()]
        return keys + list(self.export_warnings)

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
            picked = picks.get((a.job.asset, a.job.aspect, a.job.provider, a.job.locale))
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
            "warnings": self.warnings(),
        }


def survey(campaign: Campaign, selection: Selection | None = None,
           remember: bool = True, store: Store | None = None,
           shard: Shard | None = None, unlock: tuple[str, ...] = ()) -> Survey:
    """Plan the campaign (one shard of it) and compare it with what is on disk. With
    `remember`, the keys are memoised for the next run (in the store); without, nothing is
    written. A job the team cache holds counts as one to restore (looked up, not
    downloaded). `unlock`: assets whose locks a build would release (`--unlock`)."""
    store = store or Store(campaign.cache_dir)
    the_plan = shard_plan(plan(campaign, selection, store), shard)
    manifest = Manifest.load(campaign.out, campaign.name)
    review = ReviewFile.load(review_path(campaign.path))
    picks = review.export_picks(manifest.entries)
    stats = store.stat_cache(campaign.out)
    assessments = assess(the_plan, manifest.entries, store, stats,
                         locks=review.locks(unlock) if review.exists else None)
    if store.remote is not None:
        wanted = [(a.job.key, a.job.ext) for a in assessments if a.action == Action.GENERATE]
        found = store.remote_has(wanted) if wanted else set()
        assessments = [replace(a, action=Action.RESTORE, reasons=(Reason.RESTORED,)
                               if a.reasons == (Reason.NEW,) else a.reasons)
                       if a.action == Action.GENERATE and a.job.key in found else a
                       for a in assessments]
    if remember:
        try:
            the_plan.remember()
        except OSError as exc:  # a read-only cache: the next plan renders its prompts again
            log.warning("%s (the key memo of the cache: not needed, it saves time)",
                        write_fault(exc))
    exports, stale_exports = assess_exports(the_plan, manifest, assessments, stats, picks)
    stale = sorted(p for p in manifest.entries if p not in the_plan.all_outputs)
    keys = {job.output: job.key for job in the_plan.jobs}
    sizes = {rel: (e.width, e.height) for rel, e in manifest.entries.items()
             if e.width and e.height and keys.get(rel) == e.key}  # the output stays
    warned = export_warnings(the_plan, [e.job for e in exports if e.action != Action.KEEP],
                             sizes)
    return Survey(the_plan, assessments, stale, exports, stale_exports,
                  estimate(the_plan, assessments), manifest, review, tuple(warned))
