"""Export renditions: exact pixel sizes cut from the outputs of one aspect ratio.

`[[exports]]` in a campaign names a rendition (an Instagram portrait at 1080x1350, an
Open Graph card at 1200x630, ...). After each build, Pillow derives it from every output of
that aspect: a cover crop around the focal point, then LANCZOS resampling to the exact
size, saved as PNG, JPEG or WebP with the source's provenance. Renditions live in
`<out>/exports/<name>/<provider>/<asset>[-vN].<ext>` and in the manifest's `exports`
section with the sha256 of their source and their settings, so that a rendition is made
again only when its source or its settings change (or its file is missing or modified).
Rendering costs nothing but time, so exports never go through the cache.

When the review file picks one variant of an asset for an aspect and provider, that group's
renditions are made from the pick alone, named after the asset without `-vN`
(`exports/<name>/<provider>/<asset>.<ext>`): a path that stays put whichever variant wins.
`picks` below is `ReviewFile.export_picks(...)`: output -> the name its renditions take,
or None for a variant that is not the pick.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .build import BuildContext, BuildReport, Step
from .campaign import Campaign, Export
from .contracts import Action, ExportEntry, ManifestEntry, Reason
from .fsutil import atomic_write, write_fault
from .manifest import Manifest
from .plan import Assessment, Plan, design_for
from .provenance import embed, extract, sd_parameters
from .sizes import aspect_dir
from .store import StatCache

log = logging.getLogger(__name__)

#: Folder of the renditions under the output root.
EXPORTS_DIR = "exports"
#: Bump when the way renditions are made changes: every rendition is made again.
RENDERER_VERSION = 1
_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}


def settings(export: Export) -> dict[str, Any]:
    """Everything that changes a rendition's bytes, as the manifest records it."""
    found: dict[str, Any] = {
        "aspect": export.aspect, "width": export.width, "height": export.height,
        "format": export.format, "focus": list(export.focus), "renderer": RENDERER_VERSION,
    }
    if export.format != "png":  # PNG is lossless: its quality changes nothing
        found["quality"] = export.quality
    return found


def output_for(export: Export, source: str, stem: str | None = None) -> str:
    """The rendition's path for an output path (both relative to the output root); `stem`
    names it instead of the source's file name (a picked variant: the asset id)."""
    _aspect, provider, *locale, filename = source.split("/")
    stem = stem or filename.rsplit(".", 1)[0]
    folder = "/".join([provider, *locale])  # <provider>/[<locale>/]
    return f"{EXPORTS_DIR}/{export.name}/{folder}/{stem}.{export.format}"


#: Picks for exports: output -> the name its renditions take, None: no renditions.
Picks = Mapping[str, str | None]


@dataclass(frozen=True)
class ExportJob:
    """One rendition of one output."""

    export: Export
    source: str
    output: str


@dataclass(frozen=True)
class ExportStatus:
    """What a build would do with one rendition, and why."""

    job: ExportJob
    action: Action  # RENDER or KEEP
    reason: Reason


def export_jobs(campaign: Campaign, outputs: Iterable[str],
                picks: Picks | None = None) -> list[ExportJob]:
    """The renditions of these outputs, in a stable order (with `picks`, only the picked
    variant of a group with a pick, named after its asset)."""
    sources = sorted(outputs)
    picks = picks or {}
    jobs = []
    for export in campaign.exports:
        folder = aspect_dir(export.aspect) + "/"
        for rel in sources:
            if not rel.startswith(folder):
                continue
            if rel in picks:
                stem = picks[rel]
                if stem is None:
                    continue  # a variant not picked: the pick is what ships
                jobs.append(ExportJob(export, rel, output_for(export, rel, stem)))
            else:
                jobs.append(ExportJob(export, rel, output_for(export, rel)))
    return jobs


# -- what a build would do --------------------------------------------------------------------


def assess_exports(the_plan: Plan, manifest: Manifest, assessments: Iterable[Assessment],
                   stats: StatCache, picks: Picks | None = None
                   ) -> tuple[list[ExportStatus], list[str]]:
    """The renditions of the selected outputs with what a build would do, and the
    renditions in the manifest that no longer belong to the campaign (stale)."""
    campaign = the_plan.campaign
    by_output = {a.job.output: a for a in assessments if not a.job.candidate_of}
    statuses = []
    for job in export_jobs(campaign, by_output, picks):
        a = by_output[job.source]
        entry = manifest.entries.get(job.source)
        # The source's bytes after the build: known unless its key changes (a restore of
        # the same key writes the same bytes again; a locked output keeps its bytes).
        source_sha = entry.sha256 if entry is not None and (
            entry.key == a.job.key or a.locked) else None
        if source_sha is None and job.output in manifest.exports:
            reason: Reason | None = Reason.SOURCE_CHANGES
        else:
            reason = _why(campaign.out, manifest, stats, job, source_sha)
        statuses.append(ExportStatus(job, Action.KEEP if reason is None else Action.RENDER,
                                     reason or Reason.UP_TO_DATE))
    return statuses, stale_exports(the_plan, manifest, picks)


