"""Locales and assets made from assets: resolving and checking them when a campaign loads.

- Locale copy: for locale L, an asset's copy is its master copy with the campaign's
  `[locales.L]`, then `[defaults.locales.L]`, then the asset's `[assets.locales.L]` merged
  over it (the more specific wins; a locale table's key wins over the master copy's).
- Parents: `from` names another asset; the graph of `from` must have no cycle, every
  parent must exist and have the aspect, provider and variant asked for, and every
  provider of an asset that is made by editing (a `from`, or locales made with the `edit`
  strategy) must take a reference image to edit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..providers import provider_class
from ..providers.base import ProviderSpec
from .messages import Problems, did_you_mean
from .models import ParentSpec
from .resolved import Asset, ParentRef


def check_locales(locales: Sequence[str], tables: Mapping[str, Any], where: tuple[Any, ...],
                  problems: Problems) -> None:
    """Locale tables (`[locales.de]`) must name a locale of `campaign.locales`."""
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            problems.at(where + (name,), f"expected a table of copy for locale {name!r}, "
                                         f"got {type(table).__name__}")
            continue
        if not locales:
            problems.at(where + (name,), f"a copy table for locale {name!r}, but the "
                                         "campaign has no locales; add campaign.locales = "
                                         "[...] (the master first)")
        elif name not in locales:
            problems.at(where + (name,), f"unknown locale {name!r}"
                                         f"{did_you_mean(name, list(locales))}; "
                                         f"campaign.locales is {list(locales)}")


def check_locale_list(locales: Sequence[str], problems: Problems) -> None:
    folded: dict[str, str] = {}
    for i, locale in enumerate(locales):
        if locale.lower() in folded:
            problems.at(("campaign", "locales", i),
                        f"{locale!r} is listed twice (also {folded[locale.lower()]!r}; "
                        "locales name folders, and case differences collide on some file "
                        "systems)")
        folded.setdefault(locale.lower(), locale)


def locale_copies(locales: Sequence[str], copy: Mapping[str, Any],
                  layers: Sequence[Mapping[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """The copy of every locale but the master's: the master copy with each layer's table
    for that locale merged over it, in order (campaign, defaults, asset)."""
    found: dict[str, dict[str, Any]] = {}
    for locale in locales[1:]:
        merged = dict(copy)
        for layer in layers:
            merged.update((layer or {}).get(locale) or {})
        found[locale] = merged
    return found


def inherit_copy(assets: Sequence[Asset], own: Mapping[str, tuple[Mapping[str, Any] | None,
                                                                    Mapping[str, Any] | None]],
                 locales: Sequence[str]) -> list[Asset]:
    """Assets made from another take its copy: the parent's copy (per locale) with the
    asset's own copy and own locale tables merged over it. `own` maps each asset id to its
    `copy` and `locales` tables as written. Parents are resolved first; a missing parent or
    a cycle (reported elsewhere) leaves the asset as it is."""
    by_id = {a.id: a for a in assets}
    done: dict[str, Asset] = {}

    def resolve(asset: Asset, seen: frozenset[str]) -> Asset:
        if asset.id in done:
            return done[asset.id]
        ref = asset.parent
        if ref is None or ref.asset not in by_id or ref.asset in seen:
            done[asset.id] = asset
            return asset
        parent = resolve(by_id[ref.asset], seen | {asset.id})
        copy, tables = own.get(asset.id, (None, None))
        merged = {**parent.copy, **(copy or {})}
        per_locale = {}
        for locale in locales[1:]:
            per_locale[locale] = {**parent.copy_for(locale), **(copy or {}),
                                  **((tables or {}).get(locale) or {})}
        result = replace(asset, copy=merged, locale_copy=per_locale)
        done[asset.id] = result
        return result

    return [resolve(a, frozenset()) for a in assets]


def parent_ref(value: str | ParentSpec | None) -> ParentRef | None:
    if value is None:
        return None
    if isinstance(value, str):
        return ParentRef(value)
    return ParentRef(value.asset, value.aspect, value.provider, value.variant)


def check_parents(assets: Sequence[Asset], providers: Mapping[str, ProviderSpec],
                  locales: Sequence[str], problems: Problems) -> None:
    """Parents exist and have what is asked of them, no cycles, providers that edit."""
    by_id = {a.id: a for a in assets}
    for asset in assets:
        here = ("assets", asset.index)
        parent = asset.parent
        if parent is not None:
            found = by_id.get(parent.asset)
            if parent.asset == asset.id:
                problems.at(here + ("from",), "an asset cannot be made from itself")
                continue
            if found is None:
                problems.at(here + ("from",), f"unknown asset {parent.asset!r}"
                                              f"{did_you_mean(parent.asset, list(by_id))}")
                continue
            if parent.aspect is not None and parent.aspect not in found.aspects:
                problems.at(here + ("from", "aspect"),
                            f"{found.id} is not built at {parent.aspect} (its aspects: "
                            f"{', '.join(found.aspects)})")
            if parent.provider is not None and parent.provider not in found.providers:
                problems.at(here + ("from", "provider"),
                            f"{found.id} is not built by {parent.provider!r} (its providers: "
                            f"{', '.join(found.providers)})")
            if parent.variant is not None and parent.variant > len(found.seeds):
                problems.at(here + ("from", "variant"),
                            f"{found.id} has {len(found.seeds)} variant(s); "
                            f"{parent.variant} asked")
        edits = parent is not None or (len(locales) > 1 and asset.locale_strategy == "edit")
        if edits:
            for i, name in enumerate(asset.providers):
                spec = providers.get(name)
                if spec is None:
                    continue  # reported already (unknown provider)
                model = provider_class(spec.kind).models.get(spec.model)
                if model is not None and model.max_references == 0:
                    why = ("is made from another asset" if parent is not None
                           else "localises by editing (locale_strategy = \"edit\")")
                    problems.at(here + ("providers", i),
                                f"{name!r} ({spec.kind} {spec.model}) cannot edit an image, "
                                f"and this asset {why}; use a model that takes reference "
                                "images (Qwen-Image 2.0 at Runware, AI/ML API or "
                                "EmpirioLabs, or the preview)")
    cycle = _cycle({a.id: a.parent.asset for a in assets
                    if a.parent is not None and a.parent.asset in by_id})
    if cycle:
        first = by_id[cycle[0]]
        problems.at(("assets", first.index, "from"),
                    f"assets made from each other in a circle: {' -> '.join(cycle)}")


def _cycle(edges: Mapping[str, str]) -> list[str] | None:
    for start in sorted(edges):
        seen = [start]
        node = edges.get(start)
        while node is not None:
            if node in seen:
                return seen[seen.index(node):] + [node]
            seen.append(node)
            node = edges.get(node)
    return None
