"""Property-based tests: the key's canonical form, and size resolution for every provider."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenbuild.campaign import load_campaign
from qwenbuild.plan import plan
from qwenbuild.providers import KINDS, provider_class
from qwenbuild.providers.base import ProviderSpec
from qwenbuild.sizes import ASPECTS, RATIO_TOLERANCE, SizeRule, ratio_error

from .conftest import SIMPLE_TEMPLATE

# -- a tiny TOML writer that can shuffle the order of keys and tables -----------------------


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def _shuffled(d: dict[str, Any], rng: random.Random) -> list[tuple[str, Any]]:
    items = list(d.items())
    rng.shuffle(items)
    return items


def to_toml(doc: dict[str, Any], rng: random.Random) -> str:
    """Tables in random order, keys in random order, inline tables shuffled too."""
    def shuffle_deep(v: Any) -> Any:
        if isinstance(v, dict):
            return dict(_shuffled({k: shuffle_deep(x) for k, x in v.items()}, rng))
        if isinstance(v, list):
            return [shuffle_deep(x) for x in v]
        return v

    chunks = []
    for name, table in _shuffled({k: v for k, v in doc.items() if k != "assets"}, rng):
        if name == "providers":
            for pname, ptable in _shuffled(table, rng):
                chunks.append(f"[providers.{pname}]\n" + "".join(
                    f"{json.dumps(k)} = {_value(shuffle_deep(v))}\n"
                    for k, v in _shuffled(ptable, rng)))
            continue
        chunks.append(f"[{name}]\n" + "".join(
            f"{json.dumps(k)} = {_value(shuffle_deep(v))}\n" for k, v in _shuffled(table, rng)))
    rng.shuffle(chunks)
    assets = []
    for asset in doc["assets"]:
        plain = {k: v for k, v in asset.items() if k != "copy"}
        text = "[[assets]]\n" + "".join(
            f"{json.dumps(k)} = {_value(shuffle_deep(v))}\n" for k, v in _shuffled(plain, rng))
        if "copy" in asset:
            text += "[assets.copy]\n" + "".join(
                f"{json.dumps(k)} = {_value(shuffle_deep(v))}\n"
                for k, v in _shuffled(asset["copy"], rng))
        assets.append(text)
    return "\n".join(chunks + assets)


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                max_size=40)
copy_values = st.one_of(texts, st.lists(texts, max_size=3), st.integers(-5, 5))


@st.composite
def campaigns(draw: st.DrawFn) -> dict[str, Any]:
    copy = draw(st.dictionaries(st.sampled_from(["subtitle", "badge", "cta"]),
                                copy_values, max_size=4))
    brand = draw(st.dictionaries(st.sampled_from(["palette", "style", "mood", "x"]),
                                 copy_values, max_size=4))
    brand["name"] = draw(texts)
    return {
        "campaign": {"name": "prop", "templates": ["templates"]},
        "brand": brand,
        "copy": {"footer": draw(texts)},
        "defaults": {"template": "poster.j2", "negative": draw(texts),
                     "aspects": draw(st.lists(st.sampled_from(list(ASPECTS)), min_size=1,
                                              max_size=3, unique=True))},
        "providers": {"tiny": {"kind": "preview", "scale": 0.1,
                               "concurrency": draw(st.integers(1, 8))}},
        "assets": [{"id": f"a{i}", "providers": ["tiny"],
                    "seeds": draw(st.lists(st.integers(0, 2**31), min_size=1, max_size=2,
                                           unique=True)),
                    "copy": {"headline": draw(texts), **copy}} for i in range(2)],
    }


def _keys(toml_text: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "templates").mkdir()
        (root / "templates" / "poster.j2").write_text(SIMPLE_TEMPLATE)
        (root / "campaign.toml").write_text(toml_text, encoding="utf-8")
        return {job.output: job.key for job in plan(load_campaign(root / "campaign.toml")).jobs}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(campaigns(), st.integers(0, 2**32))
def test_order_of_tables_and_keys_does_not_change_keys(doc: dict[str, Any], shuffle: int) -> None:
    first = _keys(to_toml(doc, random.Random(shuffle)))
    second = _keys(to_toml(doc, random.Random(shuffle + 1)))
    assert first == second
    assert len(set(first.values())) == len(first)  # distinct jobs, distinct keys


MUTATIONS = {
    "headline": lambda d: d["assets"][0]["copy"].update(
        headline=d["assets"][0]["copy"]["headline"] + "!"),
    "negative": lambda d: d["defaults"].update(negative=d["defaults"]["negative"] + " x"),
    "seed": lambda d: d["assets"][0].update(seeds=[s + 1 for s in d["assets"][0]["seeds"]]),
    "brand": lambda d: d["brand"].update(name=d["brand"]["name"] + "?"),
    "footer": lambda d: d["copy"].update(footer=d["copy"]["footer"] + "."),
    "scale": lambda d: d["providers"]["tiny"].update(scale=0.2),
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(campaigns(), st.sampled_from(sorted(MUTATIONS)))
def test_every_input_that_can_change_the_image_changes_the_key(doc: dict[str, Any],
                                                               mutation: str) -> None:
    before = _keys(to_toml(doc, random.Random(0)))
    changed = json.loads(json.dumps(doc))
    MUTATIONS[mutation](changed)
    after = _keys(to_toml(changed, random.Random(0)))
    touched = [o for o in before if o.endswith(("/a0.png", "/a0-v1.png", "/a0-v2.png"))]
    if mutation in {"negative", "brand", "footer", "scale"}:
        touched = list(before)
    for output in touched:
        assert after.get(output) != before[output], (mutation, output)
    if mutation in {"headline", "seed"}:
        untouched = [o for o in before if "/a1" in o]
        assert all(after[o] == before[o] for o in untouched)


# -- sizes --------------------------------------------------------------------------------


def _all_models() -> list[tuple[str, str]]:
    return [(kind, model) for kind in KINDS for model in provider_class(kind).models]


def test_every_aspect_of_every_model_resolves_to_an_accepted_close_size() -> None:
    for kind, model in _all_models():
        cls = provider_class(kind)
        provider = cls(ProviderSpec(name="p", kind=kind, model=model, concurrency=1, options={}))
        rule = provider.models[model].size_rule
        for aspect in ASPECTS:
            if not provider.supports_aspect(aspect):
                continue
            width, height = provider.size_for(aspect)
            assert rule.accepts(width, height), (kind, model, aspect, width, height)
            assert ratio_error(width, height, aspect) <= RATIO_TOLERANCE, (kind, model, aspect)


@settings(max_examples=200, deadline=None)
@given(
    step=st.sampled_from([1, 8, 16, 32, 64]),
    min_side=st.integers(64, 768),
    span=st.integers(256, 2048),
    native=st.integers(256, 2560),
    aspect=st.sampled_from(list(ASPECTS)),
)
def test_any_rule_resolves_to_an_accepted_size(step: int, min_side: int, span: int, native: int,
                                               aspect: str) -> None:
    rule = SizeRule(step=step, min_side=min_side, max_side=min_side + span,
                    max_area=(min_side + span) ** 2, native_area=native * native)
    width, height = rule.resolve(aspect)
    assert rule.accepts(width, height)
    # When a size within the tolerance exists, the one chosen is within it.
    a, b = ASPECTS[aspect]
    exists = any(
        rule.accepts(w, h) and ratio_error(w, h, aspect) <= RATIO_TOLERANCE
        for w in range(-(-rule.min_side // step) * step, rule.max_side + 1, step)
        for h in {(w * b // a) // step * step, -(-(w * b // a) // step) * step}
        if h > 0
    )
    if exists:
        assert ratio_error(width, height, aspect) <= RATIO_TOLERANCE
