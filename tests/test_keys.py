"""The job key: stable across processes, changed by every input that can change an image,
unchanged by anything that cannot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qwenbuild.campaign import load_campaign
from qwenbuild.keys import KEY_VERSION, canonical_json, job_key
from qwenbuild.plan import plan

from .conftest import SIMPLE_TEMPLATE, build_file_tree

PINNED = "c1aa8d206368d16659dc53e4dde4133abbf0560b0e67283ab52b70625ef7d9fe"

BASE_FIELDS = {
    "kind": "runware",
    "model": "alibaba:qwen-image@2.0",
    "prompt": "A poster reading exactly: \"HELLO\"",
    "negative": "blurry text",
    "width": 1536,
    "height": 2048,
    "seed": 7,
    "references": ["ab" * 32],
    "prompt_extend": False,
    "options": {"steps": 28, "CFGScale": 7.5},
}


def test_key_is_sha256_hex() -> None:
    key = job_key(BASE_FIELDS)
    assert len(key) == 64 and int(key, 16) >= 0


def test_canonical_form_ignores_order_and_whole_floats() -> None:
    shuffled = dict(reversed(list(BASE_FIELDS.items())))
    shuffled["options"] = {"CFGScale": 7.5, "steps": 28.0}
    assert job_key(shuffled) == job_key(BASE_FIELDS)
    assert canonical_json({"b": 1, "a": [1.0, "é"]}) == '{"a":[1,"é"],"b":1}'


def test_same_key_in_another_process() -> None:
    code = (
        "import json, sys; from qwenbuild.keys import job_key; "
        "print(job_key(json.loads(sys.stdin.read())))"
    )
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(BASE_FIELDS),
                         capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert out == job_key(BASE_FIELDS)


def test_key_of_fixed_inputs_is_pinned() -> None:
    """A change here changes every cache key in every brand repo: bump KEY_VERSION."""
    assert KEY_VERSION == 1
    assert job_key(BASE_FIELDS) == PINNED


CAMPAIGN = """\
[campaign]
name = "k"
out = "{out}"

[brand]
name = "Acme"

[providers.tiny]
kind = "preview"
scale = 0.1
concurrency = {concurrency}

[[assets]]
id = "{asset_id}"
template = "poster.j2"
aspects = ["1:1"]
providers = ["tiny"]
seeds = [5]
[assets.copy]
headline = "HELLO"
"""


def _key(tmp_path: Path, **overrides: object) -> str:
    values = {"out": "out", "concurrency": 2, "asset_id": "a", **overrides}
    folder = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
    build_file_tree(folder, {"templates/poster.j2": SIMPLE_TEMPLATE,
                             "campaign.toml": CAMPAIGN.format(**values)})
    (job,) = plan(load_campaign(folder / "campaign.toml")).jobs
    return job.key


def test_what_cannot_change_the_image_does_not_change_the_key(tmp_path: Path) -> None:
    base = _key(tmp_path)
    assert _key(tmp_path, out="elsewhere") == base  # output paths
    assert _key(tmp_path, concurrency=7) == base  # scheduling


def test_reference_bytes_are_part_of_the_key(tmp_path: Path) -> None:
    from io import BytesIO

    from PIL import Image

    def png(color: str) -> bytes:
        buf = BytesIO()
        Image.new("RGB", (8, 8), color).save(buf, "PNG")
        return buf.getvalue()

    body = CAMPAIGN.format(out="out", concurrency=1, asset_id="a").replace(
        'seeds = [5]', 'seeds = [5]\nreferences = ["ref.png"]')
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE, "campaign.toml": body,
                               "ref.png": png("red")})
    first = plan(load_campaign(tmp_path / "campaign.toml")).jobs[0].key
    (tmp_path / "ref.png").write_bytes(png("blue"))
    second = plan(load_campaign(tmp_path / "campaign.toml")).jobs[0].key
    assert first != second


# -- every input of every provider kind reaches the key, through a real plan -----------------

PROVIDER_CAMPAIGN = """\
[campaign]
name = "k"

