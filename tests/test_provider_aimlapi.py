"""The AI/ML API provider, end to end: real builds through the CLI against a strict fake.

The fake (tests/fakes/aimlapi.py) refuses anything the OpenAPI schema of the provider's
qwen-image-2.0 page does not allow, so every build here also proves the bodies are valid.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qwenbuild.providers.aimlapi import AIMLAPI_RULE, AimlapiProvider
from qwenbuild.providers.base import ProviderSpec
from qwenbuild.sizes import ASPECTS, RATIO_TOLERANCE, ratio_error

from .conftest import SIMPLE_TEMPLATE, Result, build_file_tree
from .fakes import FakeProviders
from .fakes.aimlapi import (
    FAKE_KEY,
    GENERATIONS,
    PRICES,
    BadRequest,
    FakeAimlapi,
    check_body,
    error_reply,
)
from .fakes.server import png_bytes

Run = Callable[..., Result]
STANDARD, PRO = "alibaba/qwen-image-2-0", "alibaba/qwen-image-2-0-pro"

#: The size sent per aspect: the largest accepted (512..1440, step 32) near the ratio.
EXPECTED_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1440, 1440),
    "4:5": (1152, 1440),
    "5:4": (1440, 1152),
    "3:4": (1088, 1440),
    "4:3": (1440, 1088),
    "2:3": (960, 1440),
    "3:2": (1440, 960),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1408, 608),
    "9:21": (608, 1408),
}
SCHEMA_KEYS = {"model", "prompt", "image_size", "enhance_prompt", "negative_prompt", "seed",
               "image_urls", "watermark"}


@pytest.fixture
def api(fake_providers: FakeProviders) -> FakeAimlapi:
    """The fake API on 127.0.0.1, with the provider's env variables pointing at it."""
    app: FakeAimlapi = fake_providers["aimlapi"]
    return app


def write_campaign(
    root: Path,
    *,
    model: str = STANDARD,
    aspects: tuple[str, ...] = ("1:1",),
    assets: tuple[str, ...] = ("HELLO WORLD",),
    provider_extra: str = "",
    defaults_extra: str = "",
    files: dict[str, str | bytes] | None = None,
) -> Path:
    """A campaign with one aimlapi provider `ai`; one asset per headline, seed 11 each."""
    blocks = []
    for i, headline in enumerate(assets):
        blocks.append(f'[[assets]]\nid = "a{i}"\n[assets.copy]\n'
                      f"headline = {json.dumps(headline)}\n")
    text = (
        '[campaign]\nname = "aiml"\n\n[brand]\nname = "Acme"\n\n'
        f'[defaults]\ntemplate = "poster.j2"\naspects = {json.dumps(list(aspects))}\n'
        f'providers = ["ai"]\nseeds = [11]\n{defaults_extra}\n'
        f'[providers.ai]\nkind = "aimlapi"\nmodel = "{model}"\n{provider_extra}\n'
        + "\n".join(blocks)
    )
    build_file_tree(root, {"templates/poster.j2": SIMPLE_TEMPLATE, "campaign.toml": text,
                           **(files or {})})
    return root / "campaign.toml"


def failure_lines(result: Result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("failed:")]


def assert_key_nowhere(result: Result, *folders: Path) -> None:
    """The API key is in no written file and in no output of the CLI."""
    assert FAKE_KEY not in result.out and FAKE_KEY not in result.err
    needle = FAKE_KEY.encode()
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert needle not in path.read_bytes(), path


def png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:
        return img.size


# -- sizes ----------------------------------------------------------------------------------


def test_size_table_per_aspect() -> None:
    """Every aspect gets an accepted size within 1% of its ratio, the largest such one."""
    rows = []
    for aspect in ASPECTS:
        width, height = AIMLAPI_RULE.resolve(aspect)
        error = ratio_error(width, height, aspect)
        rows.append(f"{aspect:>5}  {width:>4} x {height:<4}  {error * 100:.2f}%")
        assert AIMLAPI_RULE.accepts(width, height)
        assert width % 32 == 0 and height % 32 == 0
        assert 512 <= width <= 1440 and 512 <= height <= 1440
        assert error <= RATIO_TOLERANCE, aspect
    print("\n".join(rows))
    assert {a: AIMLAPI_RULE.resolve(a) for a in ASPECTS} == EXPECTED_SIZES


