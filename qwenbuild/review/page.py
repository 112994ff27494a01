"""The review page: `<out>/index.html` and its data files in `<out>/review/`.

Per asset, a grid with the aspect ratios as columns and the providers as rows (an X/Y
plot), each cell holding the seeds/variants with their prompt, negative prompt, seed, size,
provider, cost, build status and review status; outputs new or changed in the last build
that changed something are marked. The reviewing itself (approve, reject, pick, comments,
before/after, zoom) works when a local server serves the page (`server.py`).

Files, all written only when their bytes change:

- `index.html`: the page itself (page.html: style and script), the same for every build;
- `review/index.js`: the first screen's data: the build summary, the assets in order and
  one short row per output (path, ids, build and text status, image hash): enough to lay
  out the whole page, filter it and count, and nothing else;
- `review/c-<hash>.js`: the details (prompts, seeds, models, costs, reasons, exports
  with their crops), about 100 outputs per file, named by content; the page loads the
  ones near the screen;
- `review/decisions.js`: the review file as the page reads it (rewritten by every
  decision; a server serves it fresh from the review file);
- `review/.gitignore`: `*`, so that git ignores the data files (they describe the last
  build on this machine) in every repository, old ones too.

They are `<script>` files, not JSON: a page opened from `file://` may load scripts but
cannot fetch files. Everything user-written is set with `textContent`, never as HTML.

Writing streams: one chunk of outputs at a time, so memory stays flat per job. A build
that changes nothing (every job up to date, the manifest as it was) writes nothing: the
page still shows the last build that changed something, as the machine-local record in
the cache (`store.last_build`) remembers it. Prompts come from the request when the build
made it, else from the last page's chunks (same key, same prompt), else the cache record.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..build import BuildContext, BuildReport, JobResult, Step
from ..contracts import ExportEntry, JobStatus, ManifestEntry, Reason
from ..errors import InputError
from ..exports import cover_box
from ..fsutil import write_if_changed
from ..keys import canonical_json
from ..manifest import Manifest
from ..plan import Job, Plan, candidate_of, code_digest
from ..sizes import aspect_dir
from ..store import Store
from .decisions import ReviewFile, review_path

PAGE_NAME = "index.html"
DATA_DIR = "review"
INDEX_NAME = "index.js"
DECISIONS_NAME = "decisions.js"
DATA_FORMAT = 1
#: Outputs per chunk file (whole assets: a chunk may hold a few more).
CHUNK_OUTPUTS = 96

#: Build statuses: the index's codes are positions in this tuple.
STATUSES = ("generated", "cached", "up_to_date", "failed", "stale", "kept", "locked")
STATUS_LABELS = {
    "generated": "generated",
    "cached": "from cache",
    "up_to_date": "up to date",
    "failed": "failed",
    "stale": "stale",
    "kept": "not in this build",
    "locked": "locked",
}
_CHANGED = ("", "new", "changed")
_TEXT = ("", "green", "amber", "red", "unreadable")
#: What an output's cell says about the build that made it (as opposed to the output).
_BUILD_FIELDS = ("status", "reason", "error", "changed", "previous_kept", "before_key")
_SUMMARY_FIELDS = ("generated", "cached", "up_to_date", "failed", "locked", "cost")


class ReviewPageStep(Step):
    """Write the review page after every build (interrupted ones too)."""

    def build_finished(self, ctx: BuildContext, report: BuildReport) -> None:
        write_review(ctx.plan, report, ctx.manifest, ctx.previous, ctx.store, ctx.review)


def write_review(the_plan: Plan, report: BuildReport, manifest: Manifest,
                 previous: Mapping[str, ManifestEntry], store: Store,
                 review: ReviewFile | None = None) -> None:
    """Write the page for the build that just finished (the files whose bytes changed).

    `previous` holds the manifest entries from before the build, to mark what changed.
    """
    out = the_plan.campaign.out
    memory = store.last_build(out)
    noop = (not report.interrupted and previous == manifest.entries
            and all(r.status in (JobStatus.UP_TO_DATE, JobStatus.LOCKED)
                    for r in report.results))
    signature = _signature(the_plan)
    if not (noop and memory.signature() == signature and _complete(out)):
        # (On a no-op build the page is not even rendered, nor its record read.)
        remembered = PageWriter(the_plan, manifest, store).write(
            report, previous, last=memory.load(), noop=noop)
        memory.save(remembered, signature)
    try:  # read again: a decision may have been made while the build ran
        review = ReviewFile.load(review_path(the_plan.campaign.path))
    except InputError:  # edited by hand mid-build and broken: the next build says so
        pass
    if review is not None:
        write_decisions(out, review)


def refresh_review(the_plan: Plan, manifest: Manifest, store: Store) -> None:
    """Write the page again after the manifest changed outside a build (`qwenbuild check`
    adding text scores, a candidate promoted): what the last build did stays as shown."""
    report = BuildReport(the_plan.campaign,
                         [JobResult(job, JobStatus.UP_TO_DATE, (Reason.UP_TO_DATE,))
                          for job in the_plan.jobs],
                         stale=[])
    memory = store.last_build(the_plan.campaign.out)
    remembered = PageWriter(the_plan, manifest, store).write(
        report, dict(manifest.entries), last=memory.load(), noop=True)
    memory.save(remembered, _signature(the_plan))
    write_decisions(the_plan.campaign.out, ReviewFile.load(review_path(the_plan.campaign.path)))


def write_decisions(out: Path, review: ReviewFile) -> None:
    """`review/decisions.js`: the review file for the page (none without a review file)."""
    target = out / DATA_DIR / DECISIONS_NAME
    if not review.exists:
        target.unlink(missing_ok=True)
        return
    if not (out / DATA_DIR).is_dir():
        return  # no page yet: the first build writes both
    write_if_changed(target, decisions_script(review))


def decisions_script(review: ReviewFile) -> bytes:
    """The review file as `review/decisions.js` holds it (also served fresh by server.py)."""
    data = {}
    for rel, found in sorted(review.outputs.items()):
        data[rel] = {
            "decision": found.decision, "by": found.by, "at": _iso(found.at),
            "sha": found.sha256[:12],
            "comments": [[c.by, _iso(c.at), c.sha256[:12], c.text] for c in found.comments],
        }
    return _script("__qb_decisions", data)


def _complete(out: Path) -> bool:
    return (out / PAGE_NAME).is_file() and (out / DATA_DIR / INDEX_NAME).is_file()


def _signature(the_plan: Plan) -> str:
    """What, besides the manifest and the outputs' prompts (both unchanged by a no-op
    build), the page is made from: the campaign's assets and exports, and this code."""
    campaign = the_plan.campaign
    assets = [[a.id, list(a.aspects), list(a.providers), _headline(a.copy)]
              for a in campaign.assets]
    exports = [[e.name, e.aspect, e.width, e.height, list(e.focus)] for e in campaign.exports]
    return hashlib.sha256(canonical_json(
        [code_digest(), _template_digest(), campaign.name, assets, exports]).encode()
    ).hexdigest()


