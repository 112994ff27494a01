"""Provider kinds. Modules are imported only when a campaign uses their kind.

Adding a provider: its module (a `Provider` subclass with `info`, `models`, `options`
and `generate`), one line in `KINDS`, and its wire-specific tests (see docs/architecture.md).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ..sizes import ASPECTS
from .base import Provider, ProviderSpec

#: kind -> "module:Class", imported lazily so start-up stays quick.
KINDS: dict[str, str] = {
    "preview": "qwenbuild.providers.preview:PreviewProvider",
    "runware": "qwenbuild.providers.runware:RunwareProvider",
    "aimlapi": "qwenbuild.providers.aimlapi:AimlapiProvider",
    "empiriolabs": "qwenbuild.providers.empiriolabs:EmpiriolabsProvider",
}


def provider_class(kind: str) -> type[Provider]:
    """The class implementing a provider kind. Raises KeyError for an unknown kind."""
    module_name, _, class_name = KINDS[kind].partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls


def catalogue() -> list[dict[str, Any]]:
    """Every kind and model: title, price, the size of each aspect, options, key variable
    and whether it is set (what `qwenbuild providers` shows)."""
    rows = []
    for kind in KINDS:
        cls = provider_class(kind)
        info = cls.info
        for model_id, model in cls.models.items():
            provider = cls(ProviderSpec(name=kind, kind=kind, model=model_id, concurrency=1,
                                        options={}))
            rows.append({
                "kind": kind, "model": model_id, "title": model.title,
                "billable": info.billable,
                "price_usd": model.price_usd,
                # How an estimated price is worked out (empty: the list price).
                "price_note": model.price_note,
                "sizes": {a: "x".join(map(str, provider.size_for(a))) for a in ASPECTS
                          if provider.supports_aspect(a)},
                "api_key_env": info.api_key_env,
                "api_key_set": bool(os.environ.get(info.api_key_env))
                if info.api_key_env else None,
                "base_url_env": info.base_url_env,
                "options": sorted(k for k, o in cls.options.items()
                                  if o.models is None or model_id in o.models),
                "option_help": {k: o.description for k, o in sorted(cls.options.items())
                                if o.models is None or model_id in o.models},
                # Asset fields only some models take (image-to-image and inpainting).
                "asset_fields": (["init_image", "mask", "strength", "mask_margin"]
                                 if model.takes_init_image else []),
            })
    return rows