def stale_exports(the_plan: Plan, manifest: Manifest, picks: Picks | None = None
                  ) -> list[str]:
    """Renditions in the manifest that the campaign no longer makes."""
    wanted = {job.output for job in export_jobs(the_plan.campaign, the_plan.all_outputs,
                                                picks)}
    return sorted(rel for rel in manifest.exports if rel not in wanted)


def _why(out: Path, manifest: Manifest, stats: StatCache, job: ExportJob,
         source_sha: str | None) -> Reason | None:
    entry = manifest.exports.get(job.output)
    if entry is None:
        return Reason.NEW
    if entry.source_sha256 != source_sha:
        return Reason.SOURCE_CHANGED
    if entry.settings != settings(job.export):
        return Reason.SETTINGS_CHANGED
    problem = stats.problem(job.output, out / job.output, entry.sha256)
    return None if problem is None else Reason(problem)


# -- what a rendition loses -----------------------------------------------------------------


def export_warnings(the_plan: Plan, jobs: Iterable[ExportJob],
                    sizes: Mapping[str, tuple[int, int]] | None = None) -> list[str]:
    """What these renditions would lose, one message per export and kind: an upscaled
    source (a rendition larger than its output, so blurred), and text cropped away (any
    text box of the preview comp's layout at the source's size and seed that the cover
    crop cuts; for other providers that layout is the best guess of where the copy is).
    `sizes`: the outputs' real sizes where known (the manifest), else the size sent."""
    campaign = the_plan.campaign
    planned = {job.output: job for job in the_plan.jobs}
    assets = {asset.id: asset for asset in campaign.assets}
    totals: dict[str, int] = {}
    upscaled: dict[str, list[tuple[float, str, int, int]]] = {}
    cropped: dict[str, list[tuple[str, list[str]]]] = {}
    for job in jobs:
        source = planned.get(job.source)
        if source is None or source.asset not in assets:
            continue
        export = job.export
        totals[export.name] = totals.get(export.name, 0) + 1
        width, height = (sizes or {}).get(job.source) or (source.width, source.height)
        factor = max(export.width / width, export.height / height)
        if factor > 1.001:
            upscaled.setdefault(export.name, []).append((factor, job.source, width, height))
        cut = _text_cut(campaign, assets[source.asset], source.aspect, source.seed,
                        source.locale, width, height, export)
        if cut:
            cropped.setdefault(export.name, []).append((job.source, cut))
    exports = {e.name: e for e in campaign.exports}
    messages = []
    for name in sorted(set(upscaled) | set(cropped)):
        export = exports[name]
        of = f"of its {totals[name]} source{'s' if totals[name] != 1 else ''}"
        if name in upscaled:
            factor, rel, width, height = min(upscaled[name], key=lambda u: (-u[0], u[1]))
            messages.append(
                f"export {name}: upscales {len(upscaled[name])} {of}, up to {factor:.2f}x "
                f"({rel} is {width}x{height} for {export.width}x{export.height}): they will "
                "look soft; build the outputs larger (a preview `scale` of 1, a model with "
                "larger sizes) or make the rendition smaller")
        if name in cropped:
            rel, texts = cropped[name][0]
            shown = ", ".join(repr(t) for t in texts[:3]) + (" ..." if len(texts) > 3 else "")
            messages.append(
                f"export {name}: crops away text of the preview layout in "
                f"{len(cropped[name])} {of} ({rel}: {shown}); move its `focus`, or cut it "
                f"from an aspect ratio closer to {export.width}x{export.height}")
    return messages


def _text_cut(campaign: Campaign, asset: Any, aspect: str, seed: int, locale: str | None,
              width: int, height: int, export: Export) -> list[str]:
    """The texts of the preview layout that the rendition's cover crop cuts."""
    from .providers.preview_render import layout_boxes

    left, top, right, bottom = cover_box(width, height, export.width, export.height,
                                         export.focus)
    design = design_for(campaign, asset, aspect, seed, locale)
    cut = []
    for text, (x0, y0, x1, y1) in layout_boxes(width, height, seed, design):
        if text == design["label"]:
            continue  # the comp's own label, not copy
        if x0 < left - 1 or y0 < top - 1 or x1 > right + 1 or y1 > bottom + 1:
            cut.append(" ".join(text.split()))
    return cut


# -- the build's part -----------------------------------------------------------------------