class PageWriter:
    """Writes the page's files for one build, a chunk at a time."""

    def __init__(self, the_plan: Plan, manifest: Manifest, store: Store) -> None:
        self.plan = the_plan
        self.manifest = manifest
        self.store = store
        self.out = the_plan.campaign.out
        self.folder = self.out / DATA_DIR
        self._old = _OldChunks(self.folder)

    def write(self, report: BuildReport, previous: Mapping[str, ManifestEntry],
              last: dict[str, Any] | None, noop: bool) -> dict[str, Any]:
        """Write every file; returns what the store keeps for the next build."""
        campaign = self.plan.campaign
        manifest = self.manifest
        results = {r.job.output: r for r in report.results}
        remembered: dict[str, Any] = (last or {}).get("outputs", {}) if noop else {}
        failed = {rel for rel, r in results.items() if r.status == JobStatus.FAILED}
        rels = set(manifest.entries) | set(manifest.candidates) | failed
        by_asset: dict[str, list[str]] = {}
        for rel in rels:
            entry = manifest.entries.get(rel) or manifest.candidates.get(rel)
            result = results.get(rel)
            owner = result.job.asset if result else entry.asset if entry else ""
            by_asset.setdefault(owner, []).append(rel)
        order = {a.id: a for a in campaign.assets}
        names = [a.id for a in campaign.assets if a.id in by_asset]
        names += sorted(n for n in by_asset if n not in order)
        renditions = _renditions(manifest.exports)

        providers = _ordered({results[r].job.provider if r in results else
                              _entry(manifest, r).provider for r in rels},
                             [p for a in campaign.assets for p in a.providers])
        aspects = _ordered({results[r].job.aspect if r in results else
                            _entry(manifest, r).aspect for r in rels},
                           [x for a in campaign.assets for x in a.aspects])
        provider_ix = {p: i for i, p in enumerate(providers)}
        aspect_ix = {x: i for i, x in enumerate(aspects)}

        index_assets: list[list[Any]] = []
        index_outputs: list[list[Any]] = []
        chunks: list[str] = []
        record: dict[str, list[Any]] = {}
        failures: list[list[str]] = []
        counts = {"outputs": 0, "stale": 0, "changed": 0, "candidates": 0}
        total_cost = 0.0
        pending: dict[str, dict[str, Any]] = {}

        def flush() -> None:
            if pending:
                chunks.append(self._write_chunk(pending))
                pending.clear()

        for name in names:
            asset = order.get(name)
            items = []
            for rel in by_asset[name]:
                item = self._output(rel, results.get(rel), previous, remembered,
                                    renditions.get(rel, ()))
                items.append(item)
            items.sort(key=_item_order)
            own_aspects = _ordered({i["aspect"] for i in items}, asset.aspects if asset else ())
            own_providers = _ordered({i["provider"] for i in items},
                                     asset.providers if asset else ())
            index_assets.append([name, _headline(asset.copy if asset else {}),
                                 asset is not None, len(chunks),
                                 [aspect_ix[x] for x in own_aspects],
                                 [provider_ix[p] for p in own_providers],
                                 len(index_outputs), len(items)])
            for item in items:
                rel = item["output"]
                index_outputs.append(self._row(item, aspect_ix, provider_ix,
                                               len(index_assets) - 1))
                if item["src"]:
                    counts["outputs"] += 0 if item["candidate_of"] else 1
                    # A list, not a dict: 20,000 of them stay small.
                    record[rel] = [item["sha256"], *(item[k] for k in _BUILD_FIELDS)]
                    if not item["candidate_of"]:
                        total_cost += item["cost_usd"] or 0.0
                counts["stale"] += item["status"] == "stale"
                counts["changed"] += bool(item["changed"])
                counts["candidates"] += bool(item["candidate_of"])
                if item["status"] == "failed":
                    failures.append([rel, item["error"] or ""])
                pending[rel] = item
            if len(pending) >= CHUNK_OUTPUTS:
                flush()
        flush()

        summary: dict[str, Any] = {
            "generated": report.count(JobStatus.GENERATED),
            "cached": report.count(JobStatus.CACHED),
            "up_to_date": report.count(JobStatus.UP_TO_DATE),
            "failed": len(failures),
            "locked": report.count(JobStatus.LOCKED),
            "cost": _money(report.cost),
        }
        if noop and last is not None:
            summary.update({k: v for k, v in last.get("build", {}).items()
                            if k in _SUMMARY_FIELDS})
        summary.update(counts, total_cost=_money(total_cost))
        index = {
            "format": DATA_FORMAT,
            "campaign": campaign.name,
            "summary": summary,
            "failures": failures,
            "providers": providers,
            "aspects": aspects,
            "aspect_dirs": [aspect_dir(x) for x in aspects],
            "statuses": list(STATUSES),
            "status_labels": [STATUS_LABELS[s] for s in STATUSES],
            "assets": index_assets,
            "outputs": index_outputs,
            "chunks": chunks,
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        write_if_changed(self.folder / ".gitignore",
                         b"# qwenbuild: the review page's data, made by every build\n*\n")
        # The one large file of the first screen: as a JSON string, which browsers parse
        # faster than the same data written as a script.
        write_if_changed(self.folder / INDEX_NAME, _script("__qb_index", index, as_text=True))
        self._remove_old_chunks(set(chunks))
        write_if_changed(self.out / PAGE_NAME, render_shell(campaign.name))
        return {"build": {k: summary[k] for k in _SUMMARY_FIELDS}, "outputs": record}

    # -- one output -----------------------------------------------------------------------

    def _output(self, rel: str, result: JobResult | None,
                previous: Mapping[str, ManifestEntry], remembered: Mapping[str, Any],
                exports: Iterable[tuple[str, ExportEntry]]) -> dict[str, Any]:
        manifest = self.manifest
        parent = candidate_of(rel) if rel in manifest.candidates else None
        entry = manifest.candidates.get(rel) if parent else manifest.entries.get(rel)
        job = result.job if result else None
        src = None
        changed = ""
        before_key = ""
        if entry is not None:
            # The content hash in the URL makes a browser fetch a rebuilt image again,
            # though its path did not change; it is ignored when opened from file://.
            src = f"{quote(rel)}?v={entry.sha256[:12]}"
            before = previous.get(rel) if not parent else None
            if parent:
                changed = ""
            elif before is None:
                changed = "new"
            elif before.sha256 != entry.sha256:
                changed = "changed"
                before_key = before.key
        if result is not None:
            status = str(result.status)
        elif entry is not None and entry.stale:
            status = "stale"
        else:
            status = "kept"
        item: dict[str, Any] = {"status": status,
                                "reason": result.reason if result and status not in (
                                    "up_to_date",) else "",
                                "error": result.error if result else None,
                                "changed": changed,
                                # A failed rebuild leaves the last good image in place.
                                "previous_kept": status == "failed" and entry is not None,
                                "before_key": before_key}
        old = remembered.get(rel)
        if isinstance(old, list) and len(old) == len(_BUILD_FIELDS) + 1 and \
                entry is not None and old[0] == entry.sha256[:12] and \
                status not in ("stale", "locked"):
            item.update(zip(_BUILD_FIELDS, old[1:], strict=True))
        if entry is not None:
            asset, aspect, provider = entry.asset, entry.aspect, entry.provider
            kind, model, seed = entry.kind, entry.model, entry.seed
            width, height = entry.width, entry.height
        else:
            assert job is not None  # a failed job that never had an output
            asset, aspect, provider = job.asset, job.aspect, job.provider
            kind, model, seed = job.kind, job.model, job.seed
            width, height = job.width, job.height
        if job is not None:  # what this build planned wins over what the manifest says
            asset, aspect, provider = job.asset, job.aspect, job.provider
            kind, model, seed = job.kind, job.model, job.seed
        key = (entry.key if entry is not None else "") or (job.key if job else "")
        prompt, negative = self._prompts(rel, job, key)
        cost = entry.cost_usd if entry is not None else None
        status = item["status"]
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
            "made_from": (job.parent if job else entry.parent if entry is not None else None)
            or "",
            "provider_seed": entry.provider_seed if entry is not None else None,
            "width": width,
            "height": height,
            "size": f"{width}×{height}" if width and height else "",
            "bytes": _bytes(entry.bytes if entry is not None else None),
            "cost_usd": cost,
            "cost": _money(cost),
            "sha256": entry.sha256[:12] if entry is not None else "",
            "key": key,
            "prompt": prompt,
            "negative": negative,
            "status_label": STATUS_LABELS.get(status, status),
            "text": _text_check(entry.text_check if entry is not None else None),
            "candidate_of": parent,
            "exports": [_rendition(rel_e, e, width, height) for rel_e, e in exports],
            **item,
        }

    def _prompts(self, rel: str, job: Job | None, key: str) -> tuple[Any, Any]:
        """The prompts of the image the output holds (key `key`): a locked output keeps
        an image made from other prompts than its job's."""
        if job is not None and job.key != key:
            job = None
        if job is not None and (job.rendered or job.texts is not None):
            return job.prompts
        old = self._old.prompts(rel, key)
        if old is not None:
            return old
        if key:
            record = self.store.record(key, rel.rsplit(".", 1)[-1])
            inputs = (record.inputs if record else None) or {}
            if "prompt" in inputs:
                return inputs.get("prompt"), inputs.get("negative")
        if job is not None:
            return job.prompts
        return None, None

    @staticmethod
    def _row(item: dict[str, Any], aspect_ix: Mapping[str, int], provider_ix: Mapping[str, int],
             asset: int) -> list[Any]:
        """An output as the index holds it: [file, asset, aspect, provider, variant,
        sha256[:12], status, changed, text, width, height, candidate]; `file` (with its
        locale folder, if any) with a leading asset id as `*` (`*-v1.png`: ids hold no
        `*`), 20,000 rows are 1 MB smaller."""
        text = item["text"]["status"] if item["text"] else ""
        # The path below <aspect>/<provider>/: `[<locale>/]<file>`.
        name = item["output"].split("/", 2)[-1]
        if name.startswith(item["asset"]):
            name = "*" + name[len(item["asset"]):]
        return [name, asset, aspect_ix[item["aspect"]],
                provider_ix[item["provider"]], item["variant"] or 0,
                item["sha256"] if item["src"] else "", STATUSES.index(item["status"]),
                _CHANGED.index(item["changed"]), _TEXT.index(text), item["width"] or 0,
                item["height"] or 0, 1 if item["candidate_of"] else 0]

    # -- files ------------------------------------------------------------------------------

    def _write_chunk(self, items: Mapping[str, dict[str, Any]]) -> str:
        data = _script("__qb_chunk", dict(items))
        name = f"c-{hashlib.sha256(data).hexdigest()[:16]}.js"
        self.folder.mkdir(parents=True, exist_ok=True)
        write_if_changed(self.folder / name, data)
        return name

    def _remove_old_chunks(self, keep: set[str]) -> None:
        for path in self.folder.glob("c-*.js"):
            if path.name not in keep:
                path.unlink(missing_ok=True)


