"""The review page, `<out>/index.html`: every output of a campaign, side by side.

Per asset, a grid with the aspect ratios as columns and the providers as rows (an X/Y
plot), each cell holding the seeds/variants with their prompt, negative prompt, seed, size,
provider, cost and status. Outputs new or changed in this build are marked.

The page is one self-contained file (inline CSS and JS, image URLs relative to it) so it
works opened from the file system. Its data is embedded as JSON, never fetched. It holds no
timestamps and no absolute paths, and is rewritten only when its bytes change.

Statuses and "new"/"changed" marks describe the last build that changed something. A
build that changes nothing (every job up to date, the manifest as it was) shows that
build's again, from a small machine-local record in the cache folder, so a no-op build
leaves the whole output folder byte-identical, page included, as the manifest promises.
`qwenbuild watch` serves the page and injects the live-reload hook (see `server.py`); the
file on disk knows nothing about the server.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..build import BuildContext, BuildReport, JobResult, Step
from ..contracts import JobStatus, ManifestEntry, Reason
from ..fsutil import write_if_changed
from ..keys import canonical_json
from ..manifest import Manifest
from ..plan import Plan, code_digest
from ..store import Store

if TYPE_CHECKING:
    from jinja2 import Template

PAGE_NAME = "index.html"

#: Display order and wording of the statuses.
STATUS_LABELS = {
    "generated": "generated",
    "cached": "from cache",
    "up_to_date": "up to date",
    "failed": "failed",
    "stale": "stale",
    "kept": "not in this build",
}


class ReviewPageStep(Step):
    """Write the review page after every build (interrupted ones too)."""

    def build_finished(self, ctx: BuildContext, report: BuildReport) -> None:
        write_review(ctx.plan, report, ctx.manifest, ctx.previous, ctx.store)


def write_review(the_plan: Plan, report: BuildReport, manifest: Manifest,
                 previous: Mapping[str, ManifestEntry], store: Store) -> None:
    """Write `<out>/index.html` for the build that just finished (if its bytes changed).

    `previous` holds the manifest entries from before the build, to mark what changed.
    """
    memory = store.last_build(the_plan.campaign.out)
    noop = (not report.interrupted and previous == manifest.entries
            and all(r.status == JobStatus.UP_TO_DATE for r in report.results))
    signature = _signature(the_plan)
    page = the_plan.campaign.out / PAGE_NAME
    if noop and memory.signature() == signature and page.is_file():
        return  # nothing the page shows has changed: not even rendered (nor its record read)
    last = memory.load()
    data = review_data(the_plan, report, manifest, previous, store, last=last,
                       noop=noop)
    memory.save(_remembered(data), signature)
    write_if_changed(page, render_page(data))


def refresh_review(the_plan: Plan, manifest: Manifest, store: Store) -> None:
    """Write the page again after the manifest changed outside a build (`qwenbuild check`
    adding text scores): what the last build did stays as it was shown."""
    report = BuildReport(the_plan.campaign,
                         [JobResult(job, JobStatus.UP_TO_DATE, (Reason.UP_TO_DATE,))
                          for job in the_plan.jobs],
                         stale=[])
    memory = store.last_build(the_plan.campaign.out)
    data = review_data(the_plan, report, manifest, dict(manifest.entries), store,
                       last=memory.load(), noop=True)
    memory.save(_remembered(data), _signature(the_plan))
    write_if_changed(the_plan.campaign.out / PAGE_NAME, render_page(data))


def _signature(the_plan: Plan) -> str:
    """What, besides the manifest and the outputs' prompts (both unchanged by a no-op
    build), the page is made from: the campaign's assets in order, and this code."""
    assets = [[a.id, list(a.aspects), list(a.providers), _headline(a.copy)]
              for a in the_plan.campaign.assets]
    return hashlib.sha256(canonical_json(
        [code_digest(), the_plan.campaign.name, assets]).encode()).hexdigest()


