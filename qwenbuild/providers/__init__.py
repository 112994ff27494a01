"""Provider kinds. Modules are imported only when a campaign uses their kind."""

from __future__ import annotations

import importlib

from .base import Provider

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
    return getattr(importlib.import_module(module_name), class_name)