class _OldChunks:
    """The chunks of the page written before, read one at a time for their prompts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._where: dict[str, str] | None = None
        self._cache: dict[str, dict[str, Any]] = {}

    def prompts(self, rel: str, key: str) -> tuple[Any, Any] | None:
        if not key:
            return None
        name = self._locate().get(rel)
        if name is None:
            return None
        data = self._load(name)
        found = data.get(rel)
        if isinstance(found, dict) and found.get("key") == key and "prompt" in found:
            return found.get("prompt"), found.get("negative")
        return None

    def _locate(self) -> dict[str, str]:
        if self._where is None:
            self._where = {}
            index = read_script(self.folder / INDEX_NAME)
            try:
                chunks = index["chunks"]
                dirs = index["aspect_dirs"]
                providers = index["providers"]
                assets = index["assets"]
                for row in index["outputs"]:
                    name = row[0]
                    if name.startswith("*"):
                        name = assets[row[1]][0] + name[1:]
                    rel = f"{dirs[row[2]]}/{providers[row[3]]}/{name}"
                    self._where[rel] = chunks[assets[row[1]][3]]
            except (KeyError, IndexError, TypeError):
                self._where = {}
        return self._where

    def _load(self, name: str) -> dict[str, Any]:
        if name not in self._cache:
            if len(self._cache) >= 2:  # outputs come in order: two chunks are plenty
                self._cache.pop(next(iter(self._cache)))
            found = read_script(self.folder / name)
            self._cache[name] = found if isinstance(found, dict) else {}
        return self._cache[name]


def read_script(path: Path) -> Any:
    """The data of one of the page's script files; None when unreadable."""
    try:
        text = path.read_text("utf-8")
    except OSError:
        return None
    start, end = text.find("("), text.rfind(")")
    if start < 0 or end < start:
        return None
    body = text[start + 1:end]
    try:
        if body.startswith("JSON.parse("):
            return json.loads(json.loads(body[len("JSON.parse("):-1]))
        return json.loads(body)
    except ValueError:
        return None


