"""Prompt templates: sandboxed, strict, and errors that name asset, template and variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwenbuild.campaign import load_campaign
from qwenbuild.errors import InputError
from qwenbuild.plan import plan

from .conftest import REPO, build_file_tree, tree_snapshot

CAMPAIGN = """\
[campaign]
name = "p"

[brand]
name = "Acme"
palette = ["teal"]

[defaults]
template = "{template}"
aspects = ["3:4", "16:9"]
negative = "{negative}"

[[assets]]
id = "poster"
[assets.copy]
headline = "HELLO"
"""


def _plan(tmp_path: Path, template: str, negative: str = "blurry",
          name: str = "t.j2") -> object:
    build_file_tree(tmp_path, {
        f"templates/{name}": template,
        "campaign.toml": CAMPAIGN.format(template=name, negative=negative),
    })
    return plan(load_campaign(tmp_path / "campaign.toml"))


def _error(tmp_path: Path, template: str, **kw: str) -> list[str]:
    with pytest.raises(InputError) as info:
        _plan(tmp_path, template, **kw)
    return info.value.problems


def test_context_and_whitespace(tmp_path: Path) -> None:
    the_plan = _plan(tmp_path, """
        {{ asset.orientation }} {{ asset.width }}x{{ asset.height }} {{ asset.aspect }}
        for {{ brand.name }} in {{ campaign.name }}:
           "{{ copy.headline }}"   seed={{ asset.seed }} via {{ asset.provider }}/{{ asset.kind }}
    """)
    portrait, landscape = the_plan.jobs
    assert portrait.request.prompt == (
        f'portrait {portrait.width}x{portrait.height} 3:4 for Acme in p: "HELLO" '
        f"seed={portrait.seed} via preview/preview")
    assert landscape.request.prompt.startswith("landscape ")
    assert portrait.request.negative == "blurry"


def test_missing_variable_names_asset_template_and_variable(tmp_path: Path) -> None:
    (problem,) = _error(tmp_path, "Line one\n{{ copy.headline }} {{ copy.subtitle }}\n")
    assert problem == ("asset poster: template t.j2: undefined variable (line 2): copy.subtitle: "
                       "the copy of asset poster has no key 'subtitle'. Its keys: headline")


def test_missing_top_level_variable(tmp_path: Path) -> None:
    (problem,) = _error(tmp_path, "{{ headline }}")
    assert problem == ("asset poster: template t.j2: undefined variable (line 1): headline "
                       "(did you mean copy.headline?)")


def test_syntax_error_has_line(tmp_path: Path) -> None:
    (problem,) = _error(tmp_path, "ok\n{% if copy.headline %}\nno end\n")
    assert problem.startswith("asset poster: template t.j2: syntax error at line 2: "
                              "Unexpected end of template")


def test_negative_prompt_is_a_template_too(tmp_path: Path) -> None:
    the_plan = _plan(tmp_path, "{{ copy.headline }}",
                     negative="blurry, {{ brand.avoid | default('logo') }}")
    assert the_plan.jobs[0].request.negative == "blurry, logo"
    (problem,) = _error(tmp_path / "2", "{{ copy.headline }}", negative="{{ brand.nope }}")
    assert problem.startswith("asset poster: negative prompt: undefined variable")
    assert "nope" in problem


@pytest.mark.parametrize("source", [
    "{{ copy.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ brand.update({'x': 1}) }}",
])
def test_sandbox_stops_templates_reaching_python_internals(tmp_path: Path, source: str) -> None:
    problems = _error(tmp_path, source)
    assert len(problems) == 1
    assert problems[0].startswith("asset poster: template t.j2:")
    assert "sandbox" in problems[0] or "undefined" in problems[0]


def test_template_errors_via_cli_exit_2_and_write_nothing(tmp_path: Path, run,
                                                          cache_dir: Path) -> None:
    build_file_tree(tmp_path, {
        "templates/t.j2": "{{ copy.subtitle }}",
        "campaign.toml": CAMPAIGN.format(template="t.j2", negative="x"),
    })
    before = tree_snapshot(tmp_path)
    result = run("build", tmp_path / "campaign.toml")
    assert result.code == 2
    assert ("ERROR: asset poster: template t.j2: undefined variable (line 1): copy.subtitle"
            in result.err)
    assert "Traceback" not in result.err
    assert tree_snapshot(tmp_path) == before
    assert tree_snapshot(cache_dir) == {}


def test_shipped_templates_render_every_demo_within_provider_limits() -> None:
    for campaign_file in sorted((REPO / "projects").glob("*/campaign.toml")):
        the_plan = plan(load_campaign(campaign_file))
        assert the_plan.jobs
        for job in the_plan.jobs:
            if job.parent is not None:  # an edit: its prompt is the edit instruction
                assert 100 < len(job.request.prompt) <= 2000, (campaign_file, job.asset)
                continue
            assert 300 < len(job.request.prompt) <= 2000, (campaign_file, job.asset)
            assert len(job.request.negative) <= 500
            assert job.request.prompt.count('"') >= 2  # the copy is quoted exactly


def test_shipped_templates_need_a_headline(tmp_path: Path) -> None:
    for name in ("poster.j2", "infographic.j2", "social.j2"):
        body = (REPO / "qwenbuild" / "templates" / name).read_text()
        folder = tmp_path / name
        macros = (REPO / "qwenbuild/templates/_macros.j2").read_text()
        build_file_tree(folder, {"templates/" + name: body,
                                 "templates/_macros.j2": macros,
                                 "campaign.toml": CAMPAIGN.format(template=name, negative="x")
                                 .replace('headline = "HELLO"', 'subtitle = "only"')})
        with pytest.raises(InputError) as info:
            plan(load_campaign(folder / "campaign.toml"))
        assert "headline" in info.value.problems[0]