def review_data(the_plan: Plan, report: BuildReport, manifest: Manifest,
                previous: Mapping[str, ManifestEntry], store: Store,
                last: dict[str, Any] | None = None, noop: bool = False) -> dict[str, Any]:
    """Everything the page shows, as JSON-able data in a stable order.

    `last` (from `store.last_build`) is what the page showed after the last build. Its prompts
    serve outputs whose key is unchanged (rendering thousands of prompts again would cost
    more than the build); on a no-op build (`noop`) it also replaces what this build did by
    what the last build that changed something did.
    """
    campaign = the_plan.campaign
    results = {r.job.output: r for r in report.results}
    failed = {rel for rel, r in results.items() if r.status == JobStatus.FAILED}
    known = (last or {}).get("prompts", {})
    outputs = [
        _output(rel, manifest.entries.get(rel), results.get(rel), previous, store, known)
        for rel in sorted(set(manifest.entries) | failed)
    ]
    summary = {
        "generated": report.count(JobStatus.GENERATED),
        "cached": report.count(JobStatus.CACHED),
        "up_to_date": report.count(JobStatus.UP_TO_DATE),
        "failed": len(failed),
        "cost": _money(report.cost),
    }
    if noop and last is not None:
        remembered = last.get("outputs", {})
        for item in outputs:
            old = remembered.get(item["output"])
            if old and old.get("sha256") == item["sha256"] and item["status"] != "stale":
                item.update({k: old[k] for k in _BUILD_FIELDS if k in old})
        summary.update(last.get("build", {}))
    order = {a.id: a for a in campaign.assets}
    by_asset: dict[str, list[dict[str, Any]]] = {}
    for item in outputs:
        by_asset.setdefault(item["asset"], []).append(item)
    # Campaign order first; assets no longer in the campaign (stale outputs) after them.
    names = [a.id for a in campaign.assets if a.id in by_asset]
    names += sorted(n for n in by_asset if n not in order)
    assets = []
    for name in names:
        items = by_asset[name]
        asset = order.get(name)
        aspects = _ordered({i["aspect"] for i in items}, asset.aspects if asset else ())
        providers = _ordered({i["provider"] for i in items}, asset.providers if asset else ())
        rows = []
        for provider in providers:
            cells = []
            for aspect in aspects:
                cell = [i for i in items if i["provider"] == provider and i["aspect"] == aspect]
                cell.sort(key=lambda i: (i["variant"] or 0, i["seed"] or 0, i["output"]))
                cells.append({"aspect": aspect, "outputs": cell})
            rows.append({"provider": provider, "cells": cells})
        assets.append({
            "id": name,
            "in_campaign": asset is not None,
            "headline": _headline(asset.copy if asset else {}),
            "aspects": aspects,
            "rows": rows,
            "count": len(items),
        })
    all_providers = _ordered({i["provider"] for i in outputs},
                             [p for a in campaign.assets for p in a.providers])
    all_aspects = _ordered({i["aspect"] for i in outputs},
                           [x for a in campaign.assets for x in a.aspects])
    return {
        "campaign": campaign.name,
        "assets": assets,
        "outputs": outputs,
        "providers": all_providers,
        "aspects": all_aspects,
        "summary": {
            **summary,
            "outputs": sum(1 for i in outputs if i["src"]),
            "stale": sum(1 for i in outputs if i["status"] == "stale"),
            "changed": sum(1 for i in outputs if i["changed"]),
            "total_cost": _money(sum(i["cost_usd"] or 0.0 for i in outputs if i["src"])),
        },
        "failures": [{"output": i["output"], "error": i["error"]}
                     for i in outputs if i["status"] == "failed"],
    }


def _output(rel: str, entry: ManifestEntry | None, result: JobResult | None,
            previous: Mapping[str, ManifestEntry], store: Store,
            known: dict[str, list[Any]]) -> dict[str, Any]:
    """One output (or one failed job without an image) as the page shows it."""
    job = result.job if result else None
    src = None
    changed = ""
    if entry is not None:
        sha = entry.sha256
        # The content hash in the URL makes a browser fetch a rebuilt image again, though
        # its path did not change; it is ignored when the page is opened from file://.
        src = f"{quote(rel)}?v={sha[:12]}"
        before = previous.get(rel)
        if before is None:
            changed = "new"
        elif before.sha256 != sha:
            changed = "changed"
    remembered = known.get(rel)
    if job is not None and remembered and remembered[0] == job.key:
        prompt, negative = remembered[1], remembered[2]  # same key: same prompts
    elif job is not None:
        prompt, negative = job.prompts
    else:
        # Not built this time (outside --only, or stale): the cache record remembers.
        record = store.record(entry.key, rel.rsplit(".", 1)[-1]) if entry else None
        inputs = (record.inputs if record else None) or {}
        prompt, negative = inputs.get("prompt"), inputs.get("negative")
    if result is not None:
        status = str(result.status)
    elif entry is not None and entry.stale:
        status = "stale"
    else:
        status = "kept"
    if entry is not None:
        asset, aspect, provider = entry.asset, entry.aspect, entry.provider
        kind, model, seed = entry.kind, entry.model, entry.seed
        width, height = entry.width, entry.height
    elif job is not None:  # a failed job that never had an output
        asset, aspect, provider = job.asset, job.aspect, job.provider
        kind, model, seed = job.kind, job.model, job.seed
        width, height = job.width, job.height
    if job is not None:  # what this build planned wins over what the manifest says
        asset, aspect, provider = job.asset, job.aspect, job.provider
        kind, model, seed = job.kind, job.model, job.seed
    cost = entry.cost_usd if entry is not None else None
    return {
        "output": rel,
        "src": src,
        "asset": asset,
        "aspect": aspect,
        "provider": provider,
        "kind": kind,
        "model": model,
        "seed": seed,
        "variant": job.variant if job else _variant(rel, asset),
        "locale": (job.locale if job else entry.locale if entry is not None else None) or "",
        "parent": (job.parent if job else entry.parent if entry is not None else None) or "",
        "provider_seed": entry.provider_seed if entry is not None else None,
        "width": width,
        "height": height,
        "size": f"{width}×{height}" if width and height else "",
        "bytes": _bytes(entry.bytes if entry is not None else None),
        "cost_usd": cost,
        "cost": _money(cost),
        "sha256": entry.sha256[:12] if entry is not None else "",
        "prompt": prompt,
        "negative": negative,
        "status": status,
        "status_label": STATUS_LABELS[status],
        "reason": result.reason if result and status != "up_to_date" else "",
        "error": result.error if result else None,
        "key": (entry.key if entry is not None else "") or (job.key if job else ""),
        "text": _text_check(entry.text_check if entry is not None else None),
        "changed": changed,
        # A failed rebuild leaves the last good image in place; say which one is shown.
        "previous_kept": status == "failed" and entry is not None,
    }


