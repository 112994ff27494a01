"""Planning: campaign -> jobs (asset x aspect x provider x seed), each with its key.

`plan()` is pure apart from reading templates and reference images (and the key memo in
the store, which lets an unchanged job skip rendering its prompts).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..campaign import Asset, Campaign
from ..errors import InputError, TemplateError
from ..keys import canonical_json, job_key
from ..prompts import Prompts
from ..providers import provider_class
from ..providers.base import GenerationRequest, Provider, ProviderSpec, Reference
from ..sizes import orientation
from ..store import KeyMemo, Store
from .jobs import Job, Selection, output_path


@dataclass(frozen=True)
class Plan:
    """The jobs of a build and every output path the campaign owns."""

    campaign: Campaign
    jobs: tuple[Job, ...]
    #: Output paths of the whole campaign, selected or not (for stale detection).
    all_outputs: frozenset[str]
    providers: dict[str, Provider]
    memo: KeyMemo | None = None

    def remember(self) -> None:
        """Save the keys of this plan's jobs, so the next run of unchanged inputs need not
        render their prompts again (machine-local, in the cache folder)."""
        if self.memo is not None:
            self.memo.save()


def plan(campaign: Campaign, selection: Selection | None = None,
         store: Store | None = None) -> Plan:
    """Expand the campaign into jobs. Raises InputError listing every problem found.

    Keys of jobs planned before with the same inputs come from the store's key memo."""
    selection = selection or Selection()
    selection.check(campaign)
    providers = {
        name: provider_class(spec.kind)(spec) for name, spec in campaign.providers.items()
    }
    prompts = Prompts(campaign.template_dirs)
    references = _References(campaign)
    problems: list[str] = []
    seen_problems: set[str] = set()
    jobs: list[Job] = []
    all_outputs: set[str] = set()

    def report(message: str) -> None:
        if message not in seen_problems:
            seen_problems.add(message)
            problems.append(message)

    memo = (store or Store(campaign.cache_dir)).key_memo(campaign.path)
    inputs_of = Fingerprints(campaign, prompts)
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
                    fingerprint = inputs_of.job(asset_digest, spec, aspect, seed, variant,
                                                provider.key_environment())
                    job = Job(asset=asset.id, aspect=aspect, provider=spec.name,
                              kind=spec.kind, model=spec.model, seed=seed, variant=variant,
                              output=out, width=width, height=height, key="",
                              billable=provider.info.billable, make=make)
                    known = memo.get(fingerprint)
                    if known is not None:
                        jobs.append(replace(job, key=known))
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
                    jobs.append(replace(job, key=key, _made=[(request, fields)]))
    if problems:
        raise InputError(problems)
    return Plan(campaign, tuple(jobs), frozenset(all_outputs), providers, memo)


def design_for(campaign: Campaign, asset: Asset, aspect: str, seed: int) -> dict[str, Any]:
    """What the preview comp of a job draws (its layout depends on it): brand, copy, label."""
    return {
        "brand": campaign.brand,
        "copy": asset.copy,
        "label": f"{asset.id} · {aspect} · seed {seed}",
    }


def job_context(campaign: Campaign, asset: Asset, aspect: str, spec: ProviderSpec, width: int,
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
        design=design_for(campaign, asset, aspect, seed),
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


class Fingerprints:
    """A cheap digest of everything a job's key is computed from, before any rendering:
    qwenbuild's own code, every template file, the asset's copy, brand, template and
    references, the provider table (and what the provider's key reads from this machine,
    `Provider.key_environment`), aspect, seed and variant. Equal fingerprints give equal
    keys, so the key of a fingerprint seen before can be reused without rendering."""

    def __init__(self, campaign: Campaign, prompts: Prompts) -> None:
        digest = hashlib.sha256(code_digest().encode())
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

    def job(self, asset_digest: str, spec: ProviderSpec, aspect: str, seed: int,
            variant: int, environment: str = "") -> str:
        provider = self._providers.get(spec.name)
        if provider is None:
            provider = _sha(canonical_json([spec.name, spec.kind, spec.model, spec.options,
                                            environment]))
            self._providers[spec.name] = provider
        return _sha(f"{asset_digest}|{provider}|{aspect}|{seed}|{variant}")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """Size and mtime of qwenbuild's own modules: a code change (a provider's rule, the
    prompt collapsing) must not reuse keys computed by other code."""
    root = Path(__file__).parent.parent
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
        from PIL import Image, UnidentifiedImageError

        shown = _shown(path, self.campaign.root)
        try:
            data = path.read_bytes()
        except OSError as exc:
            report(f"{self.campaign.shown}: {where}: cannot read {shown}: {exc.strerror}")
            return None
        try:
            with Image.open(io.BytesIO(data)) as img:
                fmt = (img.format or "PNG").upper()
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            reason = "unknown format" if isinstance(exc, UnidentifiedImageError) else str(exc)
            report(f"{self.campaign.shown}: {where}: {shown} is not a readable image ({reason})")
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
