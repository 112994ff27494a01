"""The campaign file: pydantic models of its TOML, and `load_campaign(path)`.

Every problem in a file is collected and reported at once, each as
`file: key.path: what is wrong`, with the likely intended key when one is close.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError

from .campaign_messages import (
    _describe_value,
    _hint,
    _pydantic_problems,
    _toml_message,
)
from .errors import CampaignError
from .providers.base import ProviderSpec
from .sizes import ASPECTS

if TYPE_CHECKING:
    from .exports import Export

#: Names used as file or folder names (asset ids, provider names).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
MAX_SEED = 2**63 - 1
MAX_VARIANTS = 100


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True,
                              frozen=True)


class CampaignSection(_Model):
    """The `[campaign]` table."""

    name: str = Field(description="Campaign name, shown in reports and the review page.")
    out: str = Field("out", description="Output root, relative to the campaign file.")
    templates: list[str] = Field(
        default_factory=lambda: ["templates"],
        description="Template folders, relative to the campaign file, searched in order.",
    )
    allow_external_references: bool = Field(
        False,
        description="Allow reference images outside the repository holding the campaign.",
    )
    budget: float | None = Field(
        None, ge=0, allow_inf_nan=False,
        description="Most a build may spend, in USD: a build whose estimated cost is higher "
                    "stops before any request (`build --budget` overrides it).",
    )


class AssetFields(_Model):
    """Fields an asset may set; `[defaults]` may set any of them for every asset."""

    template: str | None = Field(None, description="Prompt template file name (Jinja2).")
    negative: str | None = Field(
        None, description="Negative prompt, a template string rendered like the prompt."
    )
    aspects: list[str] | None = Field(
        None, min_length=1, description=f"Aspect ratios to build: {', '.join(ASPECTS)}."
    )
    providers: list[str] | None = Field(
        None, min_length=1,
        description="Provider names from [providers.*]; `preview` exists without a table.",
    )
    seeds: list[int] | None = Field(None, min_length=1, description="Seeds, one output each.")
    variants: int | None = Field(
        None, ge=1, le=MAX_VARIANTS,
        description="Instead of seeds: this many seeds derived from the asset id.",
    )
    references: list[str] | None = Field(
        None, description="Reference image files, relative to the campaign file."
    )
    prompt_extend: bool | None = Field(
        None, description="Let the provider rewrite the prompt (off keeps it as written)."
    )
    copy_: dict[str, Any] | None = Field(
        None, alias="copy", description="Copy for the template, merged over [copy]."
    )
    expect_text: list[str] | None = Field(
        None,
        description="Lines that must appear in the image, template strings rendered like "
                    "the prompt; default: copy.headline and copy.subtitle (`check`).",
    )


class AssetSpec(AssetFields):
    """One `[[assets]]` entry."""

    id: Name = Field(description="Asset id: letters, digits, '-' and '_'; unique.")


class ProviderTable(BaseModel):
    """A `[providers.NAME]` table. Keys other than these are options of the provider kind."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    kind: str = Field(description="Provider kind: preview, runware, aimlapi or empiriolabs.")
    model: str | None = Field(None, description="Model id; the kind's default when absent.")
    concurrency: int | None = Field(None, ge=1, le=64, description="Requests in flight.")
    base_url: str | None = Field(None, description="API base URL (else the env variable).")
    timeout: float | int = Field(300, gt=0, le=3600,
                                 description="Overall seconds one job may take.")
    max_retries: int = Field(3, ge=0, le=10, description="Retries of transient faults.")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="Provider options (may also be top-level keys).")


