"""Peak memory of writing the review page, in a process of its own:

    python bench/page.py CAMPAIGN RESULT.json

Builds nothing: plans the (already built) campaign, makes every job's request as a cold
build would have, then writes the page as a cold build's last step does (every job
"generated", no earlier page) under tracemalloc. Writes {"jobs", "peak_bytes", "seconds"}.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    campaign_path, result_path = sys.argv[1], sys.argv[2]
    from qwenbuild.build import BuildReport, JobResult
    from qwenbuild.campaign import load_campaign
    from qwenbuild.contracts import JobStatus, Reason
    from qwenbuild.manifest import Manifest
    from qwenbuild.plan import plan
    from qwenbuild.providers import KINDS
    from qwenbuild.review.page import DATA_DIR, PageWriter
    from qwenbuild.store import Store

    KINDS["instant"] = "bench.instant:InstantProvider"
    campaign = load_campaign(campaign_path)
    store = Store(campaign.cache_dir)
    the_plan = plan(campaign, store=store)
    for job in the_plan.jobs:
        job.request  # noqa: B018 (a cold build made every request)
    manifest = Manifest.load(campaign.out, campaign.name)
    report = BuildReport(campaign, [JobResult(job, JobStatus.GENERATED, (Reason.NEW,))
                                    for job in the_plan.jobs], stale=[])
    shutil.rmtree(campaign.out / DATA_DIR, ignore_errors=True)  # a cold build: no old page
    tracemalloc.start()
    started = time.perf_counter()
    PageWriter(the_plan, manifest, store).write(report, {}, last=None, noop=False)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    with open(result_path, "w") as fh:
        json.dump({"jobs": len(the_plan.jobs), "peak_bytes": peak, "seconds": seconds}, fh)


if __name__ == "__main__":
    main()
