"""Reading the review page's data files (`<out>/review/*.js`) in tests, as the page does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def read_script(path: Path) -> Any:
    """The JSON argument of the one call a data file makes: `window.__qb_x({...});` or
    `window.__qb_x(JSON.parse("..."));`."""
    text = path.read_text("utf-8")
    assert text.startswith("window.__qb_") and text.endswith(");\n"), text[:80]
    body = text[text.index("(") + 1:text.rindex(")")]
    if body.startswith("JSON.parse("):
        return json.loads(json.loads(body[len("JSON.parse("):-1]))
    return json.loads(body)


@dataclass
class PageData:
    index: dict[str, Any]
    #: Every output: its chunk details, plus `row` (the index's short row) and `chunk`.
    outputs: dict[str, dict[str, Any]]
    decisions: dict[str, Any] | None

    def texts(self) -> dict[str, str]:
        """The index's text-check status of every output ("" when not checked)."""
        codes = ["", "green", "amber", "red", "unreadable"]
        return {rel: codes[o["row"][8]] for rel, o in self.outputs.items()}


def read_page(out: Path) -> PageData:
    folder = out / "review"
    index = read_script(folder / "index.js")
    details: dict[str, dict[str, Any]] = {}
    where: dict[str, str] = {}
    for name in index["chunks"]:
        for rel, item in read_script(folder / name).items():
            details[rel] = item
            where[rel] = name
    outputs = {}
    for row in index["outputs"]:
        name = index["assets"][row[1]][0] + row[0][1:] if row[0].startswith("*") else row[0]
        rel = f"{index['aspect_dirs'][row[2]]}/{index['providers'][row[3]]}/{name}"
        assert rel in details, f"{rel} is in the index but in no chunk"
        outputs[rel] = {**details[rel], "row": row, "chunk": where[rel]}
    assert set(outputs) == set(details)
    decisions_file = folder / "decisions.js"
    decisions = read_script(decisions_file) if decisions_file.is_file() else None
    return PageData(index, outputs, decisions)
