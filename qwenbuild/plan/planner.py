"""Planning: campaign -> jobs (asset x aspect x provider x seed), each with its key.

`plan()` is pure apart from reading templates and reference images (and the key memo in
the store, which lets an unchanged job skip rendering its prompts).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..campaign import Asset, Campaign
from ..errors import InputError, TemplateError, ValidationError
from ..imagecheck import BadImageError, image_format
from ..keys import canonical_json, job_key
from ..prompts import Prompts
from ..providers import provider_class
from ..providers.base import GenerationRequest, Provider, ProviderSpec, Reference
from ..safeio import MAX_REFERENCE_BYTES, read_regular
from ..sizes import orientation
from ..store import KeyMemo, Store
from .derived import (
    PLACEHOLDER_PARENT,
    edit_template,
    localise_instruction,
    parent_output,
    parent_reference,
)
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

    def resolve(self, job: Job, parent_sha256: str, load: Callable[[], bytes]) -> Job:
        """A pending derived job with its key, now that its parent's output is known (its
        sha256, and how to read its bytes when the request must be made). Raises
        ValidationError when the provider would refuse the request."""
        assert job.derive is not None and job.parent is not None
        derive = job.derive
        parent = job.parent
        fingerprint = _sha(f"{job.fingerprint}|parent:{parent_sha256}")

        def make() -> tuple[GenerationRequest, dict[str, Any]]:
            return derive(parent_reference(parent, parent_sha256, load))

        known = self.memo.get(fingerprint) if self.memo is not None else None
        if known is not None:
            return replace(job, key=known, make=make)
        request, fields = make()
        provider = self.providers[job.provider]
        rules = provider.validate(request)
        if rules:
            raise ValidationError([f"{job.label}: {rule}" for rule in rules])
        key = job_key(fields)
        if self.memo is not None:
            self.memo.put(fingerprint, key)
        return replace(job, key=key, make=make, _made=[(request, fields)],
                       texts=(request.prompt, request.negative))


def _review_picks(campaign: Campaign) -> dict[tuple[str, str, str, str | None], int]:
    """The picked variants of the parents of derived assets that do not name a variant."""
    by_id = {a.id: a for a in campaign.assets}
    if not any(a.parent is not None and a.parent.variant is None
               and len(by_id[a.parent.asset].seeds) > 1 for a in campaign.assets
               if a.parent is not None and a.parent.asset in by_id):
        return {}
    from ..manifest import Manifest
    from ..review.decisions import ReviewFile, picked_variants, review_path

    review = ReviewFile.load(review_path(campaign.path))
    if not review.exists:
        return {}
    return picked_variants(review, Manifest.load(campaign.out, campaign.name).entries)


def plan(campaign: Campaign, selection: Selection | None = None,
         store: Store | None = None,
         picks: Mapping[tuple[str, str, str, str | None], int] | None = None) -> Plan:
    """Expand the campaign into jobs, parents before the jobs made from them. Raises
    InputError listing every problem found.

    Keys of jobs planned before with the same inputs come from the store's key memo. A job
    made from another job's output has no key until that output is known (`resolve`);
    `picks` are the variants picked in the review file, (asset, aspect, provider, locale)
    -> variant, which derived assets are made from by default (None: read from the review
    file and the manifest, when a derived asset could use them)."""
    selection = selection or Selection()
    if picks is None:
        picks = _review_picks(campaign)
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
    by_id = {a.id: a for a in campaign.assets}

    def report(message: str) -> None:
        if message not in seen_problems:
            seen_problems.add(message)
            problems.append(message)

    memo = (store or Store(campaign.cache_dir)).key_memo(campaign.path)
    inputs_of = Fingerprints(campaign, prompts)
    for asset in _parents_first(campaign.assets):
        refs = references.load(asset, report)
        inpaint = references.load_edit_images(asset, report)
        for locale in campaign.locales or (None,):
            asset_digest = inputs_of.asset(asset, refs, locale, inpaint)
            for aspect in asset.aspects:
                for provider_name in asset.providers:
                    provider = providers[provider_name]
                    spec = provider.spec
                    width, height = provider.size_for(aspect)
                    for variant, seed in enumerate(asset.seeds, start=1):
                        out = output_path(asset, aspect, provider_name, provider.output_ext,
                                          variant, locale)
                        all_outputs.add(out)
                        if not selection.wants(asset.id, aspect, provider_name, locale):
                            continue
                        where = Where(campaign, asset, aspect, provider, seed, variant, locale)
                        fingerprint = inputs_of.job(asset_digest, spec, aspect, seed, variant,
                                                    provider.key_environment())
                        job = Job(asset=asset.id, aspect=aspect, provider=spec.name,
                                  kind=spec.kind, model=spec.model, seed=seed,
                                  variant=variant, output=out, width=width, height=height,
                                  key="", billable=provider.info.billable,
                                  make=functools.partial(_render, where, refs, prompts, inpaint,
                                                       None),
                                  locale=locale, fingerprint=fingerprint)
                        parent = parent_output(campaign, by_id, providers, asset, aspect,
                                               provider_name, variant, locale, picks)
                        if parent is not None:
                            derive = functools.partial(_render, where, refs, prompts, inpaint)
                            # Until resolved, its request shows everything but the parent's
                            # bytes (a placeholder); the executor never sends a pending job.
                            derived = replace(job, parent=parent, derive=derive,
                                              make=functools.partial(derive, PLACEHOLDER_PARENT))
                            _check(derived, PLACEHOLDER_PARENT, provider, report)
                            jobs.append(derived)
                            continue
                        known = memo.get(fingerprint)
                        if known is not None:
                            jobs.append(replace(job, key=known))
                            continue
                        made = _check(job, None, provider, report)
                        if made is None:
                            continue
                        request, fields, ok = made
                        key = job_key(fields)
                        if ok:
                            memo.put(fingerprint, key)
                        # Its prompts are kept, not its request: formed again from them
                        # when the job runs (no rendering), dropped once it is done.
                        texts = (request.prompt, request.negative)
                        jobs.append(replace(job, key=key, texts=texts, make=functools.partial(
                            _render, where, refs, prompts, inpaint, None, texts)))
    if problems:
        raise InputError(problems)
    return Plan(campaign, tuple(jobs), frozenset(all_outputs), providers, memo)


def _check(job: Job, parent: Reference | None, provider: Provider, report: Callable[[str], None]
           ) -> tuple[GenerationRequest, dict[str, Any], bool] | None:
    """Render a job (a derived one with `parent`) and check it against its provider's
    rules, reporting every problem; (request, key fields, whether it passed), or None when
    a template failed."""
    try:
        if parent is not None:
            assert job.derive is not None
            request, fields = job.derive(parent)
        else:
            request, fields = job.make()
    except TemplateError as exc:
        for p in exc.problems:
            report(p)
        return None
    rules = provider.validate(request)
    spec = provider.spec
    locale = f", locale {job.locale}" if job.locale else ""
    for rule in rules:
        report(f"asset {job.asset}, provider {spec.name} ({spec.kind} {spec.model}), "
               f"aspect {job.aspect}{locale}: {rule}")
    return request, fields, not rules


def _parents_first(assets: Sequence[Asset]) -> list[Asset]:
    """The assets in campaign order, except that each comes after the asset it is made
    from (the campaign has no cycles: the loader refuses them)."""
    by_id = {a.id: a for a in assets}
    ordered: list[Asset] = []
    placed: set[str] = set()

    def place(asset: Asset) -> None:
        if asset.id in placed:
            return
        if asset.parent is not None and asset.parent.asset in by_id:
            place(by_id[asset.parent.asset])
        placed.add(asset.id)
        ordered.append(asset)

    for asset in assets:
        place(asset)
    return ordered


@dataclass(frozen=True, slots=True)
class Where:
    """One job's place in the campaign: what its templates are rendered for."""

    campaign: Campaign
    asset: Asset
    aspect: str
    provider: Provider
    seed: int
    variant: int
    locale: str | None