class ExportSpec(_Model):
    """One `[[exports]]` entry: a rendition derived by Pillow from the outputs of one aspect
    ratio, written to `<out>/exports/<name>/<provider>/<asset>[-vN].<format>`."""

    name: Name = Field(description="Export name, the folder under <out>/exports/; unique.")
    aspect: str = Field(description=f"Aspect ratio of the outputs it is cut from: "
                                    f"{', '.join(ASPECTS)}.")
    width: int = Field(ge=1, le=8192, description="Exact width in pixels.")
    height: int = Field(ge=1, le=8192, description="Exact height in pixels.")
    format: Literal["png", "jpg", "webp"] = Field(
        "png", description="File format: png, jpg or webp.")
    quality: int = Field(90, ge=1, le=100,
                         description="Encoder quality for jpg and webp (1..100; png ignores it).")
    focus: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: [0.5, 0.5], min_length=2, max_length=2,
        description="Focal point [x, y] as fractions of the width and height (0..1): the crop "
                    "keeps it as close to the centre as the image allows.",
    )


class CampaignFile(_Model):
    """The whole campaign file."""

    campaign: CampaignSection = Field(
        description="The [campaign] table: name, output folder, template folders, budget.")
    brand: dict[str, Any] = Field(default_factory=dict,
                                  description="Free-form brand table; templates see `brand`.")
    copy_: dict[str, Any] = Field(default_factory=dict, alias="copy",
                                  description="Campaign-wide copy, merged under each asset's.")
    defaults: AssetFields = Field(default_factory=AssetFields,
                                  description="Defaults for every asset field.")
    providers: dict[str, ProviderTable] = Field(default_factory=dict,
                                                description="Named providers.")
    assets: list[AssetSpec] = Field(min_length=1, description="The assets to build.")
    exports: list[ExportSpec] = Field(
        default_factory=list,
        description="Renditions at exact pixel sizes, cut from the outputs after each build.")


@dataclass(frozen=True)
class Asset:
    """An asset with defaults applied and everything resolved."""

    id: str
    index: int
    template: str
    negative: str
    aspects: tuple[str, ...]
    providers: tuple[str, ...]
    seeds: tuple[int, ...]
    references: tuple[Path, ...]
    prompt_extend: bool
    copy: dict[str, Any]
    #: `expect_text` as written (templates); None: the copy's headline and subtitle.
    expect_text: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Campaign:
    """A loaded, validated campaign."""

    path: Path
    #: The campaign file as the user named it (for messages).
    shown: str
    name: str
    root: Path
    out: Path
    template_dirs: tuple[Path, ...]
    repo_root: Path
    brand: dict[str, Any]
    copy: dict[str, Any]
    providers: dict[str, ProviderSpec]
    assets: tuple[Asset, ...]
    #: Most a build may spend in USD (None: no limit).
    budget: float | None = None
    exports: tuple[Export, ...] = ()

    @property
    def cache_dir(self) -> Path:
        return cache_dir_for(self.repo_root)


