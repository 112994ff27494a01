"""The campaign JSON Schema: current, described, and true to the demo campaigns."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO

SCHEMA_FILE = REPO / "schema" / "campaign.schema.json"
DEMOS = sorted((REPO / "projects").glob("*/*.toml"))
DIRECTIVE = "#:schema ../../schema/campaign.schema.json"


def _properties(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, prop in schema.get("properties", {}).items():
        yield name, prop
    for model, sub in schema.get("$defs", {}).items():
        for name, prop in sub.get("properties", {}).items():
            yield f"{model}.{name}", prop


def test_committed_schema_is_what_qwenbuild_schema_prints(run) -> None:
    result = run("schema")
    assert result.code == 0
    assert SCHEMA_FILE.read_text(encoding="utf-8") == result.out, (
        "schema/campaign.schema.json is out of date: qwenbuild schema > "
        "schema/campaign.schema.json")


def test_schema_describes_every_field_with_the_files_key_names(run) -> None:
    schema = json.loads(run("schema").out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "qwenbuild campaign file"
    assert schema["additionalProperties"] is False
    undescribed = [name for name, prop in _properties(schema) if not prop.get("description")]
    assert undescribed == []
    names = {name for name, _ in _properties(schema)}
    assert {"copy", "AssetSpec.copy", "CampaignSection.budget", "exports",
            "ExportSpec.focus"} <= names
    assert not any(name.endswith("copy_") for name in names)
    aspects = schema["$defs"]["AssetSpec"]["properties"]["aspects"]["items"]["enum"]
    assert "9:16" in aspects
    assert "null" not in json.dumps(schema)  # TOML has no null


@pytest.mark.parametrize("path", DEMOS, ids=[f"{p.parent.name}/{p.name}" for p in DEMOS])
def test_demo_campaigns_point_at_the_schema_and_follow_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == DIRECTIVE
    assert (path.parent / DIRECTIVE.split()[1]).resolve() == SCHEMA_FILE
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(tomllib.loads(text), json.loads(SCHEMA_FILE.read_text()))


def test_schema_catches_what_the_loader_refuses() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_FILE.read_text())
    good = {"campaign": {"name": "x"}, "assets": [{"id": "a", "aspects": ["1:1"]}]}
    jsonschema.validate(good, schema)
    for bad in (
        {"campaign": {"name": "x"}, "assets": [{"id": "a", "tempalte": "poster.j2"}]},
        {"campaign": {"name": "x"}, "assets": [{"id": "a", "aspects": ["5:7"]}]},
        {"campaign": {"name": "x", "budget": -1}, "assets": [{"id": "a"}]},
        {"campaign": {"name": "x"}, "assets": [{"id": "a"}],
         "exports": [{"name": "e", "aspect": "1:1", "width": 10, "height": 10,
                      "format": "gif"}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