def design_for(campaign: Campaign, asset: Asset, aspect: str, seed: int,
               locale: str | None = None) -> dict[str, Any]:
    """What the preview comp of a job draws (its layout depends on it): brand, copy (in
    the job's locale), label."""
    shown = f"{asset.id} · {locale} · {aspect}" if locale else f"{asset.id} · {aspect}"
    return {
        "brand": campaign.brand,
        "copy": asset.copy_for(locale),
        "label": f"{shown} · seed {seed}",
    }


def job_context(campaign: Campaign, asset: Asset, aspect: str, spec: ProviderSpec, width: int,
                height: int, seed: int, variant: int,
                locale: str | None = None) -> dict[str, Any]:
    """What a job's templates see (the prompt, the negative prompt, `expect_text`, the edit
    instruction)."""
    return {
        "brand": campaign.brand,
        "copy": asset.copy_for(locale),
        "campaign": {"name": campaign.name, "locales": list(campaign.locales)},
        "locale": locale or "",
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


def _render(where: Where, refs: tuple[Reference, ...], prompts: Prompts,
            inpaint: tuple[Reference | None, Reference | None],
            parent: Reference | None, texts: tuple[str, str] | None = None
            ) -> tuple[GenerationRequest, dict[str, Any]]:
    """Render a job's prompts and form its provider-neutral request and key fields.
    `inpaint` is the (init image, mask) of image-to-image and inpainting (runware:108@1).
    With a `parent`, the request is an edit of that image: its prompt is the edit
    instruction. With `texts`, the (prompt, negative prompt) rendered before: nothing is
    rendered again."""
    campaign, asset, aspect = where.campaign, where.asset, where.aspect
    provider, seed, variant, locale = where.provider, where.seed, where.variant, where.locale
    spec = provider.spec
    width, height = provider.size_for(aspect)
    if texts is not None:
        prompt, negative = texts
    else:
        context = job_context(campaign, asset, aspect, spec, width, height, seed, variant,
                              locale)
        label = f"asset {asset.id}" + (f" ({locale})" if locale else "")
        if parent is None:
            prompt = prompts.render(asset.template, context, label)
        else:
            template = edit_template(campaign, asset, locale)
            prompt = (prompts.render_string(template, context, f"{label}: edit instruction")
                      if template is not None else
                      localise_instruction(asset.copy, asset.copy_for(locale), locale or ""))
        negative = (
            prompts.render_string(asset.negative, context, f"{label}: negative prompt")
            if asset.negative else ""
        )
    request = GenerationRequest(
        prompt=prompt,
        negative=negative,
        width=width,
        height=height,
        seed=seed,
        prompt_extend=asset.prompt_extend,
        references=(parent, *refs) if parent is not None else refs,
        options=dict(spec.options),
        design=design_for(campaign, asset, aspect, seed, locale),
        asset=asset.id,
        aspect=aspect,
        edit=parent is not None,
        init_image=inpaint[0],
        mask=inpaint[1],
        strength=asset.strength,
        mask_margin=asset.mask_margin,
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
        # Image-to-image and inpainting enter the key only when set: the keys of campaigns
        # that use neither stay what they were.
        **({"init_image": inpaint[0].sha256} if inpaint[0] is not None else {}),
        **({"mask": inpaint[1].sha256} if inpaint[1] is not None else {}),
        **({"strength": asset.strength} if asset.strength is not None else {}),
        **({"mask_margin": asset.mask_margin} if asset.mask_margin is not None else {}),
        **provider.key_fields(request),
    }
    if parent is not None:
        fields["parent"] = parent.sha256
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

    def asset(self, asset: Asset, refs: tuple[Reference, ...], locale: str | None,
              inpaint: tuple[Reference | None, Reference | None] = (None, None)) -> str:
        # Not canonical: a template looping over copy.items() sees the keys in file order,
        # so that order is an input of the prompt too.
        parts: list[Any] = [
            self.base, self.campaign.name, self.campaign.brand, asset.id, asset.template,
            asset.negative, asset.prompt_extend, asset.copy, [r.sha256 for r in refs],
        ]
        if locale is not None:  # campaigns without locales keep their fingerprints
            parts += [locale, list(self.campaign.locales), asset.copy_for(locale),
                      asset.edit, asset.locale_strategy]
        elif asset.parent is not None:
            parts += [asset.edit]
        if any(inpaint) or asset.strength is not None or asset.mask_margin is not None:
            parts.append([None if e is None else e.sha256 for e in inpaint]
                         + [asset.strength, asset.mask_margin])
        return _sha(json.dumps(parts, ensure_ascii=False, default=str))

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

    def load_edit_images(self, asset: Asset,
                         report: Any) -> tuple[Reference | None, Reference | None]:
        """The asset's init_image and mask, read and checked like references."""
        found: list[Reference | None] = []
        for name, path in (("init_image", asset.init_image), ("mask", asset.mask)):
            if path is None:
                found.append(None)
                continue
            if path not in self._loaded:
                self._loaded[path] = self._read(
                    path, f"assets[{asset.index}] ({asset.id}).{name}", report)
            found.append(self._loaded[path])
        return found[0], found[1]

    def _read(self, path: Path, where: str, report: Any) -> Reference | None:
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
