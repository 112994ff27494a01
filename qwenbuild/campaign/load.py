"""`load_campaign(path)`: read a campaign file, validate it and resolve it.

Every problem in a file is collected and reported at once, each as
`file:line:column: key.path: what is wrong`, with the likely intended key when one is
close. Line numbers are looked up only when there is something to report.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from ..errors import CampaignError
from ..imagecheck import header_problem
from ..prompts import Prompts
from ..providers import KINDS, provider_class
from ..providers.base import ProviderSpec
from ..safeio import (
    MAX_CAMPAIGN_BYTES,
    MAX_REFERENCE_BYTES,
    UnsafeFileError,
    check_folder,
    check_regular,
    inside,
    read_regular,
)
from ..sizes import ASPECTS
from ..store.location import find_repo_root
from ..urlcheck import base_url_problem
from .derived import (
    check_locale_list,
    check_locales,
    check_parents,
    inherit_copy,
    locale_copies,
    parent_ref,
)
from .messages import (
    Problem,
    Problems,
    describe_value,
    did_you_mean,
    key_text,
    loc_path,
    pydantic_problems,
    quoted,
    toml_message,
)
from .models import (
    MAX_SEED,
    WINDOWS_RESERVED,
    AssetFields,
    AssetSpec,
    CampaignFile,
    ExportSpec,
    ProviderTable,
    is_name,
)
from .positions import Positions, dotted_key_error, nesting_error
from .resolved import Asset, Campaign, Export, derive_seed

#: Deepest nesting of tables and arrays in a campaign file (a real one needs about 6).
MAX_DEPTH = 32
#: Longest message line: a huge value is never printed whole.
_MAX_MESSAGE = 1000


def load_campaign(path: str | os.PathLike[str]) -> Campaign:
    """Read, validate and resolve a campaign file. Raises CampaignError with every problem."""
    path = Path(path)
    shown = str(path)
    try:
        raw = read_regular(path, MAX_CAMPAIGN_BYTES)
    except FileNotFoundError:
        raise CampaignError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise CampaignError(f"{shown}: is a folder, expected a campaign .toml file") from None
    except UnsafeFileError as exc:
        if exc.reason.startswith("it is a folder"):
            raise CampaignError(f"{shown}: is a folder, expected a campaign .toml file") \
                from None
        raise CampaignError(f"{shown}: not read: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise CampaignError(f"{shown}: cannot read: {getattr(exc, 'strerror', None) or exc}") \
            from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise CampaignError(f"{shown}:{line}:{column}: not UTF-8 text (byte {exc.start})") \
            from None
    # A byte order mark, as some Windows editors write: not TOML, but not a mistake either.
    text = text.removeprefix("\ufeff")
    long_key = dotted_key_error(text, MAX_DEPTH)
    if long_key is not None:
        raise CampaignError(f"{shown}:{long_key[0]}:{long_key[1]}: a dotted key of more than "
                            f"{MAX_DEPTH} parts (nested more than {MAX_DEPTH} levels deep); "
                            "flatten it")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(f"{shown}{_printable(toml_message(exc))}") from None
    except RecursionError:
        # Arrays or inline tables nested hundreds deep: find where, without recursion.
        found = nesting_error(text, MAX_DEPTH)
        at = f":{found[0]}:{found[1]}" if found else ""
        raise CampaignError(f"{shown}{at}: arrays or inline tables nested too deeply (at "
                            f"most {MAX_DEPTH} levels)") from None
    except ValueError as exc:
        # tomllib lets Python's own limit on integer digits escape as a ValueError.
        m = re.search(r"[0-9][0-9_]{4000,}", text)
        at = "" if m is None else ":{}:{}".format(
            text.count("\n", 0, m.start()) + 1, m.start() - text.rfind("\n", 0, m.start()))
        raise CampaignError(f"{shown}{at}: an integer far outside TOML's 64-bit range "
                            f"({type(exc).__name__})") from None
    return campaign_from_data(data, path, text)


def campaign_from_data(data: dict[str, Any], path: Path, text: str | None = None) -> Campaign:
    """Validate parsed TOML. Each part is checked on its own so that every problem in the
    file, of type or of meaning, is reported at once. `text`, the file's text, is used
    only to give the line of each problem."""
    shown = str(path)
    problems = Problems(data)
    _check_values(data, problems)
    if problems:
        # Values no part of qwenbuild can hold (too deep, inf, NUL): nothing else is
        # checked, as the checks themselves would trip over them.
        raise _error(shown, problems, text)
    campaign = _campaign_from_data(data, path, problems)
    if problems:
        raise _error(shown, problems, text)
    assert campaign is not None
    return campaign


#: Most problems listed; a file with more is surely broken throughout (or generated).
MAX_PROBLEMS = 200


def _error(shown: str, problems: list[str], text: str | None) -> CampaignError:
    listed = problems[:MAX_PROBLEMS]
    wanted = [getattr(p, "loc", ()) for p in listed]
    positions = Positions(text, [loc for loc in wanted if loc]) if text is not None else None
    lines = []
    for problem in listed:
        loc = getattr(problem, "loc", ())
        found = positions.find(loc) if positions is not None and loc else None
        at = f":{found[0]}:{found[1]}" if found else ""
        message = _printable(str(problem))
        if len(message) > _MAX_MESSAGE:
            message = message[:_MAX_MESSAGE - 3] + "..."
        lines.append(f"{shown}{at}: {message}")
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"{shown}: and {len(problems) - MAX_PROBLEMS} more problems, not listed; "
                     "fix these first")
    return CampaignError(lines)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _printable(text: str) -> str:
    """One line, whatever a value or a library's message holds: control characters (a
    newline would start a line that looks like another message) are shown escaped."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _check_values(data: Any, problems: Problems) -> None:
    """Values that no field takes, anywhere in the file: nesting deeper than MAX_DEPTH,
    inf and nan (no JSON form: the job key could not be made), integers outside TOML's
    64-bit range, NUL characters (no file name or prompt holds one). Iterative: a file
    nested 100,000 levels deep must not exhaust the stack here either."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        loc, value = stack.pop()
        if len(loc) > MAX_DEPTH:
            problems.at(loc[:MAX_DEPTH], f"nested more than {MAX_DEPTH} levels deep; flatten "
                                         "it")
            continue
        # Children are pushed last first, so that problems come in the file's order.
        if isinstance(value, dict):
            for key, item in reversed(value.items()):
                if "\0" in key:
                    problems.at(loc, f"the key {key_text(key)} contains a NUL character")
                    continue
                stack.append((loc + (key,), item))
        elif isinstance(value, list):
            stack.extend((loc + (i,), value[i]) for i in range(len(value) - 1, -1, -1))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.at(loc, f"{value} is not allowed: use a finite number")
        elif isinstance(value, int) and not isinstance(value, bool) \
                and not -2**63 <= value < 2**63:
            problems.at(loc, "integer out of TOML's 64-bit range")
        elif isinstance(value, str) and "\0" in value:
            problems.at(loc, "contains a NUL character (\\u0000)")


def _campaign_from_data(data: dict[str, Any], path: Path, problems: Problems) -> Campaign | None:
    parts: dict[str, Any] = {}
    defaults_failed: set[str] = set()
    fields = CampaignFile.model_fields
    for key in data:
        if key not in fields and key != "copy":
            names = [f.alias or n for n, f in fields.items()]
            problems.at((key,), f"unknown key{did_you_mean(key, names)}")
    if "campaign" not in data:
        problems.at(("campaign",), "missing required table [campaign] (with at least name)")
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
                problems.at((key,), f"expected a table, got {describe_value(value)}")
            else:
                parts[name] = value
    if "assets" not in data:
        problems.at(("assets",), "no assets; add at least one [[assets]] table")
    _check_copy_scoping(data, problems)
    if parts.get("campaign") is None:
        return None
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
    return _resolve(whole, path.resolve(), problems, indexed, str(path),
                    parts.get("exports", []))


#: Keys that, found in a copy table, were surely meant for the asset (or [defaults]): in
#: TOML every `key = value` after `[assets.copy]` belongs to the copy, up to the next header.
_ASSET_FIELDS = frozenset(f.alias or n for n, f in AssetSpec.model_fields.items())
_PROVIDER_FIELDS = frozenset(n for n in ProviderTable.model_fields if n != "options")


def _check_copy_scoping(data: dict[str, Any], problems: Problems) -> None:
    """The TOML scoping trap: `aspects = [...]` written after `[assets.copy]` is a copy key,
    not the asset's. Refused rather than warned about: it silently drops an aspect ratio or
    a provider and changes the copy, so the image is generated (and paid for) again."""
    tables: list[tuple[tuple[Any, ...], Any, str, str]] = []
    assets = data.get("assets")
    if isinstance(assets, list):
        tables += [(("assets", i, "copy"), item.get("copy"), "[assets.copy]", "asset")
                   for i, item in enumerate(assets) if isinstance(item, dict)]
    defaults = data.get("defaults")
    if isinstance(defaults, dict):
        tables.append((("defaults", "copy"), defaults.get("copy"), "[defaults.copy]",
                       "[defaults]"))
    for loc, copy, header, owner in tables:
        if not isinstance(copy, dict):
            continue
        for key in copy:
            if key in _ASSET_FIELDS:
                problems.at(loc + (key,), (
                    f"{key!r} is a field of the {owner}, but here it is a key of the copy: in "
                    f"TOML, every key after {header} belongs to the copy. Move the line above "
                    f"{header} (or rename the copy key)"))
    providers = data.get("providers")
    if isinstance(providers, dict):
        for name, table in providers.items():
            options = table.get("options") if isinstance(table, dict) else None
            if not isinstance(options, dict):
                continue
            for key in options:
                if key in _PROVIDER_FIELDS:
                    problems.at(("providers", name, "options", key), (
                        f"{key!r} is a field of the provider table, not an option: in TOML, "
                        f"every key after [providers.{key_text(name)}.options] belongs to the "
                        "options. Move the line above that header"))


def _validate(model: type[BaseModel], value: Any, loc: tuple[Any, ...], data: dict[str, Any],
              problems: Problems, failed: set[str] | None = None) -> Any:
    """Validate one part; on errors, report them and validate the rest without the keys in
    error (their names go into `failed`), so the rest can still be checked for meaning."""
    try:
        return model.model_validate(value)
    except PydanticValidationError as exc:
        problems.extend(Problem(text, err_loc)
                        for text, err_loc in pydantic_problems(exc, data, loc))
        bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
    except RecursionError:
        problems.at(loc, "nested too deeply")
        return None
    if failed is not None:
        failed.update(bad)
    if not isinstance(value, dict):
        return None
    try:
        return model.model_validate({k: v for k, v in value.items() if k not in bad})
    except PydanticValidationError:
        return None


def _validate_exports(value: Any, data: dict[str, Any],
                      problems: Problems) -> list[tuple[int, ExportSpec]]:
    """The `[[exports]]` entries that are valid on their own, with their index in the file."""
    if not isinstance(value, list):
        problems.at(("exports",), f"expected an array of tables [[exports]], got "
                                  f"{describe_value(value)}")
        return []
    return [(i, spec) for i, item in enumerate(value)
            if (spec := _validate(ExportSpec, item, ("exports", i), data, problems)) is not None]


def _validate_assets(value: Any, data: dict[str, Any],
                     problems: Problems) -> list[tuple[int, AssetSpec, frozenset[str]]]:
    """The assets that are valid on their own, with their index in the file."""
    if not isinstance(value, list):
        problems.at(("assets",), f"expected an array of tables [[assets]], got "
                                 f"{describe_value(value)}")
        return []
    if not value:
        problems.at(("assets",), "no assets; add at least one [[assets]] table")
    specs = []
    for i, item in enumerate(value):
        failed: set[str] = set()
        spec = _validate(AssetSpec, item, ("assets", i), data, problems, failed)
        if spec is not None:
            specs.append((i, spec, frozenset(failed)))
    return specs


# -- resolution and checks beyond types ---------------------------------------------------


def template_root(campaign_folder: Path, repo_root: Path) -> Path:
    """The folder that template files must stay in: the git repository holding the
    campaign; outside git, the nearest folder above it holding the `.gitignore` that
    `qwenbuild init` writes at a repository's root (never the home folder or /); else the
    campaign's own folder."""
    if (repo_root / ".git").exists():
        return repo_root
    home = Path.home().resolve() if "HOME" in os.environ else None
    for folder in (campaign_folder, *campaign_folder.parents):
        if folder == home or folder.parent == folder:
            break
        if (folder / ".gitignore").is_file():
            return folder
    return campaign_folder


