"""`qwenbuild pull`: bring back every output the committed manifest lists, from the local
cache or the team cache, paying nothing.

A repository can keep its manifests in git and its images in the team cache: a fresh
clone runs `pull` and gets the very bytes the manifest names (an output is the cached
image plus its provenance, both fixed by the job). What cannot be restored is said, output
by output, with the reason: the campaign no longer makes it, its inputs changed since the
manifest was written, or neither cache holds its image.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .build import JobResult
from .build.executor import BuildOptions, build_plan, default_steps
from .campaign import Campaign
from .contracts import JobStatus, ManifestEntry
from .manifest import Manifest
from .plan import Job, plan
from .store import Store
from .textcheck.choices import read_choice, write_choice


@dataclass
class PullReport:
    campaign: Campaign
    #: Outputs written from a cache (local or team).
    restored: list[str] = field(default_factory=list)
    #: Outputs already there with the bytes the manifest names.
    up_to_date: list[str] = field(default_factory=list)
    #: (output, why) of what could not be restored.
    missing: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    #: How many outputs the manifest lists.
    listed: int = 0

    def to_json(self) -> dict[str, object]:
        return {"listed": self.listed, "restored": self.restored, "up_to_date": self.up_to_date,
                "missing": [{"output": o, "reason": r} for o, r in self.missing],
                "interrupted": self.interrupted}


def pull(campaign: Campaign, store: Store, jobs: int | None = None,
         on_event: Callable[[JobResult], None] | None = None) -> PullReport:
    """Restore the outputs `campaign`'s manifest lists; never calls a provider."""
    manifest = Manifest.load(campaign.out, campaign.name)
    listed = dict(manifest.entries)
    the_plan = plan(campaign, None, store)
    report = PullReport(campaign, listed=len(listed))
    planned = {j.output: j for j in the_plan.jobs}
    wanted = []
    for rel in sorted(listed):
        job = planned.get(rel)
        if job is None:
            report.missing.append((rel, "the campaign no longer makes it (qwenbuild clean "
                                        "removes it from the manifest)"))
        elif listed[rel].key != job.key:
            report.missing.append((rel, "its inputs changed since the manifest was written "
                                        "(qwenbuild build makes it, and pays for it)"))
        else:
            wanted.append(job)
    if not wanted:
        return report
    for job in wanted:
        _recover_choice(store, job, listed[job.output])
    options = BuildOptions(jobs=jobs, on_event=on_event, restore_only=True)
    result = asyncio.run(build_plan(replace(the_plan, jobs=tuple(wanted)), options,
                                    steps=default_steps(options), store=store))
    report.interrupted = result.interrupted
    for r in result.results:
        rel = r.job.output
        if r.status == JobStatus.UP_TO_DATE:
            report.up_to_date.append(rel)
        elif r.status == JobStatus.CACHED:
            report.restored.append(rel)
        else:
            report.missing.append((rel, r.error or "not restored"))
    report.missing.sort()
    return report


def _recover_choice(store: Store, job: Job, entry: ManifestEntry) -> None:
    """An output a text-check reroll made (`text_check.chosen` > 0 in the manifest) is that
    reroll's image, not the planned one: where this machine has no record of the choice,
    write it from the manifest, with both images fetched from the team cache, so that the
    restore brings back the committed bytes."""
    text_check = entry.text_check
    if not isinstance(text_check, dict) or not text_check.get("chosen"):
        return
    if read_choice(store, job) is not None:
        return
    attempts = [a for a in text_check.get("attempts") or () if isinstance(a, dict)]
    chosen = next((a for a in attempts if a.get("attempt") == text_check["chosen"]), None)
    if chosen is None or not isinstance(chosen.get("key"), str):
        return
    key = str(chosen["key"])
    for needed in (job.key, key):
        if not (store.has(needed, job.ext) or store.fetch(needed, job.ext)):
            return
    planned = store.record(job.key, job.ext)
    write_choice(store, job, {"key": key, "seed": chosen.get("seed"),
                              "attempt": chosen.get("attempt"),
                              "attempt0_sha256": planned.sha256 if planned else None,
                              "output_sha256": entry.sha256})