def _script(function: str, data: Any, as_text: bool = False) -> bytes:
    """A data file the page loads with <script src>: one call with the data as JSON (with
    `as_text`, as a string given to JSON.parse). Keys keep the order they were made in."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if as_text:
        body = f"JSON.parse({json.dumps(body, ensure_ascii=False)})"
    # `<` escaped: the same text stays safe if ever inlined in a page.
    return f"window.{function}({body.replace('<', chr(92) + 'u003c')});\n".encode()


def _entry(manifest: Manifest, rel: str) -> ManifestEntry:
    found = manifest.entries.get(rel) or manifest.candidates.get(rel)
    assert found is not None
    return found


def _item_order(item: dict[str, Any]) -> tuple[Any, ...]:
    # A candidate right after the output it stands beside.
    base = item["candidate_of"] or item["output"]
    return (item["variant"] or 0, item["seed"] or 0, base, bool(item["candidate_of"]))


def _renditions(exports: Mapping[str, ExportEntry]) -> dict[str, list[tuple[str, ExportEntry]]]:
    found: dict[str, list[tuple[str, ExportEntry]]] = {}
    for rel, entry in sorted(exports.items()):
        found.setdefault(entry.source, []).append((rel, entry))
    return found


def _rendition(rel: str, entry: ExportEntry, width: int | None,
               height: int | None) -> dict[str, Any]:
    """A rendition as the page shows it: the part of its source it keeps (fractions)."""
    crop = None
    focus = entry.settings.get("focus") if isinstance(entry.settings, Mapping) else None
    if width and height and entry.width and entry.height and isinstance(focus, list) \
            and len(focus) == 2:
        left, top, right, bottom = cover_box(width, height, entry.width, entry.height,
                                             (float(focus[0]), float(focus[1])))
        crop = [round(left / width, 4), round(top / height, 4), round(right / width, 4),
                round(bottom / height, 4)]
    return {"name": entry.export, "output": rel, "src": f"{quote(rel)}?v={entry.sha256[:12]}",
            "width": entry.width, "height": entry.height, "crop": crop,
            "sha256": entry.sha256[:12], "stale": entry.stale,
            "format": rel.rsplit(".", 1)[-1]}


def _ordered(present: set[str], preferred: Any) -> list[str]:
    """`present` in the campaign's order, then the rest sorted."""
    first = list(dict.fromkeys(x for x in preferred if x in present))
    return first + sorted(present - set(first))