def _resolve(model: CampaignFile, path: Path, problems: Problems,
             indexed: list[tuple[int, AssetSpec, frozenset[str]]], shown: str,
             exports: list[tuple[int, ExportSpec]] | None = None) -> Campaign | None:
    root = path.parent
    repo_root = find_repo_root(root)
    allow_external = model.campaign.allow_external_templates
    boundary = template_root(root, repo_root)
    template_dirs = []
    before = len(problems)
    for i, name in enumerate(model.campaign.templates):
        loc = ("campaign", "templates", i)
        try:
            folder = (root / name).resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            problems.at(loc, f"template folder {name!r} cannot be resolved ({exc})")
            continue
        problem = check_folder(folder)
        if problem == "no such folder":
            problems.at(loc, f"template folder not found: {name} (resolved to {folder})")
        elif problem is not None:
            problems.at(loc, f"{name!r} cannot be a template folder: {problem}")
        elif not allow_external and not inside(folder, boundary):
            problems.at(loc, f"template folder {name!r} ({folder}) is outside the repository "
                             f"({boundary}); set campaign.allow_external_templates = true to "
                             "allow it")
        else:
            template_dirs.append(folder)
    prompts = Prompts(template_dirs, None if allow_external else boundary)
    # With a template folder in error, "unknown template" would only repeat it.
    folders_ok = len(problems) == before

    providers: dict[str, ProviderSpec] = {}
    tables = dict(model.providers)
    if "preview" not in tables:
        tables["preview"] = ProviderTable(kind="preview")
    folded_names: dict[str, str] = {}
    for name, table in tables.items():
        where: tuple[Any, ...] = ("providers", name)
        if not is_name(name) or name.lower() in WINDOWS_RESERVED:
            problems.at(where, f"invalid provider name {quoted(name)}: use letters, digits, "
                               "'-' and '_', starting with a letter or digit, at most 100 "
                               "characters (it becomes a folder name)")
            continue
        if name.lower() in folded_names:
            # Provider names are folder names: these would collide on Windows and macOS.
            problems.at(where, f"provider name {name!r} differs only in case from "
                               f"{folded_names[name.lower()]!r}; use another name")
            continue
        folded_names[name.lower()] = name
        if table.kind not in KINDS:
            hint = did_you_mean(table.kind, list(KINDS))
            problems.at(where + ("kind",), f"unknown provider kind {table.kind!r}{hint}; "
                                           f"known: {', '.join(KINDS)}")
            continue
        if name == "preview" and table.kind != "preview":
            problems.at(where + ("kind",), "the name 'preview' is the built-in preview "
                                           "provider; give this provider another name")
            continue
        cls = provider_class(table.kind)
        options = dict(table.options)
        for key, value in (table.model_extra or {}).items():
            if key in options:
                problems.at(where + (key,), f"set both here and in "
                                            f"{loc_path(where, {})}.options")
            options[key] = value
        model_id = table.model or cls.default_model()
        bad = cls.check_config(model_id, options)
        for key, msg in bad:
            in_options = key in table.options and key not in (table.model_extra or {})
            problems.at(where + (("options", key) if in_options else (key,)), msg)
        if not _check_base_url(name, table, cls, problems) or bad:
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
        problems.at(("defaults",), "set either seeds or variants, not both")
    locales = tuple(model.campaign.locales or ())
    check_locale_list(locales, problems)
    check_locales(locales, model.locales, ("locales",), problems)
    check_locales(locales, defaults.locales or {}, ("defaults", "locales"), problems)
    assets: list[Asset] = []
    seen: dict[str, str] = {}
    for index, spec, failed in indexed:
        where = ("assets", index)
        _unique_file_name(spec.id, "asset id", where + ("id",), seen, problems)
        check_locales(locales, spec.locales or {}, ("assets", index, "locales"), problems)
        asset = _resolve_asset(spec, index, defaults, model, root, repo_root, prompts,
                               known_providers, problems,
                               failed if folders_ok else failed | {"template"})
        if asset is not None:
            assets.append(asset)
    check_parents(assets, providers, locales, problems)
    assets = inherit_copy(assets, {spec.id: (spec.copy_, spec.locales)
                                   for _, spec, _ in indexed}, locales)
    _check_file_names(assets, problems)
    try:
        out = (root / model.campaign.out).resolve()
        out_is_file = out.exists() and not out.is_dir()
    except (OSError, RuntimeError, ValueError) as exc:
        problems.at(("campaign", "out"), f"{model.campaign.out!r} cannot be resolved ({exc})")
        return None
    if out_is_file:
        problems.at(("campaign", "out"), f"{model.campaign.out} is a file; the output root "
                                         "must be a folder (or not exist yet)")
    resolved_exports = resolve_exports(exports or [], assets, problems)
    if problems:
        return None
    return Campaign(
        path=path,
        shown=shown,
        name=model.campaign.name,
        root=root,
        out=out,
        template_dirs=tuple(template_dirs),
        repo_root=repo_root,
        brand=dict(model.brand),
        copy=dict(model.copy_),
        providers=providers,
        assets=tuple(assets),
        budget=model.campaign.budget,
        exports=resolved_exports,
        template_root=None if allow_external else boundary,
        locales=locales,
    )


