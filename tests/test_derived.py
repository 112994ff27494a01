"""Assets made from assets, and locales: edits of a parent's output, dependency order,
staleness that follows the parent, refusals before any request."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO, build_file_tree, run_subprocess
from .fakes.runware import API_PATH, FAKE_KEY, FakeRunware, TaskError
from .fakes.server import FakeServer

TEMPLATE = 'A {{ asset.orientation }} poster. Headline: "{{ copy.headline }}".'

CAMPAIGN = """\
[campaign]
name = "derived"
{campaign}

[brand]
name = "Acme"

[defaults]
template = "poster.j2"
providers = ["{provider}"]
seeds = [7]

{providers}

[[assets]]
id = "key"
aspects = ["1:1"]
[assets.copy]
headline = "SUMMER MARKET"
subtitle = "Fridays"

[[assets]]
id = "story"
from = "key"
aspects = ["9:16"]
edit = "Reframe as {{{{ asset.aspect }}}}; keep \\"{{{{ copy.headline }}}}\\" (story-edit)"

[[assets]]
id = "other"
aspects = ["1:1"]
[assets.copy]
headline = "UNRELATED"
{extra}
"""

PREVIEW = '[providers.draft]\nkind = "preview"\nscale = 0.1\n'
RUNWARE = '[providers.rw]\nkind = "runware"\nmodel = "alibaba:qwen-image@2.0"\n'


def campaign(root: Path, provider: str = "draft", providers: str = PREVIEW,
             campaign: str = "", extra: str = "") -> Path:
    build_file_tree(root, {
        "templates/poster.j2": TEMPLATE,
        "campaign.toml": CAMPAIGN.format(provider=provider, providers=providers,
                                         campaign=campaign, extra=extra),
    })
    return root / "campaign.toml"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRunware]:
    app = FakeRunware()
    with FakeServer(app) as server:
        monkeypatch.setenv("RUNWARE_BASE_URL", server.url + API_PATH)
        monkeypatch.setenv("RUNWARE_API_KEY", FAKE_KEY)
        yield app
        app.release()


def statuses(run, camp: Path) -> dict[str, tuple[str, str]]:
    plan = run("plan", camp, "--json").json()
    return {j["output"]: (j["status"], j["reason"]) for j in plan["jobs"]}


def test_a_child_is_an_edit_of_its_parents_output(tmp_path: Path, run,
                                                  fake: FakeRunware) -> None:
    camp = campaign(tmp_path, "rw", RUNWARE)
    result = run("build", camp, "--json")
    assert result.code == 0, result.err
    parent = (tmp_path / "out/1x1/rw/key.png").read_bytes()
    (story,) = fake.tasks_for("story-edit")
    assert story["positivePrompt"].startswith('Reframe as 9:16; keep "SUMMER MARKET"')
    sent = story["inputs"]["referenceImages"][0]
    assert base64.b64decode(sent.split(",", 1)[1]) == parent  # the parent's output itself
    # The parent was generated before its child asked for it.
    prompts = [t["positivePrompt"] for t in fake.tasks()]
    assert prompts.index(next(p for p in prompts if "SUMMER" in p and "Reframe" not in p)) \
        < prompts.index(story["positivePrompt"])
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["outputs"]["9x16/rw/story.png"]["parent"] == "1x1/rw/key.png"
    assert "parent" not in manifest["outputs"]["1x1/rw/other.png"]


def test_editing_the_parent_makes_exactly_its_children_stale(tmp_path: Path, run) -> None:
    camp = campaign(tmp_path)
    assert run("build", camp).code == 0
    assert {s for s, _ in statuses(run, camp).values()} == {"up_to_date"}
    camp.write_text(camp.read_text().replace('headline = "SUMMER MARKET"',
                                             'headline = "WINTER MARKET"'))
    found = statuses(run, camp)
    assert found["out/1x1/draft/key.png"][0] == "build"
    assert found["out/9x16/draft/story.png"] == ("build", "parent changes")
    assert found["out/1x1/draft/other.png"] == ("up_to_date", "up to date")
    report = run("build", camp, "--json").json()
    built = {j["output"] for j in report["jobs"] if j["status"] == "generated"}
    assert built == {"out/1x1/draft/key.png", "out/9x16/draft/story.png"}
    # The story inherits the copy: its edit instruction says the new headline.
    assert "WINTER MARKET" in (tmp_path / "out/9x16/draft/story.png").read_bytes().decode(
        "latin-1")


def test_a_parent_restored_unchanged_leaves_its_children_alone(tmp_path: Path, run) -> None:
    camp = campaign(tmp_path)
    assert run("build", camp).code == 0
    story = tmp_path / "out/9x16/draft/story.png"
    before = story.read_bytes()
    (tmp_path / "out/1x1/draft/key.png").unlink()  # restored from the cache: same bytes
    found = statuses(run, camp)
    assert found["out/1x1/draft/key.png"] == ("cached", "output missing")
    assert found["out/9x16/draft/story.png"] == ("build", "parent changes")  # until known
    report = run("build", camp, "--json").json()
    by_output = {j["output"]: j["status"] for j in report["jobs"]}
    assert by_output["out/1x1/draft/key.png"] == "cached"
    assert by_output["out/9x16/draft/story.png"] == "up_to_date"
    assert story.read_bytes() == before


def test_a_regenerated_parent_with_new_bytes_makes_the_child_stale(tmp_path: Path, run,
                                                                  fake: FakeRunware) -> None:
    camp = campaign(tmp_path, "rw", RUNWARE)
    assert run("build", camp).code == 0
    # Runware reports a different seed for every new task: new provenance, new bytes.
    assert run("build", camp, "--regenerate", "--only", "key").code == 0
    found = statuses(run, camp)
    assert found["out/9x16/rw/story.png"] == ("build", "parent changed")
    assert found["out/1x1/rw/other.png"][0] == "up_to_date"


def test_a_failed_parent_pays_nothing_for_its_children(tmp_path: Path, run,
                                                       fake: FakeRunware) -> None:
    camp = campaign(tmp_path, "rw", RUNWARE)
    fake.fail_when("SUMMER MARKET", TaskError(400, "invalidPositivePrompt", "refused"),
                   times=None)
    result = run("build", camp, "--json")
    assert result.code == 1
    jobs = {j["output"]: j for j in result.json()["jobs"]}
    assert jobs["out/1x1/rw/key.png"]["status"] == "failed"
    assert jobs["out/9x16/rw/story.png"]["status"] == "failed"
    assert "its parent 1x1/rw/key.png failed" in jobs["out/9x16/rw/story.png"]["error"]
    assert jobs["out/1x1/rw/other.png"]["status"] == "generated"
    assert fake.tasks_for("story-edit") == []  # nothing sent for the child


@pytest.mark.parametrize(("extra", "campaign_table", "message"), [
    ('\n[[assets]]\nid = "a"\nfrom = "b"\naspects = ["1:1"]\n'
     '\n[[assets]]\nid = "b"\nfrom = "a"\naspects = ["1:1"]\n', "",
     "assets made from each other in a circle: a -> b -> a"),
    ('\n[[assets]]\nid = "c"\nfrom = "kee"\naspects = ["1:1"]\n', "",
     "unknown asset 'kee' (did you mean 'key'?)"),
    ('\n[[assets]]\nid = "c"\nfrom = { asset = "key", variant = 3 }\naspects = ["1:1"]\n', "",
     "key has 1 variant(s); 3 asked"),
    ('\n[[assets]]\nid = "c"\nfrom = { asset = "key", aspect = "16:9" }\naspects = ["1:1"]\n',
     "", "key is not built at 16:9"),
    ("", 'locales = ["en", "de"]\n[locales.fr]\nfooter = "x"\n', "unknown locale 'fr'"),
])
def test_broken_derivations_are_input_errors(tmp_path: Path, extra: str, campaign_table: str,
                                             message: str) -> None:
    camp = campaign(tmp_path, extra=extra, campaign=campaign_table.split("\n[locales")[0])
    if "[locales" in campaign_table:
        camp.write_text(camp.read_text() + "\n[locales" + campaign_table.split("[locales")[1])
    result = run_subprocess("plan", camp)
    assert result.code == 2, result.err
    assert message in result.err
    assert "Traceback" not in result.err


def test_a_provider_that_cannot_edit_is_refused_before_any_request(
        tmp_path: Path, fake: FakeRunware) -> None:
    providers = RUNWARE + '[providers.rw20b]\nkind = "runware"\nmodel = "runware:108@1"\n'
    camp = campaign(tmp_path, "rw", providers)
    camp.write_text(camp.read_text().replace(
        'from = "key"\n', 'from = "key"\nproviders = ["rw20b"]\n'))
    result = run_subprocess("build", camp)
    assert result.code == 2
    assert "'rw20b' (runware runware:108@1) cannot edit an image" in result.err
    assert fake.requests == []
    assert not (tmp_path / "out").exists()


def test_a_child_outside_the_selection_uses_the_built_parent(tmp_path: Path, run) -> None:
    camp = campaign(tmp_path)
    alone = run("build", camp, "--only", "story", "--json")
    assert alone.code == 1  # its parent was never built
    (job,) = alone.json()["jobs"]
    assert "its parent 1x1/draft/key.png is not built" in job["error"]
    assert run("build", camp, "--only", "key").code == 0
    again = run("build", camp, "--only", "story", "--json")
    assert again.code == 0 and again.json()["generated"] == 1


def test_plan_shows_the_tree(tmp_path: Path, run) -> None:
    camp = campaign(tmp_path)
    lines = run("plan", camp).out.splitlines()
    key = next(i for i, line in enumerate(lines) if "1x1/draft/key.png" in line)
    assert "└─ out/9x16/draft/story.png  (parent changes)" in lines[key + 1]


LOCALES = """
[locales.de]
footer = "Willkommen"
"""


def test_locales_edit_the_master_and_say_which_text_changes(tmp_path: Path, run,
                                                            fake: FakeRunware) -> None:
    camp = campaign(tmp_path, "rw", RUNWARE, campaign='locales = ["en", "de"]')
    text = camp.read_text().replace(
        'id = "key"\naspects = ["1:1"]\n',
        'id = "key"\naspects = ["1:1"]\nlocale_strategy = "edit"\n').replace(
        'subtitle = "Fridays"\n',
        'subtitle = "Fridays"\n[assets.locales.de]\nheadline = "SOMMERMARKT"\n'
        'subtitle = "Freitags"\n')
    camp.write_text(text)
    result = run("build", camp, "--json")
    assert result.code == 0, result.err
    outputs = {j["output"] for j in result.json()["jobs"]}
    assert outputs == {f"out/{a}/rw/{loc}/{asset}.png" for loc in ("en", "de")
                       for a, asset in (("1x1", "key"), ("9x16", "story"), ("1x1", "other"))}
    (localise,) = fake.tasks_for("Localise this image for the de locale")
    assert ('Replace the text "SUMMER MARKET" with "SOMMERMARKT".'
            in localise["positivePrompt"])
    assert 'Replace the text "Fridays" with "Freitags".' in localise["positivePrompt"]
    en = (tmp_path / "out/1x1/rw/en/key.png").read_bytes()
    sent = localise["inputs"]["referenceImages"][0]
    assert base64.b64decode(sent.split(",", 1)[1]) == en
    # The German story is made from the German key visual, with the German copy.
    (story_de,) = fake.tasks_for('keep "SOMMERMARKT"')
    de_key = (tmp_path / "out/1x1/rw/de/key.png").read_bytes()
    assert base64.b64decode(story_de["inputs"]["referenceImages"][0].split(",", 1)[1]) == de_key
    # "other" is generated in German from its (unlocalised) copy: a fresh image.
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["outputs"]["1x1/rw/de/other.png"]["locale"] == "de"
    assert "parent" not in manifest["outputs"]["1x1/rw/de/other.png"]


def test_campaigns_without_locales_keep_their_paths_and_keys() -> None:
    """The demos without locales or parents build the same keys as 0.1 did (the legacy
    cache test checks the bytes); here: no locale folder, no new manifest field."""
    manifest = json.loads((REPO / "tests/data/legacy-v0.1/expected-manifest.json").read_text())
    for rel, entry in manifest["outputs"].items():
        assert rel.count("/") == 2
        assert "locale" not in entry and "parent" not in entry


def test_the_harbour_demo_builds_offline_with_every_edit(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(REPO / "qwenbuild" / "templates", tmp_path / "qwenbuild" / "templates")
    (tmp_path / ".git").mkdir()  # a copy of the repository: templates stay inside it
    shutil.copytree(REPO / "projects" / "harbour-market", tmp_path / "projects" / "h",
                    ignore=shutil.ignore_patterns("out", "out-live"))
    camp = tmp_path / "projects" / "h" / "campaign.toml"
    result = run_subprocess("build", camp, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.stdout if hasattr(result, "stdout") else result.out)
    assert report["generated"] == 9
    manifest = json.loads((camp.parent / "out/manifest.json").read_text())
    parents = {rel: e.get("parent") for rel, e in manifest["outputs"].items()}
    assert parents["1x1/draft/de/key-visual.png"] == "1x1/draft/en/key-visual.png"
    assert parents["9x16/draft/zh-Hans/story.png"] == "1x1/draft/zh-Hans/key-visual.png"
    assert parents["1x1/draft/en/key-visual.png"] is None
    again = json.loads(run_subprocess("build", camp, "--json").out)
    assert again["up_to_date"] == 9
    digest = hashlib.sha256((camp.parent / "out/manifest.json").read_bytes()).hexdigest()
    assert run_subprocess("build", camp).code == 0
    assert hashlib.sha256((camp.parent / "out/manifest.json").read_bytes()).hexdigest() == digest


def test_the_review_page_lists_every_locale_output(tmp_path: Path, run) -> None:
    """Outputs in locale folders are on the page (its index names each file below
    <aspect>/<provider>/, locale folder included) with their locale and parent."""
    from .pagedata import read_page

    camp = campaign(tmp_path, campaign='locales = ["en", "de"]')
    assert run("build", camp).code == 0
    page = read_page(tmp_path / "out")
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())["outputs"]
    assert set(page.outputs) == set(manifest) and len(manifest) == 6
    story = page.outputs["9x16/draft/de/story.png"]
    assert (story["locale"], story["made_from"]) == ("de", "1x1/draft/de/key.png")


def test_a_child_is_made_from_the_picked_variant_of_its_parent(tmp_path: Path, run) -> None:
    camp = campaign(tmp_path, campaign='locales = ["en", "de"]')
    camp.write_text(camp.read_text().replace(
        'id = "key"\naspects = ["1:1"]\n', 'id = "key"\naspects = ["1:1"]\nseeds = [7, 8]\n'))
    assert run("build", camp).code == 0

    def parents() -> dict[str, str]:
        outputs = json.loads((tmp_path / "out/manifest.json").read_text())["outputs"]
        return {rel: e["parent"] for rel, e in outputs.items() if "story" in rel}

    assert parents() == {"9x16/draft/en/story.png": "1x1/draft/en/key-v1.png",
                         "9x16/draft/de/story.png": "1x1/draft/de/key-v1.png"}
    # Picking the second variant in German remakes the German story from it; the English
    # group (same asset, aspect and provider, another locale) keeps its own default.
    assert run("pick", tmp_path / "out/1x1/draft/de/key-v2.png").code == 0
    plan = statuses(run, camp)
    assert plan["out/9x16/draft/de/story.png"][0] == "build"
    assert plan["out/9x16/draft/en/story.png"] == ("up_to_date", "up to date")
    assert run("build", camp).code == 0
    assert parents() == {"9x16/draft/en/story.png": "1x1/draft/en/key-v1.png",
                         "9x16/draft/de/story.png": "1x1/draft/de/key-v2.png"}
    assert run("pick", tmp_path / "out/1x1/draft/en/key-v2.png").code == 0
    review = (tmp_path / "review.toml").read_text()
    assert review.count('decision = "picked"') == 2  # one pick per locale


def test_children_of_an_approved_parent_are_made_from_the_approved_image(
        tmp_path: Path, run, cache_dir: Path) -> None:
    """The parent's copy changes but the review locks its approved image: its children
    stay made from that image (their own inputs unchanged), and a candidate of the parent
    changes nothing below it."""
    camp = campaign(tmp_path)
    assert run("build", camp).code == 0
    approved = (tmp_path / "out/1x1/draft/key.png").read_bytes()
    assert run("approve", tmp_path / "out/1x1/draft/key.png").code == 0
    camp.write_text(camp.read_text().replace('subtitle = "Fridays"', 'subtitle = "Saturdays"'))
    plan = statuses(run, camp)
    assert plan["out/1x1/draft/key.png"][0] == "locked"
    result = run("build", camp, "--candidates", "--json")
    assert result.code == 0, result.err
    jobs = {j["output"]: j for j in result.json()["jobs"]}
    assert jobs["out/1x1/draft/key.png"]["status"] == "locked"
    assert jobs["out/1x1/draft/key.candidate.png"]["status"] == "generated"
    assert (tmp_path / "out/1x1/draft/key.png").read_bytes() == approved
    # The story inherits the parent's copy, which changed: it is remade, from the approved
    # image (not the candidate).
    assert jobs["out/9x16/draft/story.png"]["status"] == "generated"
    from qwenbuild.store import Store

    record = Store(cache_dir).record(jobs["out/9x16/draft/story.png"]["key"], "png")
    assert record is not None
    shas = json.dumps(record.inputs)
    assert hashlib.sha256(approved).hexdigest() in shas
    candidate = (tmp_path / "out/1x1/draft/key.candidate.png").read_bytes()
    assert hashlib.sha256(candidate).hexdigest() not in shas
