"""Planning: campaign -> jobs (asset x aspect x provider x seed), each with its key.

`plan()` is pure apart from reading templates and reference images. `assess()` compares
the jobs with the manifest and the cache to say what a build would do and why.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .campaign import Asset, Campaign
from .errors import InputError, TemplateError, UsageError
from .fsutil import folder_tag
from .keys import canonical_json, job_key
from .prompts import Prompts
from .providers import provider_class
from .providers.base import GenerationRequest, Provider, Reference
from .sizes import aspect_dir, orientation


@dataclass(frozen=True, eq=False)
class Job:
    """One image to produce: asset x aspect x provider x seed.

    The rendered request (prompt, negative prompt, references) is made on first use: when
    the key is known from an earlier run with the same inputs, a job that is up to date is
    never rendered at all.
    """

    asset: str
    aspect: str
    provider: str
    kind: str
    model: str
    seed: int
    variant: int
    output: str  # relative to the campaign's output root, POSIX separators
    width: int
    height: int
    key: str
    _make: Callable[[], tuple[GenerationRequest, dict[str, Any]]] = field(repr=False)
    _made: list[tuple[GenerationRequest, dict[str, Any]]] = field(
        default_factory=list, repr=False)

    def _materialise(self) -> tuple[GenerationRequest, dict[str, Any]]:
        if not self._made:
            self._made.append(self._make())
        return self._made[0]

    @property
    def request(self) -> GenerationRequest:
        return self._materialise()[0]

    @property
    def key_fields(self) -> dict[str, Any]:
        return self._materialise()[1]

    @property
    def label(self) -> str:
        return f"{self.asset} {self.aspect} {self.provider} seed {self.seed}"


@dataclass(frozen=True)
class Selection:
    """Which jobs of the campaign to consider (the CLI's --only, --provider, --aspect)."""

    only: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    aspects: tuple[str, ...] = ()

    def check(self, campaign: Campaign) -> None:
        problems = []
        for pattern in self.only:
            if not any(fnmatch.fnmatchcase(a.id, pattern) for a in campaign.assets):
                problems.append(f"--only {pattern}: matches no asset id of {campaign.path.name}")
        used = {p for a in campaign.assets for p in a.providers}
        for name in self.providers:
            if name not in used:
                problems.append(f"--provider {name}: no asset of {campaign.path.name} uses it "
                                f"(used: {', '.join(sorted(used))})")
        aspects = {x for a in campaign.assets for x in a.aspects}
        for aspect in self.aspects:
            if aspect not in aspects:
                problems.append(f"--aspect {aspect}: no asset of {campaign.path.name} has it "
                                f"(used: {', '.join(sorted(aspects))})")
        if problems:
            raise UsageError(problems)

    def wants(self, asset: str, aspect: str, provider: str) -> bool:
        return (
            (not self.only or any(fnmatch.fnmatchcase(asset, p) for p in self.only))
            and (not self.providers or provider in self.providers)
            and (not self.aspects or aspect in self.aspects)
        )


@dataclass(frozen=True)
class Plan:
    """The jobs of a build and every output path the campaign owns."""

    campaign: Campaign
    jobs: tuple[Job, ...]
    #: Output paths of the whole campaign, selected or not (for stale detection).
    all_outputs: frozenset[str]
    providers: dict[str, Provider]
    memo: _KeyMemo | None = None

    def remember(self) -> None:
        """Save the keys of this plan's jobs, so the next run of unchanged inputs need not
        render their prompts again (machine-local, in the cache folder)."""
        if self.memo is not None:
            self.memo.save()


def output_path(asset: Asset, aspect: str, provider: str, ext: str, variant: int) -> str:
    suffix = f"-v{variant}" if len(asset.seeds) > 1 else ""
    return f"{aspect_dir(aspect)}/{provider}/{asset.id}{suffix}.{ext}"


def plan(campaign: Campaign, selection: Selection = Selection()) -> Plan:
    """Expand the campaign into jobs. Raises InputError listing every problem found."""
    selection.check(campaign)
    providers = {
        name: provider_class(spec.kind)(spec) for name, spec in campaign.providers.items()
    }
    prompts = Prompts(campaign.template_dirs, campaign.template_root)
    references = _References(campaign)
    problems: list[str] = []
    seen_problems: set[str] = set()
    jobs: list[Job] = []
    all_outputs: set[str] = set()

    def report(message: str) -> None:
        if message not in seen_problems:
            seen_problems.add(message)
            problems.append(message)

    memo = _KeyMemo(campaign)
    inputs_of = _Fingerprints(campaign, prompts)
    for asset in campaign.assets:
        refs = references.load(asset, report)
        asset_digest = inputs_of.asset(asset, refs)
        for aspect in asset.aspects:
            for provider_name in asset.providers:
                provider = providers[provider_name]
                spec = provider.spec
                width, height = provider.size_for(aspect)
                for variant, seed in enumerate(asset.seeds, start=1):
                    out = output_path(asset, aspect, provider_name, provider.output_ext, variant)
                    all_outputs.add(out)
                    if not selection.wants(asset.id, aspect, provider_name):
                        continue
                    make = functools.partial(_render, campaign, asset, aspect, provider, seed,
                                             variant, refs, prompts)
                    fingerprint = inputs_of.job(asset_digest, spec, aspect, seed, variant)
                    common = dict(asset=asset.id, aspect=aspect, provider=spec.name,
                                  kind=spec.kind, model=spec.model, seed=seed, variant=variant,
                                  output=out, width=width, height=height)
                    known = memo.get(fingerprint)
                    if known is not None:
                        jobs.append(Job(**common, key=known, _make=make))
                        continue
                    try:
                        request, fields = make()
                    except TemplateError as exc:
                        for p in exc.problems:
                            report(p)
                        continue
                    rules = provider.validate(request)
                    for rule in rules:
                        report(f"asset {asset.id}, provider {provider_name} ({spec.kind} "
                               f"{spec.model}), aspect {aspect}: {rule}")
                    key = job_key(fields)
                    if not rules:
                        memo.put(fingerprint, key)
                    jobs.append(Job(**common, key=key, _make=make, _made=[(request, fields)]))
    if problems:
        raise InputError(problems)
    return Plan(campaign, tuple(jobs), frozenset(all_outputs), providers, memo)


def job_context(campaign: Campaign, asset: Asset, aspect: str, spec: Any, width: int,
                height: int, seed: int, variant: int) -> dict[str, Any]:
    """What a job's templates see (the prompt, the negative prompt, `expect_text`)."""
    return {
        "brand": campaign.brand,
        "copy": asset.copy,
        "campaign": {"name": campaign.name},
        "asset": {
            "id": asset.id,
            "aspect": aspect,
            "width": width,
            "height": height,
            "orientation": orientation(width, height),
            "provider": spec.name,
            "kind": spec.kind,
            "model": spec.model,
            "seed": seed,
            "variant": variant,
        },
    }


def _render(
    campaign: Campaign,
    asset: Asset,
    aspect: str,
    provider: Provider,
    seed: int,
    variant: int,
    refs: tuple[Reference, ...],
    prompts: Prompts,
) -> tuple[GenerationRequest, dict[str, Any]]:
    """Render a job's prompts and form its provider-neutral request and key fields."""
    spec = provider.spec
    width, height = provider.size_for(aspect)
    context = job_context(campaign, asset, aspect, spec, width, height, seed, variant)
    where = f"asset {asset.id}"
    prompt = prompts.render(asset.template, context, where)
    negative = (
        prompts.render_string(asset.negative, context, f"{where}: negative prompt")
        if asset.negative else ""
    )
    request = GenerationRequest(
        prompt=prompt,
        negative=negative,
        width=width,
        height=height,
        seed=seed,
        prompt_extend=asset.prompt_extend,
        references=refs,
        options=dict(spec.options),
        design={
            "brand": campaign.brand,
            "copy": asset.copy,
            "label": f"{asset.id} · {aspect} · seed {seed}",
        },
        asset=asset.id,
        aspect=aspect,
    )
    fields = {
        "kind": spec.kind,
        "model": spec.model,
        "prompt": prompt,
        "negative": negative,
        "width": width,
        "height": height,
        "seed": seed,
        "references": [r.sha256 for r in refs],
        "prompt_extend": asset.prompt_extend if provider.model.takes_prompt_extend else None,
        "options": provider.key_options(),
        **provider.key_fields(request),
    }
    return request, fields


class _Fingerprints:
    """A cheap digest of everything a job's key is computed from, before any rendering:
    qwenbuild's own code, every template file, the asset's copy, brand, template and
    references, the provider table, aspect, seed and variant. Equal fingerprints give equal
    keys, so the key of a fingerprint seen before can be reused without rendering."""

    def __init__(self, campaign: Campaign, prompts: Prompts) -> None:
        digest = hashlib.sha256(_code_digest().encode())
        for path in prompts.files():
            digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
        self.base = digest.hexdigest()
        self.campaign = campaign
        self._providers: dict[str, str] = {}

    def asset(self, asset: Asset, refs: tuple[Reference, ...]) -> str:
        # Not canonical: a template looping over copy.items() sees the keys in file order,
        # so that order is an input of the prompt too.
        return _sha(json.dumps([
            self.base, self.campaign.name, self.campaign.brand, asset.id, asset.template,
            asset.negative, asset.prompt_extend, asset.copy, [r.sha256 for r in refs],
        ], ensure_ascii=False, default=str))

    def job(self, asset_digest: str, spec: Any, aspect: str, seed: int, variant: int) -> str:
        provider = self._providers.get(spec.name)
        if provider is None:
            provider = _sha(canonical_json([spec.name, spec.kind, spec.model, spec.options]))
            self._providers[spec.name] = provider
        return _sha(f"{asset_digest}|{provider}|{aspect}|{seed}|{variant}")


class _KeyMemo:
    """fingerprint -> key of the jobs planned before, per campaign file, per machine."""

    def __init__(self, campaign: Campaign) -> None:
        tag = folder_tag(campaign.path)
        self.path = campaign.cache_dir / "plans" / f"{tag}.json"
        try:
            self.entries: dict[str, str] = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            self.entries = {}
        self._new: dict[str, str] = {}
        self._keep: set[str] = set()

    def get(self, fingerprint: str) -> str | None:
        key = self.entries.get(fingerprint)
        if key is not None:
            self._keep.add(fingerprint)
        return key

    def put(self, fingerprint: str, key: str) -> None:
        self._new[fingerprint] = key
        self._keep.add(fingerprint)

    def save(self) -> None:
        if not self._new:
            return
        # Keep what this run used or added, and older entries only while the memo is small
        # (they serve other selections of the same campaign, e.g. --only).
        merged = {**self.entries, **self._new}
        if len(merged) > 4 * max(1, len(self._keep)):
            merged = {k: v for k, v in merged.items() if k in self._keep}
        from .fsutil import atomic_write

        atomic_write(self.path, json.dumps(merged, separators=(",", ":")).encode())
        self.entries, self._new = merged, {}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """Size and mtime of qwenbuild's own modules: a code change (a provider's rule, the
    prompt collapsing) must not reuse keys computed by other code."""
    root = Path(__file__).parent
    parts = []
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        parts.append(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}")
    return _sha("\n".join(parts))


class _References:
    """Reads each reference image once, hashes it and checks that it is an image."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self._loaded: dict[Path, Reference | None] = {}

    def load(self, asset: Asset, report: Any) -> tuple[Reference, ...]:
        refs = []
        for i, path in enumerate(asset.references):
            if path not in self._loaded:
                self._loaded[path] = self._read(path, f"assets[{asset.index}] ({asset.id})"
                                                      f".references[{i}]", report)
            ref = self._loaded[path]
            if ref is not None:
                refs.append(ref)
        return tuple(refs)

    def _read(self, path: Path, where: str, report: Any) -> Reference | None:
        from .imagecheck import BadImageError, image_format
        from .safeio import MAX_REFERENCE_BYTES, read_regular

        shown = _shown(path, self.campaign.root)
        try:
            data = read_regular(path, MAX_REFERENCE_BYTES)
        except OSError as exc:
            report(f"{self.campaign.shown}: {where}: cannot read {shown}: "
                   f"{exc.strerror or exc}")
            return None
        try:
            fmt = image_format(data)
        except BadImageError as exc:
            report(f"{self.campaign.shown}: {where}: {shown} is not a readable image ({exc})")
            return None
        media = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}.get(fmt)
        if media is None:
            report(f"{self.campaign.shown}: {where}: {shown} is {fmt}; "
                   "reference images must be PNG, JPEG or WebP")
            return None
        return Reference(path=shown, sha256=hashlib.sha256(data).hexdigest(), data=data,
                         media_type=media)


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)



# -- what a build would do ------------------------------------------------------------------

BUILD, CACHED, UP_TO_DATE = "build", "cached", "up_to_date"

_FIELD_REASONS = (
    ("prompt", "prompt changed"),
    ("negative", "negative prompt changed"),
    (("width", "height"), "size changed"),
    ("seed", "seed changed"),
    (("kind", "model"), "model changed"),
    ("references", "references changed"),
    ("prompt_extend", "prompt_extend changed"),
    ("options", "options changed"),
    ("design", "copy or brand changed"),
    ("renderer", "preview renderer changed"),
)


@dataclass(frozen=True)
class Assessment:
    job: Job
    status: str  # build | cached | up_to_date
    reason: str


def assess(
    the_plan: Plan,
    manifest: Any,
    cache: Any,
    stats: Any,
    force: bool = False,
) -> list[Assessment]:
    """Say, job by job, whether a build would call the provider, restore from the cache,
    or leave the output alone, and why."""
    out = the_plan.campaign.out
    result = []
    for job in the_plan.jobs:
        entry = manifest.entries.get(job.output)
        reason = _why(job, entry, out / job.output, stats, cache)
        if force:
            result.append(Assessment(job, BUILD, "forced"))
        elif reason is None:
            result.append(Assessment(job, UP_TO_DATE, "up to date"))
        elif cache.has(job.key, job.output.rsplit(".", 1)[1]):
            result.append(Assessment(job, CACHED, reason if entry else "restored from cache"))
        else:
            result.append(Assessment(job, BUILD, reason))
    return result


def _why(job: Job, entry: dict[str, Any] | None, file: Path, stats: Any, cache: Any) -> str | None:
    """Why the output is not up to date, or None when it is."""
    if entry is None:
        return "new"
    if entry.get("key") != job.key:
        return _changed(job, entry, cache)
    return stats.problem(job.output, file, entry.get("sha256", ""))


def _changed(job: Job, entry: dict[str, Any], cache: Any) -> str:
    ext = job.output.rsplit(".", 1)[1]
    old = cache.record(entry.get("key", ""), ext) if entry.get("key") else None
    before = (old or {}).get("inputs")
    if before is None:
        # Without the old record, the manifest still knows size, seed and model.
        before = {k: entry.get(k) for k in ("width", "height", "seed", "kind", "model")}
    reasons = []
    for fields, reason in _FIELD_REASONS:
        names = fields if isinstance(fields, tuple) else (fields,)
        if any(n in before and before[n] != job.key_fields.get(n) for n in names):
            reasons.append(reason)
    return ", ".join(reasons) or "inputs changed"