# -- text to image --------------------------------------------------------------------------


@pytest.mark.parametrize("model", [STANDARD, PRO])
def test_text_to_image_builds_every_aspect(model: str, api: FakeAimlapi, tmp_path: Path,
                                           cache_dir: Path, run: Run) -> None:
    aspects = ("1:1", "3:4", "16:9", "21:9")
    path = write_campaign(tmp_path, model=model, aspects=aspects,
                          defaults_extra='negative = "blurry, watermark"')
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["generated"] == 4 and report["failed"] == 0

    posts = [r for r in api.requests if r.method == "POST"]
    assert len(posts) == 4
    for post in posts:
        assert post.path == GENERATIONS
        assert post.headers["authorization"] == f"Bearer {FAKE_KEY}"
        assert post.headers["content-type"] == "application/json"
    bodies = {(b["image_size"]["width"], b["image_size"]["height"]): b
              for b in api.generations()}
    for aspect in aspects:
        width, height = EXPECTED_SIZES[aspect]
        body = bodies[(width, height)]
        assert set(body) == {"model", "prompt", "image_size", "enhance_prompt",
                             "negative_prompt", "seed", "watermark"}
        assert set(body) <= SCHEMA_KEYS
        assert body["model"] == model
        assert 'Headline reading exactly: "HELLO WORLD"' in body["prompt"]
        assert body["image_size"] == {"width": width, "height": height}
        assert width % 32 == 0 and height % 32 == 0
        assert 512 <= width <= 1440 and 512 <= height <= 1440
        assert ratio_error(width, height, aspect) <= RATIO_TOLERANCE
        # prompt_extend is off by default, and the API's default is on: sent explicitly.
        assert body["enhance_prompt"] is False
        assert body["negative_prompt"] == "blurry, watermark"
        assert body["seed"] == 11
        assert body["watermark"] is False

        output = tmp_path / "out" / aspect.replace(":", "x") / "ai" / "a0.png"
        assert png_size(output) == (width, height)

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    entries = manifest["outputs"]
    assert len(entries) == 4
    for entry in entries.values():
        assert entry["cost_usd"] == PRICES[model]
        assert entry["kind"] == "aimlapi" and entry["model"] == model
        assert entry["provider_seed"] == 11
        assert (entry["width"], entry["height"]) in bodies
    assert report["cost_usd"] == pytest.approx(sum(e["cost_usd"] for e in entries.values()))
    assert report["cost_usd"] == pytest.approx(4 * PRICES[model])

    # A second build is a no-op: nothing is sent, not even a download.
    before = len(api.requests)
    again = run("build", path, "--json")
    assert again.code == 0, again.err
    assert again.json()["up_to_date"] == 4
    assert len(api.requests) == before
    assert_key_nowhere(result, tmp_path, cache_dir)
    assert_key_nowhere(again, tmp_path, cache_dir)


def test_prompt_extend_and_watermark_are_sent(api: FakeAimlapi, tmp_path: Path,
                                              run: Run) -> None:
    path = write_campaign(tmp_path, provider_extra="watermark = true",
                          defaults_extra="prompt_extend = true")
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    (body,) = api.generations()
    assert body["enhance_prompt"] is True
    assert body["watermark"] is True
    # No negative prompt in the campaign: the property is left out, not sent empty.
    assert "negative_prompt" not in body


# -- references -----------------------------------------------------------------------------