def _variant(rel: str, asset: str) -> int | None:
    stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0].removesuffix(".candidate")
    match = re.fullmatch(re.escape(asset) + r"-v(\d+)", stem)
    return int(match.group(1)) if match else None


def _text_check(check: Any) -> dict[str, Any] | None:
    """The text-check verdict of an output (`qwenbuild check`, `build --verify-text`)."""
    if not isinstance(check, dict) or check.get("status") not in ("green", "amber", "red"):
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


def _iso(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else ""


def _template() -> str:
    return resources.files(__package__).joinpath("page.html").read_text("utf-8")


def _template_digest() -> str:
    return hashlib.sha256(_template().encode()).hexdigest()


def render_shell(campaign: str, inline: bytes | None = None) -> bytes:
    """The page's HTML. `inline`: data scripts to put in it instead of loading the data
    files (the server's placeholder before a first good build)."""
    page = _template().replace("{{CAMPAIGN}}", html.escape(campaign))
    if inline is not None:
        page = page.replace('<script src="review/index.js"></script>',
                            "<script>" + inline.decode() + "</script>")
    return page.encode("utf-8")


def empty_page(campaign: str) -> bytes:
    """A page with no outputs yet (served by watch before a first good build)."""
    index = {"format": DATA_FORMAT, "campaign": campaign, "summary": {
        "outputs": 0, "generated": 0, "cached": 0, "up_to_date": 0, "failed": 0, "locked": 0,
        "stale": 0, "changed": 0, "candidates": 0, "cost": _money(0.0),
        "total_cost": _money(0.0)}, "failures": [], "providers": [], "aspects": [],
        "aspect_dirs": [], "statuses": list(STATUSES),
        "status_labels": [STATUS_LABELS[s] for s in STATUSES], "assets": [], "outputs": [],
        "chunks": []}
    return render_shell(campaign, _script("__qb_index", index))