def cache_dir_for(repo_root: Path) -> Path:
    """The cache of the campaigns in a repository: QWENBUILD_CACHE_DIR, else
    `<repository>/.qwenbuild/cache`."""
    env = os.environ.get("QWENBUILD_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return repo_root / ".qwenbuild" / "cache"


def derive_seed(asset_id: str, index: int) -> int:
    """The seed of variant `index` (0-based) of an asset: stable across machines."""
    digest = hashlib.sha256(f"qwenbuild-variant:{asset_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def find_repo_root(start: Path) -> Path:
    """The nearest ancestor holding `.git`, else `start` itself."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


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
        raise CampaignError(f"{shown}: {_toml_message(exc)}") from None
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
            problems.append(f"{key}: unknown key{_hint(key, [f.alias or n for n, f in fields.items()])}")
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
                problems.append(f"{key}: expected a table, got {_describe_value(value)}")
            else:
                parts[name] = value
    if "assets" not in data:
        problems.append("assets: no assets; add at least one [[assets]] table")
    if parts.get("campaign") is None:
        raise CampaignError([f"{shown}: {p}" for p in problems])
    # The parts that are valid are still checked for meaning, so that one run reports all.
    indexed = parts.get("assets", [])
    model = CampaignFile.model_construct(
        campaign=parts["campaign"],
        brand=parts.get("brand") or {},
        copy_=parts.get("copy_") or {},
        defaults=parts.get("defaults") or AssetFields(),
        providers=parts.get("providers") or {},
        assets=[spec for _, spec, _ in indexed],
        exports=[spec for _, spec in parts.get("exports", [])],
    )
    indexed = [(i, spec, failed | defaults_failed) for i, spec, failed in indexed]
    campaign = _resolve(model, path.resolve(), problems, indexed, shown,
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
        problems.extend(_pydantic_problems(exc, data, loc))
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
                        f"{_describe_value(value)}")
        return []
    return [(i, spec) for i, item in enumerate(value)
            if (spec := _validate(ExportSpec, item, ("exports", i), data, problems)) is not None]


def _validate_assets(value: Any, data: dict[str, Any],
                     problems: list[str]) -> list[tuple[int, AssetSpec, frozenset[str]]]:
    """The assets that are valid on their own, with their index in the file."""
    if not isinstance(value, list):
        problems.append(f"assets: expected an array of tables [[assets]], got "
                        f"{_describe_value(value)}")
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
    from .exports import resolve_exports
    from .prompts import Prompts
    from .providers import KINDS, provider_class

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
        if not re.match(NAME_PATTERN, name) or name.lower() in _WINDOWS_RESERVED:
            problems.append(f"{where}: invalid provider name {name!r}: use letters, digits, "
                            "'-' and '_' (it becomes a folder name)")
            continue
        if table.kind not in KINDS:
            hint = _hint(table.kind, list(KINDS))
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
            concurrency=table.concurrency or cls.default_concurrency,
            options=options,
            base_url=table.base_url,
            timeout=float(table.timeout),
            max_retries=table.max_retries,
        )
    known_providers = set(tables)

    defaults = model.defaults
    if defaults.seeds is not None and defaults.variants is not None:
        problems.append("defaults: set either seeds or variants, not both")
    assets: list[Asset] = []
    seen: dict[str, str] = {}
    for index, spec, failed in indexed:
        where = f"assets[{index}] ({spec.id})"
        folded = spec.id.lower()
        if folded in _WINDOWS_RESERVED:
            problems.append(f"{where}.id: {spec.id!r} is a reserved file name on Windows")
        if folded in seen:
            problems.append(f"{where}.id: duplicate asset id {spec.id!r} (also {seen[folded]}; "
                            "ids differing only in case collide on some file systems)")
        else:
            seen[folded] = f"assets[{index}]"
        asset = _resolve_asset(spec, index, defaults, model, root, repo_root, prompts,
                               known_providers, problems, failed)
        if asset is not None:
            assets.append(asset)
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
        out=(root / model.campaign.out).resolve(),
        template_dirs=template_dirs,
        repo_root=repo_root,
        brand=dict(model.brand),
        copy=dict(model.copy_),
        providers=providers,
        assets=tuple(assets),
        budget=model.campaign.budget,
        exports=resolved_exports,
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
    elif template is None:
        problems.append(f"{where}.template: no template; set it here or in [defaults]")
    elif not prompts.exists(template):
        hint = _hint(template, prompts.available())
        looked = ", ".join(str(f) for f in prompts.folders)
        problems.append(f"{where}.template: unknown template {template!r}{hint} "
                        f"(looked in {looked})")
    aspects = pick("aspects")
    if aspects is None and "aspects" not in failed:
        problems.append(f"{where}.aspects: no aspect ratios; set them here or in [defaults]")
    aspects = aspects or []
    for i, aspect in enumerate(aspects):
        if aspect not in ASPECTS:
            hint = _hint(aspect, list(ASPECTS))
            problems.append(f"{where}.aspects[{i}]: unsupported aspect ratio {aspect!r}{hint}; "
                            f"supported: {', '.join(ASPECTS)}")
    if len(set(aspects)) != len(aspects):
        problems.append(f"{where}.aspects: an aspect ratio is listed twice")
    providers = pick("providers") or ["preview"]
    for i, name in enumerate(providers):
        if name not in known_providers:
            hint = _hint(name, sorted(known_providers))
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

    copy = {**model.copy_, **(defaults.copy_ or {}), **(spec.copy_ or {})}
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
    )


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