def test_references_go_as_data_uris(api: FakeAimlapi, tmp_path: Path, run: Run) -> None:
    red, jpeg = png_bytes(40, 30, (255, 0, 0)), png_bytes(20, 20, (0, 0, 255), fmt="JPEG")
    path = write_campaign(tmp_path, defaults_extra='references = ["refs/a.png", "refs/b.jpg"]',
                          files={"refs/a.png": red, "refs/b.jpg": jpeg})
    planned = run("plan", path, "--json")
    assert planned.code == 0, planned.err
    key_before = planned.json()["jobs"][0]["key"]

    result = run("build", path, "--json")
    assert result.code == 0, result.err
    (body,) = api.generations()
    assert set(body) == {"model", "prompt", "image_size", "enhance_prompt", "seed",
                         "image_urls", "watermark"}
    first, second = body["image_urls"]
    assert first.startswith("data:image/png;base64,")
    assert base64.b64decode(first.partition(",")[2]) == red
    assert second.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(second.partition(",")[2]) == jpeg

    # Other bytes in a reference file: another key, so the image is generated again.
    (tmp_path / "refs" / "a.png").write_bytes(png_bytes(40, 30, (0, 255, 0)))
    key_after = run("plan", path, "--json").json()["jobs"][0]["key"]
    assert key_after != key_before
    rebuilt = run("build", path, "--json")
    assert rebuilt.code == 0, rebuilt.err
    assert rebuilt.json()["generated"] == 1
    assert len(api.generations()) == 2


# -- answers and faults ---------------------------------------------------------------------


def test_b64_json_results(api: FakeAimlapi, tmp_path: Path, run: Run) -> None:
    api.b64 = True
    path = write_campaign(tmp_path, aspects=("9:16",))
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    assert api.downloads() == []
    assert png_size(tmp_path / "out" / "9x16" / "ai" / "a0.png") == EXPECTED_SIZES["9:16"]
    assert result.json()["cost_usd"] == pytest.approx(PRICES[STANDARD])


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (error_reply(400, "prompt must be shorter than or equal to 2000 characters", "prompt"),
         "HTTP 400 invalid_request: prompt must be shorter than or equal to 2000 characters "
         "(path prompt; request id req-"),
        (error_reply(400, ["seed must be an integer number", "seed must not be less than 0"],
                     "seed"),
         "HTTP 400 invalid_request: seed must be an integer number; seed must not be less "
         "than 0 (path seed; request id req-"),
        (error_reply(401, "Unauthorized"),
         "HTTP 401 unauthorized: Unauthorized (request id req-"),
        (error_reply(403, "Insufficient credits. Please top up your balance"),
         "HTTP 403 forbidden: Insufficient credits. Please top up your balance (request id"),
    ],
    ids=["400-path", "400-list", "401", "403"],
)
def test_documented_errors_give_one_readable_line(reply: Any, expected: str, api: FakeAimlapi,
                                                  tmp_path: Path, run: Run) -> None:
    api.faults.append((GENERATIONS, reply))
    path = write_campaign(tmp_path, aspects=("3:4",))
    result = run("build", path, "--json")
    assert result.code == 1
    (line,) = failure_lines(result)
    assert line.startswith("failed: ai a0 3:4 seed 11: ")
    assert expected in line
    assert "{" not in line  # the envelope is read, not dumped
    assert len(api.generations()) == 1  # 4xx are not retried
    if reply.status == 401:
        assert "check AIMLAPI_API_KEY" in line


# -- the provider's pieces ------------------------------------------------------------------


def _provider(**options: Any) -> AimlapiProvider:
    return AimlapiProvider(ProviderSpec(name="ai", kind="aimlapi", model=STANDARD,
                                        concurrency=1, options=options))


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (400, {"message": {"message": "nested text"}, "path": ["image_size", "width"]},
         ("nested text (path image_size; width)", "invalid_request")),
        (400, {"error": {"message": "openai style", "type": "invalid_request_error"}},
         ("openai style", "invalid_request")),
        (422, {"message": "x", "statusCode": "422"}, ("x", "invalid_request")),
        (400, {"message": "odd", "statusCode": "409"}, ("odd (status 409)", "invalid_request")),
        (504, None, ("HTTP 504", "generation_timeout")),
        (503, ["not", "an", "object"], ("HTTP 503", "unavailable")),
        (418, {"message": "line one\n  line two"}, ("line one line two", "http_error")),
    ],
)
def test_error_message_is_defensive(status: int, payload: Any,
                                    expected: tuple[str, str]) -> None:
    assert _provider().error_message(status, payload) == expected