#: What an output's cell says about the build that made it (as opposed to the output).
_BUILD_FIELDS = ("status", "status_label", "reason", "error", "changed", "previous_kept")
_SUMMARY_FIELDS = ("generated", "cached", "up_to_date", "failed", "cost")


def _remembered(data: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps of a page for the next build (`LastBuildRecord`): what this
    build did per output, and the prompts of each key (rendering thousands again would
    cost more than a no-op build)."""
    return {
        "build": {k: data["summary"][k] for k in _SUMMARY_FIELDS},
        "outputs": {
            item["output"]: {k: item[k] for k in ("sha256", *_BUILD_FIELDS)}
            for item in data["outputs"] if item["src"]
        },
        "prompts": {
            item["output"]: [item["key"], item["prompt"], item["negative"]]
            for item in data["outputs"] if item["key"] and item["prompt"] is not None
        },
    }


def _ordered(present: set[str], preferred: Any) -> list[str]:
    """`present` in the campaign's order, then the rest sorted."""
    first = list(dict.fromkeys(x for x in preferred if x in present))
    return first + sorted(present - set(first))


def _variant(rel: str, asset: str) -> int | None:
    stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    match = re.fullmatch(re.escape(asset) + r"-v(\d+)", stem)
    return int(match.group(1)) if match else None


def _text_check(check: Any) -> dict[str, Any] | None:
    """The text-check verdict of an output (`qwenbuild check`, `build --verify-text`)."""
    if not isinstance(check, dict) or check.get("status") not in ("green", "amber", "red",
                                                             "unreadable"):
        return None
    score = check.get("score")
    return {
        "status": check["status"],
        "score": f"{score:.2f}" if isinstance(score, int | float) else "?",
        "worst_line": str(check.get("worst_line") or ""),
        "read": str(check.get("read") or ""),
    }


def _headline(copy: dict[str, Any]) -> str:
    value = copy.get("headline")
    return value if isinstance(value, str) else ""


def _money(value: float | None) -> str:
    if value is None:
        return "—"
    return "free" if value == 0 else f"${value:.4f}"


def _bytes(value: Any) -> str:
    if not isinstance(value, int):
        return ""
    if value < 1024:
        return f"{value} B"
    if value < 1024 * 1024:
        return f"{value / 1024:.0f} KB"
    return f"{value / (1024 * 1024):.1f} MB"


@functools.cache
def _template() -> Template:
    from jinja2 import Environment

    # Autoescape everything: prompts and copy come from users and may hold markup.
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["aspect_id"] = lambda aspect: str(aspect).replace(":", "x")
    source = resources.files(__package__).joinpath("page.html").read_text("utf-8")
    return env.from_string(source)


def render_page(data: dict[str, Any]) -> bytes:
    """The page's bytes for `review_data(...)` output (or `empty_data(...)`)."""
    return _template().render(data=data, labels=STATUS_LABELS).encode("utf-8")


def empty_data(campaign: str) -> dict[str, Any]:
    """Data for a page with no outputs yet (served by watch before a first good build)."""
    return {
        "campaign": campaign, "assets": [], "outputs": [], "providers": [], "aspects": [],
        "summary": {"outputs": 0, "generated": 0, "cached": 0, "up_to_date": 0, "failed": 0,
                    "stale": 0, "changed": 0, "cost": _money(0.0), "total_cost": _money(0.0)},
        "failures": [],
    }