def _check_base_url(name: str, table: ProviderTable, cls: Any, problems: Problems) -> bool:
    """The base URL a provider will use, from its table or else from `<KIND>_BASE_URL`:
    checked now, not after a build's first request and its retries. Never shows a secret."""
    env = cls.info.base_url_env
    if table.base_url is not None:
        problem = base_url_problem(table.base_url)
        if problem is not None:
            problems.at(("providers", name, "base_url"), f"invalid base URL: {problem}")
            return False
    elif env and os.environ.get(env):
        problem = base_url_problem(os.environ[env])
        if problem is not None:
            problems.at(("providers", name), f"the environment variable {env} (the base URL "
                                             f"of this provider) is invalid: {problem}")
            return False
    return True


def _resolve_asset(
    spec: AssetSpec,
    index: int,
    defaults: AssetFields,
    model: CampaignFile,
    root: Path,
    repo_root: Path,
    prompts: Any,
    known_providers: set[str],
    problems: Problems,
    failed: frozenset[str] = frozenset(),
) -> Asset | None:
    here = ("assets", index)
    before = len(problems)
    bad = False  # a problem of this asset (one of [defaults], once, is still its problem)

    def pick(field: str) -> tuple[Any, tuple[Any, ...]]:
        """The value of `field` and where it was written: the asset, else [defaults]."""
        value = getattr(spec, field)
        if value is None:
            return getattr(defaults, field), ("defaults", field)
        return value, here + (field,)

    def report(loc: tuple[Any, ...], message: str) -> None:
        nonlocal bad
        bad = True
        problems.at(loc, message)

    template, where = pick("template")
    if "template" in failed:
        bad = True  # its type error is reported already
    elif template is None and spec.from_ is not None:
        template = ""  # made by editing its parent: the edit instruction is its prompt
    elif template is None:
        report(here + ("template",), "no template; set it here or in [defaults]")
    elif not prompts.exists(template):
        hint = did_you_mean(template, prompts.available())
        looked = ", ".join(str(f) for f in prompts.folders) or "no template folder"
        report(where, f"unknown template {template!r}{hint} (looked in {looked})")
    elif (refused := prompts.problem(template)) is not None:
        report(where, f"template {template!r} is not read: {refused}")
    aspects, where = pick("aspects")
    if aspects is None and "aspects" not in failed:
        report(here + ("aspects",), "no aspect ratios; set them here or in [defaults]")
    aspects = aspects or []
    for i, aspect in enumerate(aspects):
        if aspect not in ASPECTS:
            hint = did_you_mean(aspect, list(ASPECTS))
            report(where + (i,), f"unsupported aspect ratio {aspect!r}{hint}; supported: "
                                 f"{', '.join(ASPECTS)}")
    if len(set(aspects)) != len(aspects):
        report(where, "an aspect ratio is listed twice")
    providers, where = pick("providers")
    providers = providers or ["preview"]
    for i, name in enumerate(providers):
        if name not in known_providers:
            hint = did_you_mean(name, sorted(known_providers))
            shown_name = name if is_name(name) else "NAME"
            report(where + (i,), f"unknown provider {quoted(name)}{hint}; declare it as "
                                 f"[providers.{shown_name}] (known: "
                                 f"{', '.join(sorted(known_providers))})")
    if len(set(providers)) != len(providers):
        report(where, "a provider is listed twice")

    if spec.seeds is not None and spec.variants is not None:
        report(here, "set either seeds or variants, not both")
    if spec.seeds is not None or spec.variants is not None:
        seeds, variants = spec.seeds, spec.variants
        where = here + ("seeds",)
    else:
        seeds, variants = defaults.seeds, defaults.variants
        where = ("defaults", "seeds")
    if seeds is None:
        seeds = [derive_seed(spec.id, i) for i in range(variants or 1)]
    for i, seed in enumerate(seeds):
        if not 0 <= seed <= MAX_SEED:
            report(where + (i,), f"seed {seed} is out of range 0..{MAX_SEED}")
    if len(set(seeds)) != len(seeds):
        report(where, "a seed is listed twice")

    references: list[Path] = []
    allow_external = model.campaign.allow_external_references
    refs, where = pick("references")
    for i, ref in enumerate(refs or []):
        try:
            resolved = (root / ref).resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            report(where + (i,), f"reference image {ref!r} cannot be resolved ({exc})")
            continue
        problem = check_regular(resolved, MAX_REFERENCE_BYTES, resolved=True)
        if problem == "no such file":
            report(where + (i,), f"reference image not found: {ref}")
        elif problem is not None:
            report(where + (i,), f"reference image {ref!r} is not read: {problem}")
        elif not allow_external and not inside(resolved, repo_root):
            report(where + (i,), f"{ref} is outside the repository ({repo_root}); set "
                                 "campaign.allow_external_references = true to allow it")
        elif (problem := header_problem(resolved)) is not None:
            # From the header alone: a decompression bomb is refused before any decoding.
            report(where + (i,), f"reference image {ref!r} is not read: {problem}")
        references.append(resolved)

    edit_images: dict[str, Path | None] = {}
    for name in ("init_image", "mask"):
        value, where = pick(name)
        if value is None:
            edit_images[name] = None
            continue
        try:
            resolved = (root / value).resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            report(where, f"image {value!r} cannot be resolved ({exc})")
            continue
        problem = check_regular(resolved, MAX_REFERENCE_BYTES, resolved=True)
        if problem == "no such file":
            report(where, f"image not found: {value}")
        elif problem is not None:
            report(where, f"image {value!r} is not read: {problem}")
        elif not allow_external and not inside(resolved, repo_root):
            report(where, f"{value} is outside the repository ({repo_root}); set "
                          "campaign.allow_external_references = true to allow it")
        elif (problem := header_problem(resolved)) is not None:
            report(where, f"image {value!r} is not read: {problem}")
        edit_images[name] = resolved
    has_init = pick("init_image")[0] is not None
    if pick("mask")[0] is not None and not has_init:
        report(pick("mask")[1], "a mask needs init_image (the image it masks)")
    if pick("strength")[0] is not None and not has_init:
        report(pick("strength")[1], "strength needs init_image (the image it moves from)")
    if pick("mask_margin")[0] is not None and pick("mask")[0] is None:
        report(pick("mask_margin")[1], "mask_margin needs a mask")

    copy = {**model.copy_, **(defaults.copy_ or {}), **(spec.copy_ or {})}
    expect_text, _ = pick("expect_text")
    locales = model.campaign.locales or []
    if bad or len(problems) > before:
        return None
    return Asset(
        id=spec.id,
        index=index,
        template=template,
        negative=pick("negative")[0] or "",
        aspects=tuple(aspects),
        providers=tuple(providers),
        seeds=tuple(seeds),
        references=tuple(references),
        prompt_extend=bool(pick("prompt_extend")[0] or False),
        copy=copy,
        expect_text=None if expect_text is None else tuple(expect_text),
        parent=parent_ref(spec.from_),
        edit=pick("edit")[0],
        locale_strategy=pick("locale_strategy")[0] or "generate",
        locale_copy=locale_copies(locales, copy,
                                  [model.locales, defaults.locales, spec.locales]),
        init_image=edit_images["init_image"],
        mask=edit_images["mask"],
        strength=None if pick("strength")[0] is None else float(pick("strength")[0]),
        mask_margin=pick("mask_margin")[0],
    )


