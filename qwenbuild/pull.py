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
from .contracts import JobStatus
from .manifest import Manifest
from .plan import plan
from .store import Store


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
        elif job.pending:
            # Made from another output: its key follows from that output's image, known
            # once it is restored (the build restores parents first).
            wanted.append(job)
        elif listed[rel].key != job.key:
            report.missing.append((rel, "its inputs changed since the manifest was written "
                                        "(qwenbuild build makes it, and pays for it)"))
        else:
            wanted.append(job)
    if not wanted:
        return report
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
        elif r.job.key and listed[rel].key != r.job.key:
            report.missing.append((rel, "its inputs changed since the manifest was written "
                                        "(qwenbuild build makes it, and pays for it)"))
        else:
            report.missing.append((rel, r.error or "not restored"))
    report.missing.sort()
    return report

