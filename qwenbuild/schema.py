"""The JSON Schema of campaign files, generated from the pydantic models.

Editors with TOML schema support (taplo, VS Code's Even Better TOML) read it through a
first line `#:schema path/to/campaign.schema.json` and then complete keys, show each field's
description and flag mistakes as you type. `qwenbuild schema` prints it; the repository
keeps a copy in `schema/campaign.schema.json` (a test checks it is current).
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
TITLE = "qwenbuild campaign file"


def campaign_schema() -> dict[str, Any]:
    """The schema as a dict: pydantic's, with the key names of the file (`copy`, not the
    Python name), and the closed lists of aspect ratios, provider kinds and models made
    into enums so that editors can offer them."""
    from .campaign import CampaignFile
    from .providers import KINDS
    from .sizes import ASPECTS

    generated = CampaignFile.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = {"$schema": SCHEMA_DIALECT, "title": TITLE, **generated}
    schema["title"] = TITLE
    schema["description"] = (
        "A qwenbuild campaign: brand, copy, providers and assets, built into images for each "
        "aspect ratio and provider. See the README's 'The campaign file'.")
    _drop_null(schema)
    defs = schema["$defs"]
    aspect_enum = {"enum": list(ASPECTS)}
    for model in ("AssetFields", "AssetSpec"):
        _property(defs[model], "aspects")["items"] = {"type": "string", **aspect_enum}
    _property(defs["ExportSpec"], "aspect").update(aspect_enum)
    _property(defs["ProviderTable"], "kind")["enum"] = list(KINDS)
    return schema


def _drop_null(node: Any) -> None:
    """TOML has no null: `X | None` fields (None meaning "not set") become plain `X`, so
    editors do not offer null, and their `"default": null` goes too."""
    if isinstance(node, dict):
        options = node.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del node["anyOf"]
            if len(rest) == 1:
                node.update(rest[0])
            else:
                node["anyOf"] = rest
            if node.get("default", ...) is None:
                del node["default"]
        for value in node.values():
            _drop_null(value)
    elif isinstance(node, list):
        for value in node:
            _drop_null(value)


def _property(model_schema: dict[str, Any], name: str) -> dict[str, Any]:
    prop: dict[str, Any] = model_schema["properties"][name]
    return prop


def schema_text() -> str:
    """The schema as written to schema/campaign.schema.json (and printed)."""
    return json.dumps(campaign_schema(), indent=2, ensure_ascii=False) + "\n"
