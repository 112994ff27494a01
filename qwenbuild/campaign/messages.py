"""Messages about campaign files: pydantic's errors rewritten as `key.path: what is wrong`,
TOML syntax errors with line and column, and "did you mean" hints."""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from .models import CampaignFile


def did_you_mean(value: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def toml_message(exc: tomllib.TOMLDecodeError) -> str:
    """What follows the file name: `:3:5: TOML syntax error: ...` (`file:line:column`)."""
    # tomllib says "Expected '=' after a key in a key/value pair (at line 3, column 5)".
    text = str(exc)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)\Z", text)
    if m:
        return f":{m.group(1)}:{m.group(2)}: TOML syntax error: {text[:m.start()]}"
    m = re.search(r"\s*\(at end of document\)\Z", text)
    if m:
        return f": at end of file: TOML syntax error: {text[:m.start()]}"
    return f": TOML syntax error: {text}"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_text(key: Any) -> str:
    """A key as TOML would write it: bare when it can be, else quoted with escapes, so a
    key holding a newline or a control character never breaks a message in two."""
    text = str(key)
    if _BARE_KEY.fullmatch(text):
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    quoted = re.sub(r"[\u007f-\u009f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]",
                    lambda m: f"\\u{ord(m.group()):04x}", quoted)
    return quoted if len(quoted) <= 60 else quoted[:56] + '..."'


def quoted(value: Any) -> str:
    """A name for a message: `'draft'`, or `"draft\\n"` when it holds odd characters."""
    text = str(value)
    return repr(text) if _BARE_KEY.fullmatch(text) else key_text(text)


def pydantic_problems(exc: PydanticValidationError, data: dict[str, Any],
                       prefix: tuple[Any, ...] = ()) -> list[tuple[str, tuple[Any, ...]]]:
    """(message, key path) of each error."""
    problems = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        path = loc_path(loc, data)
        kind = err["type"]
        if kind == "extra_forbidden":
            field = str(loc[-1])
            hint = did_you_mean(field, _fields_at(loc[:-1]))
            problems.append((f"{path}: unknown key{hint}", loc))
        elif kind == "missing":
            problems.append((f"{path}: missing required key", loc))
        else:
            problems.append((f"{path}: {_type_message(err)}", loc))
    return problems


def loc_path(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """A key path as messages show it: `assets[0] (hero).copy.headline`."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{key_text(item)}" if parts else key_text(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
        label = {"assets": "id", "exports": "name"}.get(loc[0])
        if (len(parts) == 2 and label and isinstance(item, int)
                and isinstance(node, dict) and isinstance(node.get(label), str)):
            shown = node[label]
            plain = shown.isprintable() and len(shown) <= 60
            parts[-1] += f" ({shown if plain else key_text(shown)})"
    return "".join(parts) or "(top level)"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Key names a model at `loc` accepts (for suggestions)."""
    model: Any = CampaignFile
    for item in loc:
        if isinstance(item, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(item) or next(
            (f for f in model.model_fields.values() if f.alias == item), None)
        if field is None:
            # A dict key (e.g. a provider name): step into the dict's value type.
            continue
        model = _inner_model(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "float_type": "a number",
}


def _type_message(err: Any) -> str:
    kind = err["type"]
    value = err.get("input")
    got = describe_value(value)
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {got}"
    if kind == "string_pattern_mismatch":
        return (f"invalid name {value!r}: use letters, digits, '-' and '_', starting with a "
                "letter or digit, at most 100 characters (it becomes a file name)")
    if kind == "model_attributes_type":
        return f"expected a table, got {got}"
    if kind == "too_short":
        return f"expected at least {err.get('ctx', {}).get('min_length', 1)} item, got none"
    return f"{err['msg']} (got {got})"


def describe_value(value: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
             list: "a list", dict: "a table"}
    kind = names.get(type(value), type(value).__name__)
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{kind} {shown}" if not isinstance(value, dict | list) else kind


class Problem(str):
    """One problem, as `key.path: what is wrong`, with the key path it is about (for the
    line number)."""

    loc: tuple[Any, ...]

    def __new__(cls, text: str, loc: tuple[Any, ...] = ()) -> Problem:
        self = super().__new__(cls, text)
        self.loc = tuple(loc)
        return self


class Problems(list[str]):
    """The problems found so far, each once, in the order found."""

    def __init__(self, data: Any = None) -> None:
        super().__init__()
        self.data = data if isinstance(data, dict) else {}
        self._seen: set[str] = set()

    def at(self, loc: tuple[Any, ...], message: str) -> None:
        """A problem at key path `loc` (shown as `assets[0] (hero).template`)."""
        self.add(Problem(f"{loc_path(loc, self.data)}: {message}", loc))

    def add(self, problem: str) -> None:
        if problem not in self._seen:
            self._seen.add(problem)
            self.append(problem if isinstance(problem, Problem) else Problem(problem))

    def extend(self, items: Iterable[str]) -> None:
        for item in items:
            self.add(item)