class ExportsStep(Step):
    """Make the renditions after every build (not after an interrupted one)."""

    def build_finished(self, ctx: BuildContext, report: BuildReport) -> None:
        if not report.interrupted:
            picks = ctx.review.export_picks(ctx.manifest.entries)
            written = render_exports(ctx.plan, ctx.manifest, ctx.stats, picks, report.problems)
            report.exports.extend(written)
            made = set(written)
            jobs = [job for job in export_jobs(ctx.plan.campaign, ctx.manifest.entries, picks)
                    if job.output in made]
            sizes = {rel: (e.width, e.height) for rel, e in ctx.manifest.entries.items()
                     if e.width and e.height}
            for message in export_warnings(ctx.plan, jobs, sizes):
                log.warning("%s", message)


def render_exports(the_plan: Plan, manifest: Manifest, stats: StatCache,
                   picks: Picks | None = None, problems: list[str] | None = None) -> list[str]:
    """Make the renditions of the selected outputs that are not up to date, mark the ones
    no longer in the campaign stale (or forget them when their file is gone). Returns the
    paths written. A rendition that cannot be made is skipped and said (in `problems`
    when given, else logged): the build's outputs are what was paid for, and they are
    fine."""
    campaign = the_plan.campaign
    out = campaign.out
    written = []
    for job in export_jobs(campaign, (j.output for j in the_plan.jobs), picks):
        source = manifest.entries.get(job.source)
        if source is None or source.stale or not (out / job.source).is_file():
            continue  # its job failed before it ever had an output
        if _why(out, manifest, stats, job, source.sha256) is None:
            continue
        try:
            _render_one(out, manifest, stats, job, source)
        except (OSError, ValueError) as exc:
            why = (write_fault(exc, campaign.root) if isinstance(exc, OSError)
                   else f"cannot make {job.output}: {exc}")
            message = f"export {job.export.name}: {why}"
            if problems is None:
                log.warning("%s", message)
            else:
                problems.append(message)
            continue
        written.append(job.output)
    for rel in stale_exports(the_plan, manifest, picks):
        if (out / rel).is_file():
            manifest.set_export(rel, replace(manifest.exports[rel], stale=True))
        else:
            manifest.remove_export(rel)
    return written


def _render_one(out: Path, manifest: Manifest, stats: StatCache, job: ExportJob,
                source: ManifestEntry) -> None:
    data = (out / job.source).read_bytes()
    if hashlib.sha256(data).hexdigest() != source.sha256:
        raise ValueError(f"{job.source} differs from the manifest; build it first")
    export = job.export
    rendered = render(data, export)
    info = {k: v for k, v in (extract(data) or {}).items() if k != "parameters"}
    if not info:  # an output written before provenance existed: the manifest knows most
        info = {k: str(source.get(k)) for k in ("asset", "aspect", "provider", "kind",
                                                "model", "seed", "key")
                if source.get(k) is not None}
    info.update(export=export.name, source=job.source, width=str(export.width),
                height=str(export.height))
    info["parameters"] = sd_parameters(info)
    rendered = embed(rendered, info)
    target = out / job.output
    if not target.parent.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"{job.output} resolves outside {out}")
    atomic_write(target, rendered)
    sha = hashlib.sha256(rendered).hexdigest()
    manifest.set_export(job.output, ExportEntry(
        export=export.name,
        source=job.source,
        source_sha256=source.sha256,
        settings=settings(export),
        sha256=sha,
        bytes=len(rendered),
        width=export.width,
        height=export.height,
    ))
    stats.remember(job.output, target, sha)


def render(data: bytes, export: Export) -> bytes:
    """The rendition of an image: cover crop at the focal point, LANCZOS to the exact
    size, encoded in the export's format. The same input gives the same bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        img: Image.Image = opened
        if img.mode not in ("RGB", "RGBA"):
            img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info
                              else "RGB")
        width, height = img.size
        box = cover_box(width, height, export.width, export.height, export.focus)
        result = img.resize((export.width, export.height), Image.Resampling.LANCZOS, box=box)
    if export.format == "jpg" and result.mode == "RGBA":
        # JPEG has no alpha: flatten on white, as a browser shows a transparent image.
        flat = Image.new("RGB", result.size, (255, 255, 255))
        flat.paste(result, mask=result.getchannel("A"))
        result = flat
    options: dict[str, Any] = {}
    if export.format in ("jpg", "webp"):
        options["quality"] = export.quality
    buffer = io.BytesIO()
    result.save(buffer, _PIL_FORMATS[export.format], **options)
    return buffer.getvalue()


def cover_box(width: int, height: int, target_w: int, target_h: int,
              focus: tuple[float, float]) -> tuple[float, float, float, float]:
    """The part of a width x height image that fills target_w x target_h (cover): the
    largest box of the target's ratio, centred on the focal point as far as the edges
    allow. Floats: Pillow resamples a fractional box exactly."""
    scale = max(target_w / width, target_h / height)
    crop_w, crop_h = min(width, target_w / scale), min(height, target_h / scale)
    left = min(max(focus[0] * width - crop_w / 2, 0.0), width - crop_w)
    top = min(max(focus[1] * height - crop_h / 2, 0.0), height - crop_h)
    return (left, top, left + crop_w, top + crop_h)