[brand]
name = "Acme"

[providers.p]
{table}

[[assets]]
id = "a"
template = "poster.j2"
aspects = ["{aspect}"]
providers = ["p"]
seeds = [{seed}]
negative = "{negative}"
prompt_extend = {extend}
references = [{refs}]
[assets.copy]
headline = "{headline}"
"""

TABLES = {
    "runware 2.0": 'kind = "runware"\nmodel = "alibaba:qwen-image@2.0"',
    "runware 2.0-pro": 'kind = "runware"\nmodel = "alibaba:qwen-image@2.0-pro"',
    "runware 20B": 'kind = "runware"\nmodel = "runware:108@1"\nsteps = 20',
    "aimlapi": 'kind = "aimlapi"',
    "empiriolabs": 'kind = "empiriolabs"',
    "preview": 'kind = "preview"\nscale = 0.5',
}


def _plan_key(tmp_path: Path, table: str, **values: object) -> str:
    from io import BytesIO

    from PIL import Image

    base: dict[str, object] = {"aspect": "1:1", "seed": 5, "negative": "blurry text",
                               "extend": "false", "refs": "", "headline": "HELLO"}
    base.update(values)
    folder = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
    files: dict[str, str | bytes] = {
        "templates/poster.j2": SIMPLE_TEMPLATE,
        "campaign.toml": PROVIDER_CAMPAIGN.format(table=table, **base)}
    for name, color in (("red.png", "red"), ("blue.png", "blue")):
        buf = BytesIO()
        Image.new("RGB", (8, 8), color).save(buf, "PNG")
        files[name] = buf.getvalue()
    build_file_tree(folder, files)
    (job,) = plan(load_campaign(folder / "campaign.toml")).jobs
    return job.key


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_input_changes_the_key_of_every_provider(tmp_path: Path, name: str) -> None:
    table = TABLES[name]
    # Runware 2.0 and 2.0-Pro take no references together with a negative prompt.
    refs = name in ("aimlapi", "empiriolabs", "preview")
    base = _plan_key(tmp_path, table, refs='"red.png"' if refs else "")
    changes: dict[str, dict[str, object]] = {
        "copy (the prompt)": {"headline": "HELLO!"},
        "aspect (the size)": {"aspect": "16:9"},
        "seed": {"seed": 6},
        "negative prompt": {"negative": "blurry"},
    }
    if refs:
        changes["reference bytes"] = {"refs": '"blue.png"'}
    if name not in ("runware 20B", "preview"):  # the others cannot rewrite prompts
        changes["prompt_extend"] = {"extend": "true"}
    for what, change in changes.items():
        if refs and "refs" not in change:
            change = {**change, "refs": '"red.png"'}
        assert _plan_key(tmp_path, table, **change) != base, (name, what)
    option = {"runware 20B": "CFGScale = 7.5", "aimlapi": "watermark = true",
              "empiriolabs": 'variant = "qwen-image-2.0-pro"', "preview": "scale = 0.6",
              "runware 2.0": 'output_format = "JPG"', "runware 2.0-pro": 'output_format = "JPG"'}
    changed = table.replace("scale = 0.5", "") + "\n" + option[name]
    assert _plan_key(tmp_path, changed, refs='"red.png"' if refs else "") != base, name


@pytest.mark.parametrize(("kind", "explicit"), [
    ('kind = "aimlapi"', "watermark = false"),
    ('kind = "empiriolabs"', 'variant = "qwen-image-2.0"'),
    ('kind = "empiriolabs"', 'response_format = "b64_json"\nsync = true'),
    ('kind = "runware"', 'output_format = "PNG"\ndelivery = "async"\noutput_type = "base64Data"'),
])
def test_options_that_do_not_change_the_image_do_not_change_the_key(tmp_path: Path, kind: str,
                                                                  explicit: str) -> None:
    """Defaults written out, and transport-only options, send the same image request."""
    assert _plan_key(tmp_path, kind + "\n" + explicit) == _plan_key(tmp_path, kind)