def resolve_exports(indexed: list[tuple[int, ExportSpec]], assets: Iterable[Asset],
                    problems: Problems) -> tuple[Export, ...]:
    """Check the `[[exports]]` entries for meaning (types are checked already)."""
    aspects_used = {aspect for asset in assets for aspect in asset.aspects}
    trust_assets = not problems  # with broken assets, "no asset has this aspect" misleads
    seen: dict[str, str] = {}
    exports = []
    for index, spec in indexed:
        here = ("exports", index)
        before = len(problems)
        _unique_file_name(spec.name, "export name", here + ("name",), seen, problems)
        if spec.aspect not in ASPECTS:
            problems.at(here + ("aspect",), f"unsupported aspect ratio {spec.aspect!r}"
                                            f"{did_you_mean(spec.aspect, list(ASPECTS))}; "
                                            f"supported: {', '.join(ASPECTS)}")
        elif trust_assets and spec.aspect not in aspects_used:
            problems.at(here + ("aspect",), f"no asset is built at {spec.aspect} (used: "
                                            f"{', '.join(sorted(aspects_used))}); add it to "
                                            "an asset's aspects")
        if len(problems) == before:
            exports.append(Export(spec.name, spec.aspect, spec.width, spec.height, spec.format,
                                  spec.quality, (float(spec.focus[0]), float(spec.focus[1]))))
    return tuple(exports)


def _unique_file_name(name: str, what: str, loc: tuple[Any, ...], seen: dict[str, str],
                      problems: Problems) -> None:
    """Refuse a name (`what`: "asset id", "export name") that becomes a file or folder name
    Windows reserves, or one another asset or export has in another case (`seen`: the
    names so far, lower-cased, with where they are)."""
    folded = name.lower()
    if folded in WINDOWS_RESERVED:
        problems.at(loc, f"{name!r} is a reserved file name on Windows")
    if folded in seen:
        problems.at(loc, f"duplicate {what} {name!r} (also {seen[folded]}; "
                         f"{what.split()[1]}s differing only in case collide on some file "
                         "systems)")
    else:
        seen[folded] = f"{loc[0]}[{loc[1]}]"


def _check_file_names(assets: list[Asset], problems: Problems) -> None:
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
                problems.at(("assets", asset.index, "id"),
                            f"its output {stem}.* is also an output of asset {other!r}; "
                            "rename one of them")
                break