def test_body_without_optional_parts() -> None:
    from qwenbuild.providers.base import GenerationRequest

    request = GenerationRequest(prompt="p", negative="", width=1440, height=1440, seed=0,
                                prompt_extend=False)
    body = _provider().body(request)
    assert body == {"model": STANDARD, "prompt": "p",
                    "image_size": {"width": 1440, "height": 1440},
                    "enhance_prompt": False, "seed": 0, "watermark": False}
    assert check_body(body) == (1440, 1440)


def test_unknown_option_is_a_campaign_error(api: FakeAimlapi, tmp_path: Path,
                                            run: Run) -> None:
    path = write_campaign(tmp_path, provider_extra="watermrk = true")
    result = run("build", path)
    assert result.code == 2
    assert "providers.ai.watermrk: unknown key (did you mean 'watermark'?)" in result.err
    assert api.requests == []


# -- the fake itself is strict --------------------------------------------------------------


GOOD: dict[str, Any] = {"model": STANDARD, "prompt": "p",
                        "image_size": {"width": 512, "height": 1440}}


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"model": "alibaba/qwen-image"}, "model"),
        ({"num_images": 1}, "num_images"),
        ({"response_format": "b64_json"}, "response_format"),
        ({"prompt": None}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"negative_prompt": "x" * 501}, "negative_prompt"),
        ({"image_size": {"width": 480, "height": 512}}, "image_size.width"),
        ({"image_size": {"width": 512, "height": 1472}}, "image_size.height"),
        ({"image_size": {"width": 520, "height": 512}}, "image_size.width"),
        ({"image_size": "portrait_16_10"}, "image_size"),
        ({"image_urls": []}, "image_urls"),
        ({"image_urls": ["https://x.test/a.png"] * 4}, "image_urls"),
        ({"image_urls": ["not a url"]}, "image_urls.0"),
        ({"seed": -1}, "seed"),
        ({"seed": 2147483648}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"enhance_prompt": "false"}, "enhance_prompt"),
        ({"watermark": 0}, "watermark"),
    ],
)
def test_the_fake_refuses_what_the_schema_does_not_allow(change: dict[str, Any],
                                                         path: str) -> None:
    body = {**GOOD, **change}
    if change.get("prompt", "") is None:
        del body["prompt"]
    with pytest.raises(BadRequest) as info:
        check_body(body)
    assert info.value.path == path


def test_the_fake_answers_400_with_the_envelope(api: FakeAimlapi) -> None:
    import httpx

    url = f"{api.base_url}{GENERATIONS}"
    headers = {"Authorization": f"Bearer {FAKE_KEY}"}
    bad = httpx.post(url, json={**GOOD, "steps": 30}, headers=headers)
    assert bad.status_code == 400
    envelope = bad.json()
    assert set(envelope) == {"message", "path", "requestId", "statusCode", "timestamp"}
    assert envelope["statusCode"] == "400" and envelope["path"] == "steps"
    assert httpx.post(url, json=GOOD).status_code == 401
    good = httpx.post(url, json={**GOOD, "image_size": "square"}, headers=headers)
    assert good.status_code == 200
    assert good.json()["meta"]["usage"] == {"credits_used": 91000, "usd_spent": 0.0455}


def test_pro_is_estimated_at_the_documented_price() -> None:
    provider = AimlapiProvider(ProviderSpec(name="ai", kind="aimlapi", model=PRO,
                                            concurrency=1, options={}))
    assert provider.job_price_usd(1440, 1440) == 0.0975 == PRICES[PRO]


def test_an_edit_comes_back_derived_from_its_inputs(api: FakeAimlapi, tmp_path: Path,
                                                    run: Run) -> None:
    from PIL import Image

    from .fakes.server import derived_color

    ref = png_bytes(20, 20, (9, 8, 7))
    path = write_campaign(tmp_path, defaults_extra='references = ["r.png"]',
                          files={"r.png": ref})
    assert run("build", path).code == 0
    with Image.open(tmp_path / "out" / "1x1" / "ai" / "a0.png") as img:
        assert img.getpixel((0, 0))[:3] == derived_color([ref])
