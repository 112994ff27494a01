"""`load_campaign(path)`: read a campaign file, validate it and resolve it.

Every problem in a file is collected and reported at once, each as
`file: key.path: what is wrong`, with the likely intended key when one is close.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from ..errors import CampaignError
from ..prompts import Prompts
from ..providers import KINDS, provider_class
from ..providers.base import ProviderSpec
from ..sizes import ASPECTS
from ..store.location import find_repo_root
from .derived import (
    check_locale_list,
    check_locales,
    check_parents,
    inherit_copy,
    locale_copies,
    parent_ref,
)
from .messages import describe_value, did_you_mean, pydantic_problems, toml_message
from .models import (
    MAX_SEED,
    NAME_PATTERN,
    WINDOWS_RESERVED,
    AssetFields,
    AssetSpec,
    CampaignFile,
    ExportSpec,
    ProviderTable,
)
from .resolved import Asset, Campaign, Export, derive_seed


def load_campaign(path: str | os.PathLike[str]) -> Campaign:
    """Read, validate and resolve a campaign file. Raises CampaignError with every problem."""
    path = Path(path)
    shown = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CampaignError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise CampaignError(f"{shown}: is a folder, expected a campaign .toml file") from None
    except OSError as exc:
        raise CampaignError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CampaignError(f"{shown}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(f"{shown}: {toml_message(exc)}") from None
    return campaign_from_data(data, path)


def campaign_from_data(data: dict[str, Any], path: Path) -> Campaign:
    """Validate parsed TOML. Each part is checked on its own so that every problem in the
    file, of type or of meaning, is reported at once."""
    shown = str(path)
    problems: list[str] = []
    parts: dict[str, Any] = {}
    defaults_failed: set[str] = set()
    fields = CampaignFile.model_fields
    for key in data:
        if key not in fields and key != "copy":
            names = [f.alias or n for n, f in fields.items()]
            problems.append(f"{key}: unknown key{did_you_mean(key, names)}")
    if "campaign" not in data:
        problems.append("campaign: missing required table [campaign] (with at least name)")
    for key, value in data.items():
        name = "copy_" if key == "copy" else key
        if name not in fields:
            continue
        if name == "assets":
            parts[name] = _validate_assets(value, data, problems)
        elif name == "exports":
            parts[name] = _validate_exports(value, data, problems)
        elif name == "providers" and isinstance(value, dict):
            parts[name] = {
                pname: table for pname, ptable in value.items()
                if (table := _validate(ProviderTable, ptable, ("providers", pname), data,
                                       problems)) is not None
            }
        else:
            annotation = fields[name].annotation
            model = annotation if isinstance(annotation, type) and issubclass(
                annotation, BaseModel) else None
            if model is not None:
                parts[name] = _validate(model, value, (key,), data, problems,
                                        defaults_failed if name == "defaults" else None)
            elif not isinstance(value, dict):
                problems.append(f"{key}: expected a table, got {describe_value(value)}")
            else:
                parts[name] = value
    if "assets" not in data:
        problems.append("assets: no assets; add at least one [[assets]] table")
    if parts.get("campaign") is None:
        raise CampaignError([f"{shown}: {p}" for p in problems])
    # The parts that are valid are still checked for meaning, so that one run reports all.
    indexed = parts.get("assets", [])
    whole = CampaignFile.model_construct(
        campaign=parts["campaign"],
        brand=parts.get("brand") or {},
        copy_=parts.get("copy_") or {},
        locales=parts.get("locales") or {},
        defaults=parts.get("defaults") or AssetFields(),
        providers=parts.get("providers") or {},
        assets=[spec for _, spec, _ in indexed],
        exports=[spec for _, spec in parts.get("exports", [])],
    )
    indexed = [(i, spec, failed | defaults_failed) for i, spec, failed in indexed]
    campaign = _resolve(whole, path.resolve(), problems, indexed, shown,
                        parts.get("exports", []))
    if problems:
        raise CampaignError([f"{shown}: {p}" for p in problems])
    assert campaign is not None
    return campaign


def _validate(model: type[BaseModel], value: Any, loc: tuple[Any, ...], data: dict[str, Any],
              problems: list[str], failed: set[str] | None = None) -> Any:
    """Validate one part; on errors, report them and validate the rest without the keys in
    error (their names go into `failed`), so the rest can still be checked for meaning."""
    try:
        return model.model_validate(value)
    except PydanticValidationError as exc:
        problems.extend(pydantic_problems(exc, data, loc))
        bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
    if failed is not None:
        failed.update(bad)
    if not isinstance(value, dict):
        return None
    try:
        return model.model_validate({k: v for k, v in value.items() if k not in bad})
    except PydanticValidationError:
        return None


def _validate_exports(value: Any, data: dict[str, Any],
                      problems: list[str]) -> list[tuple[int, ExportSpec]]:
    """The `[[exports]]` entries that are valid on their own, with their index in the file."""
    if not isinstance(value, list):
        problems.append(f"exports: expected an array of tables [[exports]], got "
                        f"{describe_value(value)}")
        return []
    return [(i, spec) for i, item in enumerate(value)
            if (spec := _validate(ExportSpec, item, ("exports", i), data, problems)) is not None]


def _validate_assets(value: Any, data: dict[str, Any],
                     problems: list[str]) -> list[tuple[int, AssetSpec, frozenset[str]]]:
    """The assets that are valid on their own, with their index in the file."""
    if not isinstance(value, list):
        problems.append(f"assets: expected an array of tables [[assets]], got "
                        f"{describe_value(value)}")
        return []
    if not value:
        problems.append("assets: no assets; add at least one [[assets]] table")
    specs = []
    for i, item in enumerate(value):
        failed: set[str] = set()
        spec = _validate(AssetSpec, item, ("assets", i), data, problems, failed)
        if spec is not None:
            specs.append((i, spec, frozenset(failed)))
    return specs


# -- resolution and checks beyond types ---------------------------------------------------


def _resolve(model: CampaignFile, path: Path, problems: list[str],
             indexed: list[tuple[int, AssetSpec, frozenset[str]]], shown: str,
             exports: list[tuple[int, ExportSpec]] | None = None) -> Campaign | None:
    root = path.parent
    repo_root = find_repo_root(root)
    template_dirs = tuple((root / t).resolve() for t in model.campaign.templates)
    for i, folder in enumerate(template_dirs):
        if not folder.is_dir():
            problems.append(f"campaign.templates[{i}]: template folder not found: "
                            f"{model.campaign.templates[i]} (resolved to {folder})")
    prompts = Prompts(template_dirs)

    providers: dict[str, ProviderSpec] = {}
    tables = dict(model.providers)
    if "preview" not in tables:
        tables["preview"] = ProviderTable(kind="preview")
    folded_names: dict[str, str] = {}
    for name, table in tables.items():
        where = f"providers.{name}"
        if name.lower() in folded_names:
            # Provider names are folder names: these would collide on Windows and macOS.
            problems.append(f"{where}: provider name {name!r} differs only in case from "
                            f"{folded_names[name.lower()]!r}; use another name")
            continue
        folded_names[name.lower()] = name
        if not re.match(NAME_PATTERN, name) or name.lower() in WINDOWS_RESERVED:
            problems.append(f"{where}: invalid provider name {name!r}: use letters, digits, "
                            "'-' and '_' (it becomes a folder name)")
            continue
        if table.kind not in KINDS:
            hint = did_you_mean(table.kind, list(KINDS))
            problems.append(f"{where}.kind: unknown provider kind {table.kind!r}{hint}; "
                            f"known: {', '.join(KINDS)}")
            continue
        if name == "preview" and table.kind != "preview":
            problems.append(f"{where}.kind: the name 'preview' is the built-in preview "
                            "provider; give this provider another name")
            continue
        cls = provider_class(table.kind)
        options = dict(table.options)
        for key, value in (table.model_extra or {}).items():
            if key in options:
                problems.append(f"{where}.{key}: set both here and in {where}.options")
            options[key] = value
        model_id = table.model or cls.default_model()
        bad = cls.check_config(model_id, options)
        problems.extend(f"{where}.{key}: {msg}" for key, msg in bad)
        if bad:
            continue
        providers[name] = ProviderSpec(
            name=name,
            kind=table.kind,
            model=model_id,
            concurrency=table.concurrency or cls.info.default_concurrency,
            options=options,
            base_url=table.base_url,
            timeout=float(table.timeout),
            max_retries=table.max_retries,
        )
    known_providers = set(tables)

    defaults = model.defaults
    if defaults.seeds is not None and defaults.variants is not None:
        problems.append("defaults: set either seeds or variants, not both")
    locales = tuple(model.campaign.locales or ())
    check_locale_list(locales, problems)
    check_locales(locales, model.locales, "locales", problems)
    check_locales(locales, defaults.locales or {}, "defaults.locales", problems)
    assets: list[Asset] = []
    seen: dict[str, str] = {}
    for index, spec, failed in indexed:
        where = f"assets[{index}] ({spec.id})"
        folded = spec.id.lower()
        if folded in WINDOWS_RESERVED:
            problems.append(f"{where}.id: {spec.id!r} is a reserved file name on Windows")
        if folded in seen:
            problems.append(f"{where}.id: duplicate asset id {spec.id!r} (also {seen[folded]}; "
                            "ids differing only in case collide on some file systems)")
        else:
            seen[folded] = f"assets[{index}]"
        check_locales(locales, spec.locales or {}, f"{where}.locales", problems)
        asset = _resolve_asset(spec, index, defaults, model, root, repo_root, prompts,
                               known_providers, problems, failed)
        if asset is not None:
            assets.append(asset)
    check_parents(assets, providers, locales, problems)
    assets = inherit_copy(assets, {spec.id: (spec.copy_, spec.locales)
                                   for _, spec, _ in indexed}, locales)
    _check_file_names(assets, problems)
    out = (root / model.campaign.out).resolve()
    if out.exists() and not out.is_dir():
        problems.append(f"campaign.out: {model.campaign.out} is a file; the output root must "
                        "be a folder (or not exist yet)")
    resolved_exports = resolve_exports(exports or [], assets, problems)
    if problems:
        return None
    return Campaign(
        path=path,
        shown=shown,
        name=model.campaign.name,
        root=root,
        out=out,
        template_dirs=template_dirs,
        repo_root=repo_root,
        brand=dict(model.brand),
        copy=dict(model.copy_),
        providers=providers,
        assets=tuple(assets),
        budget=model.campaign.budget,
        exports=resolved_exports,
        locales=locales,
    )


def _resolve_asset(
    spec: AssetSpec,
    index: int,
    defaults: AssetFields,
    model: CampaignFile,
    root: Path,
    repo_root: Path,
    prompts: Any,
    known_providers: set[str],
    problems: list[str],
    failed: frozenset[str] = frozenset(),
) -> Asset | None:
    where = f"assets[{index}] ({spec.id})"
    before = len(problems)

    def pick(field: str) -> Any:
        value = getattr(spec, field)
        return getattr(defaults, field) if value is None else value

    template = pick("template")
    if "template" in failed:
        pass  # its type error is reported already
    elif template is None and spec.from_ is not None:
        template = ""  # made by editing its parent: the edit instruction is its prompt
    elif template is None:
        problems.append(f"{where}.template: no template; set it here or in [defaults]")
    elif not prompts.exists(template):
        hint = did_you_mean(template, prompts.available())
        looked = ", ".join(str(f) for f in prompts.folders)
        problems.append(f"{where}.template: unknown template {template!r}{hint} "
                        f"(looked in {looked})")
    aspects = pick("aspects")
    if aspects is None and "aspects" not in failed:
        problems.append(f"{where}.aspects: no aspect ratios; set them here or in [defaults]")
    aspects = aspects or []
    for i, aspect in enumerate(aspects):
        if aspect not in ASPECTS:
            hint = did_you_mean(aspect, list(ASPECTS))
            problems.append(f"{where}.aspects[{i}]: unsupported aspect ratio {aspect!r}{hint}; "
                            f"supported: {', '.join(ASPECTS)}")
    if len(set(aspects)) != len(aspects):
        problems.append(f"{where}.aspects: an aspect ratio is listed twice")
    providers = pick("providers") or ["preview"]
    for i, name in enumerate(providers):
        if name not in known_providers:
            hint = did_you_mean(name, sorted(known_providers))
            problems.append(f"{where}.providers[{i}]: unknown provider {name!r}{hint}; "
                            f"declare it as [providers.{name}] (known: "
                            f"{', '.join(sorted(known_providers))})")
    if len(set(providers)) != len(providers):
        problems.append(f"{where}.providers: a provider is listed twice")

    if spec.seeds is not None and spec.variants is not None:
        problems.append(f"{where}: set either seeds or variants, not both")
    if spec.seeds is not None or spec.variants is not None:
        seeds, variants = spec.seeds, spec.variants
    else:
        seeds, variants = defaults.seeds, defaults.variants
    if seeds is None:
        seeds = [derive_seed(spec.id, i) for i in range(variants or 1)]
    for i, seed in enumerate(seeds):
        if not 0 <= seed <= MAX_SEED:
            problems.append(f"{where}.seeds[{i}]: seed {seed} is out of range 0..{MAX_SEED}")
    if len(set(seeds)) != len(seeds):
        problems.append(f"{where}.seeds: a seed is listed twice")

    references: list[Path] = []
    allow_external = model.campaign.allow_external_references
    for i, ref in enumerate(pick("references") or []):
        resolved = (root / ref).resolve()
        if not resolved.is_file():
            problems.append(f"{where}.references[{i}]: reference image not found: {ref}")
        elif not allow_external and not resolved.is_relative_to(repo_root):
            problems.append(f"{where}.references[{i}]: {ref} is outside the repository "
                            f"({repo_root}); set campaign.allow_external_references = true "
                            "to allow it")
        references.append(resolved)

    edit_images: dict[str, Path | None] = {}
    for name in ("init_image", "mask"):
        value = pick(name)
        if value is None:
            edit_images[name] = None
            continue
        resolved = (root / value).resolve()
        if not resolved.is_file():
            problems.append(f"{where}.{name}: image not found: {value}")
        elif not allow_external and not resolved.is_relative_to(repo_root):
            problems.append(f"{where}.{name}: {value} is outside the repository "
                            f"({repo_root}); set campaign.allow_external_references = true "
                            "to allow it")
        edit_images[name] = resolved
    if pick("mask") is not None and pick("init_image") is None:
        problems.append(f"{where}.mask: a mask needs init_image (the image it masks)")
    if pick("strength") is not None and pick("init_image") is None:
        problems.append(f"{where}.strength: strength needs init_image (the image it moves "
                        "from)")
    if pick("mask_margin") is not None and pick("mask") is None:
        problems.append(f"{where}.mask_margin: mask_margin needs a mask")

    copy = {**model.copy_, **(defaults.copy_ or {}), **(spec.copy_ or {})}
    locales = model.campaign.locales or []
    if len(problems) > before:
        return None
    return Asset(
        id=spec.id,
        index=index,
        template=template,
        negative=pick("negative") or "",
        aspects=tuple(aspects),
        providers=tuple(providers),
        seeds=tuple(seeds),
        references=tuple(references),
        prompt_extend=bool(pick("prompt_extend") or False),
        copy=copy,
        expect_text=None if pick("expect_text") is None else tuple(pick("expect_text")),
        parent=parent_ref(spec.from_),
        edit=pick("edit"),
        locale_strategy=pick("locale_strategy") or "generate",
        locale_copy=locale_copies(locales, copy,
                                  [model.locales, defaults.locales, spec.locales]),
        init_image=edit_images["init_image"],
        mask=edit_images["mask"],
        strength=None if pick("strength") is None else float(pick("strength")),
        mask_margin=pick("mask_margin"),
    )


def resolve_exports(indexed: list[tuple[int, ExportSpec]], assets: Iterable[Asset],
                    problems: list[str]) -> tuple[Export, ...]:
    """Check the `[[exports]]` entries for meaning (types are checked already)."""
    aspects_used = {aspect for asset in assets for aspect in asset.aspects}
    trust_assets = not problems  # with broken assets, "no asset has this aspect" misleads
    seen: dict[str, str] = {}
    exports = []
    for index, spec in indexed:
        where = f"exports[{index}] ({spec.name})"
        before = len(problems)
        folded = spec.name.lower()
        if folded in WINDOWS_RESERVED:
            problems.append(f"{where}.name: {spec.name!r} is a reserved file name on Windows")
        if folded in seen:
            problems.append(f"{where}.name: duplicate export name {spec.name!r} (also "
                            f"{seen[folded]}; names differing only in case collide on some "
                            "file systems)")
        else:
            seen[folded] = f"exports[{index}]"
        if spec.aspect not in ASPECTS:
            problems.append(f"{where}.aspect: unsupported aspect ratio {spec.aspect!r}"
                            f"{did_you_mean(spec.aspect, list(ASPECTS))}; supported: "
                            f"{', '.join(ASPECTS)}")
        elif trust_assets and spec.aspect not in aspects_used:
            problems.append(f"{where}.aspect: no asset is built at {spec.aspect} (used: "
                            f"{', '.join(sorted(aspects_used))}); add it to an asset's aspects")
        if len(problems) == before:
            exports.append(Export(spec.name, spec.aspect, spec.width, spec.height, spec.format,
                                  spec.quality, (float(spec.focus[0]), float(spec.focus[1]))))
    return tuple(exports)



def _check_file_names(assets: list[Asset], problems: list[str]) -> None:
    """Two assets must never write the same file: `poster` with two seeds writes
    `poster-v1.png`, which an asset named `poster-v1` would overwrite (also ignoring case)."""
    owner: dict[str, str] = {}
    for asset in assets:
        many = len(asset.seeds) > 1
        stems = [f"{asset.id}-v{n}" for n in range(1, len(asset.seeds) + 1)] if many \
            else [asset.id]
        for stem in stems:
            other = owner.setdefault(stem.lower(), asset.id)
            if other != asset.id:
                problems.append(
                    f"assets[{asset.index}] ({asset.id}).id: its output {stem}.* is also an "
                    f"output of asset {other!r}; rename one of them")
                break
