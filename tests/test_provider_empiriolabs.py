"""The EmpirioLabs provider, end to end through the CLI against a fake server on 127.0.0.1.

The fake checks every body against the documented parameter table, so these tests hold
the provider to the contract: exact fields, the standard variant unless asked, named
aspect ratios or a custom size, asynchronous jobs polled to the end, errors readable.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from qwenbuild.errors import ProviderError
from qwenbuild.providers.base import GenerationRequest, ProviderSpec, Reference
from qwenbuild.providers.empiriolabs import (
    PRICE_PRO,
    PRICE_STANDARD,
    VARIANTS,
    EmpiriolabsProvider,
)
from qwenbuild.providers.openai import first_image
from qwenbuild.sizes import ASPECTS, ratio_error

from .conftest import Result, build_file_tree
from .fakes import FakeProviders
from .fakes.empiriolabs import (
    FAKE_API_KEY,
    BadRequest,
    FakeEmpiriolabs,
    JobScript,
    check_body,
    envelope,
)
from .fakes.server import Reply, png_bytes

Run = Callable[..., Result]

TEMPLATE = 'A {{ asset.orientation }} poster for {{ brand.name }}: "{{ copy.headline }}".\n'

#: Fields sent for every job; a named aspect adds aspect_ratio, others a custom size.
COMMON_FIELDS = {"model", "model_variant", "prompt", "seed", "prompt_extend", "watermark",
                 "response_format"}
CUSTOM_FIELDS = {"use_custom_size", "custom_width", "custom_height"}


@pytest.fixture
def fake(fake_providers: FakeProviders) -> FakeEmpiriolabs:
    app: FakeEmpiriolabs = fake_providers["empiriolabs"]
    return app


def write_campaign(root: Path, provider: str = "", assets: str | None = None,
                   files: dict[str, str | bytes] | None = None) -> Path:
    """A campaign with one `em` provider (extra keys in `provider`) and its template."""
    assets = assets if assets is not None else (
        '[[assets]]\nid = "hero"\n[assets.copy]\nheadline = "HELLO WORLD"\n')
    text = (
        '[campaign]\nname = "em-test"\n\n'
        '[brand]\nname = "Acme"\n\n'
        '[defaults]\ntemplate = "poster.j2"\nproviders = ["em"]\naspects = ["1:1"]\n'
        "seeds = [7]\nprompt_extend = false\n\n"
        f'[providers.em]\nkind = "empiriolabs"\n{provider}\n\n'
        f"{assets}"
    )
    build_file_tree(root, {"templates/poster.j2": TEMPLATE, "campaign.toml": text,
                           **(files or {})})
    return root / "campaign.toml"


def jobs_by_asset(result: Result) -> dict[str, dict[str, Any]]:
    return {f"{j['asset']} {j['aspect']}": j for j in result.json()["jobs"]}


def failure_lines(result: Result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("failed: ")]


# -- the happy path ------------------------------------------------------------------------


def test_multi_aspect_build_follows_the_contract(tmp_path: Path, run: Run,
                                                  fake: FakeEmpiriolabs) -> None:
    # The service picks the size of a named aspect; 1:1 answers smaller than the nominal
    # 2048x2048 here, and the manifest must record what came back.
    fake.enum_sizes["1:1"] = (1024, 1024)
    path = write_campaign(tmp_path, assets=(
        '[[assets]]\nid = "hero"\naspects = ["1:1", "9:16", "16:9", "21:9"]\n'
        'negative = "blurry text"\n[assets.copy]\nheadline = "HELLO WORLD"\n'))

    result = run("build", path, "--json")

    assert result.code == 0, result.err
    report = result.json()
    assert (report["generated"], report["failed"]) == (4, 0)
    assert report["cost_usd"] == pytest.approx(4 * PRICE_STANDARD)
    bodies = {b.get("aspect_ratio", "custom"): b for b in fake.generations()}
    assert sorted(bodies) == ["16:9", "1:1", "9:16", "custom"]
    for aspect, body in bodies.items():
        extra = CUSTOM_FIELDS if aspect == "custom" else {"aspect_ratio"}
        assert set(body) == COMMON_FIELDS | extra | {"negative_prompt"}
        assert body["model"] == "qwen-image-2-0"
        assert body["model_variant"] == "qwen-image-2.0"
        assert body["prompt_extend"] is False
        assert body["watermark"] is False
        assert body["seed"] == 7
        assert body["response_format"] == "url"
        assert body["negative_prompt"] == "blurry text"
        assert '"HELLO WORLD"' in body["prompt"]
        check_body(body)  # the fake's own contract check, as a direct assertion too
    custom = bodies["custom"]
    assert custom["use_custom_size"] is True
    width, height = custom["custom_width"], custom["custom_height"]
    assert (width, height) == (2048, 880)
    assert ratio_error(width, height, "21:9") <= 0.01
    assert 512 <= width <= 2048 and 512 <= height <= 2048 and width % 16 == height % 16 == 0

    # Every job was polled until completed (2 "running" answers, then "completed").
    job_ids = set(fake.jobs)
    polled = fake.polls()
    assert {p.rsplit("/", 1)[1] for p in polled} == job_ids and len(job_ids) == 4
    assert len(polled) == 4 * (fake.running_polls + 1)
    assert all(r.headers["authorization"] == f"Bearer {FAKE_API_KEY}"
               for r in fake.api_requests())

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())["outputs"]
    expected = {"1x1": (1024, 1024), "9x16": (1152, 2048), "16x9": (2048, 1152),
                "21x9": (2048, 880)}
    for folder, size in expected.items():
        rel = f"{folder}/em/hero.png"
        with Image.open(tmp_path / "out" / rel) as img:
            assert img.size == size
        entry = manifest[rel]
        assert (entry["width"], entry["height"]) == size
        assert entry["cost_usd"] == pytest.approx(PRICE_STANDARD)
    assert {v for v, _ in fake.billed} == {"qwen-image-2.0"}

    count = len(fake.requests)
    again = run("build", path, "--json")
    assert again.code == 0
    assert again.json()["up_to_date"] == 4
    assert len(fake.requests) == count  # nothing sent at all


def test_pro_variant_is_sent_and_priced(tmp_path: Path, run: Run,
                                        fake: FakeEmpiriolabs) -> None:
    path = write_campaign(tmp_path, 'variant = "qwen-image-2.0-pro"')

    result = run("build", path, "--json")

    assert result.code == 0, result.err
    (body,) = fake.generations()
    assert body["model_variant"] == "qwen-image-2.0-pro"
    assert fake.billed == [("qwen-image-2.0-pro", PRICE_PRO)]
    assert result.json()["cost_usd"] == pytest.approx(PRICE_PRO)


def test_price_follows_the_variant() -> None:
    def provider(**options: Any) -> EmpiriolabsProvider:
        return EmpiriolabsProvider(ProviderSpec("em", "empiriolabs", "qwen-image-2-0", 2,
                                                options))

    assert provider().price_usd() == PRICE_STANDARD == provider().model.price_usd
    assert provider(variant="qwen-image-2.0").price_usd() == PRICE_STANDARD
    for variant in VARIANTS[:3]:
        assert provider(variant=variant).price_usd() == PRICE_PRO
    assert EmpiriolabsProvider.check_config("qwen-image-2-0", {"variant": "qwen-image-3"})
    assert EmpiriolabsProvider.check_config("qwen-image-2-0", {"watermark": "no"})
    assert not EmpiriolabsProvider.check_config(
        "qwen-image-2-0", {"variant": VARIANTS[0], "sync": True, "watermark": True,
                           "response_format": "b64_json"})


@pytest.mark.parametrize("aspect", list(ASPECTS))
def test_every_aspect_yields_a_body_the_contract_accepts(aspect: str) -> None:
    """Named aspects go as aspect_ratio, the others as a custom size in bounds."""
    spec = ProviderSpec("em", "empiriolabs", "qwen-image-2-0", 2,
                        {"variant": "qwen-image-2.0-pro-2026-03-03", "watermark": True})
    provider = EmpiriolabsProvider(spec)
    width, height = provider.size_for(aspect)
    ref = Reference("ref.png", "0" * 64, png_bytes(8, 8))
    request = GenerationRequest(prompt="p", negative="", width=width, height=height,
                                seed=2147483647, prompt_extend=True, references=(ref,),
                                options=spec.options, aspect=aspect)
    assert not provider.validate(request)
    body = provider.request_body(request)
    check_body(body)
    assert "negative_prompt" not in body
    assert body["watermark"] is True and body["prompt_extend"] is True
    if aspect in ("21:9", "9:21"):
        assert (body["custom_width"], body["custom_height"]) == (width, height)
        assert ratio_error(width, height, aspect) <= 0.01
        assert "aspect_ratio" not in body
    else:
        assert body["aspect_ratio"] == aspect
        assert not CUSTOM_FIELDS & set(body)


def test_references_go_as_data_uris(tmp_path: Path, run: Run, fake: FakeEmpiriolabs) -> None:
    refs = {"refs/a.png": png_bytes(16, 16, (1, 2, 3)),
            "refs/b.jpg": png_bytes(16, 16, (4, 5, 6), fmt="JPEG")}
    path = write_campaign(tmp_path, assets=(
        '[[assets]]\nid = "hero"\nreferences = ["refs/a.png", "refs/b.jpg"]\n'
        '[assets.copy]\nheadline = "EDIT ME"\n'), files=refs)

    result = run("build", path, "--json")

    assert result.code == 0, result.err
    (body,) = fake.generations()
    assert set(body) == COMMON_FIELDS | {"aspect_ratio", "image"}
    a, b = body["image"]
    assert a.startswith("data:image/png;base64,")
    assert b.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(a.partition(",")[2]) == refs["refs/a.png"]
    assert base64.b64decode(b.partition(",")[2]) == refs["refs/b.jpg"]


@pytest.mark.parametrize(("sync", "response_format"),
                         [(True, "url"), (True, "b64_json"), (False, "b64_json")])
def test_sync_and_inline_deliveries(tmp_path: Path, run: Run, fake: FakeEmpiriolabs,
                                    sync: bool, response_format: str) -> None:
    path = write_campaign(tmp_path, f"sync = {str(sync).lower()}\n"
                                    f'response_format = "{response_format}"')

    result = run("build", path, "--json")

    assert result.code == 0, result.err
    (body,) = fake.generations()
    assert body["response_format"] == response_format
    assert body.get("sync") is (True if sync else None)
    assert bool(fake.polls()) is not sync  # a sync answer holds the image: no job to poll
    downloads = [r for r in fake.requests if r.path.startswith("/files/")]
    assert len(downloads) == (response_format == "url")
    # The file host gets no credentials: URLs are signed.
    assert all("authorization" not in r.headers for r in downloads)
    with Image.open(tmp_path / "out" / "1x1" / "em" / "hero.png") as img:
        assert img.size == (2048, 2048)
    entry = json.loads((tmp_path / "out" / "manifest.json").read_text())["outputs"]
    assert entry["1x1/em/hero.png"]["cost_usd"] == pytest.approx(PRICE_STANDARD)


# -- jobs that end badly -------------------------------------------------------------------


TWO_ASSETS = (
    '[[assets]]\nid = "hero"\n[assets.copy]\nheadline = "HELLO WORLD"\n\n'
    '[[assets]]\nid = "story"\n[assets.copy]\nheadline = "BROKEN STORY"\n'
)


def test_a_failed_job_fails_alone_with_its_message(tmp_path: Path, run: Run,
                                                   fake: FakeEmpiriolabs) -> None:
    # Undocumented intermediate statuses must all mean "keep polling".
    fake.running_statuses = ["queued", "pending", "processing", "in_progress"]
    fake.running_polls = 4
    fake.script("BROKEN", JobScript(fail="Content moderation rejected the prompt"))
    path = write_campaign(tmp_path, assets=TWO_ASSETS)

    result = run("build", path, "--json")

    assert result.code == 1
    jobs = jobs_by_asset(result)
    assert jobs["hero 1:1"]["status"] == "generated"
    assert jobs["story 1:1"]["status"] == "failed"
    error = jobs["story 1:1"]["error"]
    assert re.fullmatch(r"upstream_error: job job_\w+ failed: Content moderation rejected "
                        r"the prompt", error), error
    assert len(fake.generations()) == 2  # the failed job was not paid for twice
    assert (tmp_path / "out" / "1x1" / "em" / "hero.png").is_file()
    assert not (tmp_path / "out" / "1x1" / "em" / "story.png").exists()
    (line,) = failure_lines(result)
    assert line.startswith("failed: em story 1:1 seed 7: upstream_error: ")


def test_a_job_that_never_finishes_times_out(tmp_path: Path, run: Run,
                                             fake: FakeEmpiriolabs) -> None:
    fake.script("HELLO", JobScript(never_finish=True))
    path = write_campaign(tmp_path, "timeout = 1")

    result = run("build", path, "--json")

    assert result.code == 1
    error = jobs_by_asset(result)["hero 1:1"]["error"]
    assert re.search(r"timed out after 1s|not finished after 1s", error), error
    assert len(fake.generations()) == 1
    assert len(fake.polls()) >= 3
    assert not (tmp_path / "out" / "1x1" / "em" / "hero.png").exists()


def test_a_poll_fault_retries_the_poll_not_the_generation(tmp_path: Path, run: Run,
                                                          fake: FakeEmpiriolabs) -> None:
    fake.faults.append(("/v1/jobs/", envelope(503, "Service busy", "api_error",
                                              "upstream_error")))
    path = write_campaign(tmp_path)

    result = run("build", path, "--json")

    assert result.code == 0, result.err
    assert len(fake.generations()) == 1
    assert len(fake.polls()) == fake.running_polls + 2  # one extra for the 503
    assert (tmp_path / "out" / "1x1" / "em" / "hero.png").is_file()


def test_an_expired_job_fails_clearly_without_generating_again(
        tmp_path: Path, run: Run, fake: FakeEmpiriolabs) -> None:
    fake.script("HELLO", JobScript(expire=True))
    path = write_campaign(tmp_path)

    result = run("build", path, "--json")

    assert result.code == 1
    error = jobs_by_asset(result)["hero 1:1"]["error"]
    assert "HTTP 404 job_not_found" in error and "one hour" in error, error
    assert len(fake.generations()) == 1
    assert len(fake.polls()) == 1  # a 404 is final: not polled again


# -- error envelopes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "line"),
    [
        (envelope(402, "Not enough credits to run this request.", "billing_error",
                  "insufficient_credits"),
         "HTTP 402 insufficient_credits: Not enough credits to run this request."),
        (Reply(400, {"detail": [{"msg": "prompt too\n long"}, {"msg": "seed bad"}]}),
         "HTTP 400: prompt too long; seed bad"),
        (Reply(403, {"error": "model_unavailable for this account"}),
         "HTTP 403: model_unavailable for this account"),
        (Reply(400, {"message": "Bad thing", "code": "model_unavailable"}),
         "HTTP 400 model_unavailable: Bad thing"),
    ],
)
def test_client_errors_fail_once_with_one_readable_line(
        tmp_path: Path, run: Run, fake: FakeEmpiriolabs, fault: Reply, line: str) -> None:
    fake.faults.append(("/v1/images/generations", fault))
    path = write_campaign(tmp_path)

    result = run("build", path, "--json")

    assert result.code == 1
    assert failure_lines(result) == [f"failed: em hero 1:1 seed 7: {line}"]
    assert len(fake.generations()) == 1  # a 4xx is not retried


def test_the_key_never_reaches_a_file_or_the_terminal(tmp_path: Path, run: Run,
                                                      fake: FakeEmpiriolabs,
                                                      cache_dir: Path) -> None:
    # A server that echoes the key back in an error must not get it printed.
    fake.faults.append(("/v1/images/generations", envelope(
        400, f"Key {FAKE_API_KEY} may not use seed 7.", "invalid_request_error",
        "invalid_parameter")))
    fake.script("BROKEN", JobScript(fail=f"worker saw {FAKE_API_KEY}"))
    path = write_campaign(tmp_path, assets=TWO_ASSETS + (
        '\n[[assets]]\nid = "third"\naspects = ["21:9"]\n[assets.copy]\nheadline = "OK"\n'))

    results = [run("build", path, "--json"), run("build", path, "--json", "-v")]

    assert [r.code for r in results] == [1, 1]
    assert "[redacted]" in results[0].err
    for r in results:
        assert FAKE_API_KEY not in r.out and FAKE_API_KEY not in r.err
    written = [p for root in (tmp_path, cache_dir) for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in written)
    for p in written:
        assert FAKE_API_KEY.encode() not in p.read_bytes(), p


# -- the fake itself is strict ------------------------------------------------------------

GOOD_BODY: dict[str, Any] = {"model": "qwen-image-2-0", "prompt": "p", "aspect_ratio": "1:1"}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"size": "1024x1024"}, "unknown_parameter"),  # in the docs' example, not the table
        ({"prompt": ""}, "missing_parameter"),
        ({"model": "qwen-image-2.0"}, "model_not_found"),
        ({"model_variant": "qwen-image-2.1"}, "invalid_parameter"),
        ({"aspect_ratio": "21:9"}, "invalid_parameter"),
        ({"custom_width": 1024, "custom_height": 1024}, "invalid_parameter"),
        ({"use_custom_size": True, "custom_width": 1024, "custom_height": 1024},
         "invalid_parameter"),  # together with aspect_ratio
        ({"image": ["https://x/1.png"] * 4}, "invalid_parameter"),
        ({"num_images": 7}, "invalid_parameter"),
        ({"seed": 2147483648}, "invalid_parameter"),
        ({"prompt_extend": "false"}, "invalid_parameter"),
        ({"watermark": 0}, "invalid_parameter"),
        ({"sync": "yes"}, "invalid_parameter"),
        ({"response_format": "png"}, "invalid_parameter"),
    ],
)
def test_the_fake_refuses_what_the_docs_do_not_allow(change: dict[str, Any], code: str) -> None:
    check_body(GOOD_BODY)
    with pytest.raises(BadRequest) as info:
        check_body({**GOOD_BODY, **change})
    assert info.value.code == code


@pytest.mark.parametrize(("width", "height"), [(496, 1024), (1024, 2064), (1024.5, 1024)])
def test_the_fake_refuses_custom_sizes_out_of_bounds(width: float, height: float) -> None:
    body = {"model": "qwen-image-2-0", "prompt": "p", "use_custom_size": True,
            "custom_width": width, "custom_height": height}
    with pytest.raises(BadRequest):
        check_body(body)


def test_the_fake_checks_the_key(fake: FakeEmpiriolabs) -> None:
    url = f"{fake.base_url}/v1/images/generations"
    assert httpx.post(url, json=GOOD_BODY).json()["error"]["code"] == "invalid_api_key"
    assert httpx.post(url, json=GOOD_BODY,
                      headers={"Authorization": "Bearer nope"}).status_code == 401
    answer = httpx.post(url, json=GOOD_BODY, headers={"x-api-key": FAKE_API_KEY})
    assert answer.status_code == 200 and answer.json()["status"] == "queued"
    unknown = httpx.get(f"{fake.base_url}/v1/jobs/job_nope",
                        headers={"Authorization": f"Bearer {FAKE_API_KEY}"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "job_not_found")
    assert fake.billed == []  # nothing is rendered before the job is polled


# -- reading answers of unconfirmed shape --------------------------------------------------


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"data": [{"url": "https://x/a.png"}]}, ("https://x/a.png", True)),
        ([{"b64_json": "QUJD"}], ("QUJD", False)),
        ({"url": "https://x/b.png"}, ("https://x/b.png", True)),
        ({"images": [{"url": "https://x/c.png"}]}, ("https://x/c.png", True)),
        ({"images": ["https://x/d.png"]}, ("https://x/d.png", True)),
        ("https://x/e.png", ("https://x/e.png", True)),
        ({"created": 1, "data": [{"b64_json": "QUJD", "revised_prompt": "p"}]},
         ("QUJD", False)),
    ],
)
def test_result_shapes_are_read(result: Any, expected: tuple[str, bool]) -> None:
    assert first_image(result) == expected


@pytest.mark.parametrize("result", [None, {}, {"data": []}, {"data": [{"id": 1}]}, 42])
def test_results_without_an_image_fail_clearly(result: Any) -> None:
    with pytest.raises(ProviderError) as info:
        first_image(result)
    assert info.value.code == "no_image"
    assert not info.value.retryable  # the image was paid for: never generate again


def test_error_envelopes_are_read() -> None:
    provider = EmpiriolabsProvider(ProviderSpec("em", "empiriolabs", "qwen-image-2-0", 1, {}))
    read = provider.error_message
    assert read(401, {"error": {"message": "Bad key", "type": "authentication_error",
                                "code": "invalid_api_key"}}) == (
        "Bad key (check EMPIRIOLABS_API_KEY)", "invalid_api_key")
    assert read(503, {"error": {"message": "Down", "type": "api_error"}}) == ("Down",
                                                                              "api_error")
    assert read(500, {"error": "boom"}) == ("boom", None)
    assert read(422, {"detail": "nope"}) == ("nope", None)
    assert read(502, None) == ("HTTP 502", None)
    assert read(502, ["odd"]) == ("HTTP 502", None)
    long_message, _ = read(400, {"message": "x" * 1000})
    assert len(long_message) <= 303



# -- issue 15: the variant that ran is the variant asked for ------------------------------


@pytest.mark.parametrize("sync", [False, True], ids=["job", "sync"])
def test_a_service_that_ignores_the_variant_fails_the_job_loudly(
        tmp_path: Path, run: Run, fake: FakeEmpiriolabs, cache_dir: Path, sync: bool) -> None:
    fake.ignore_variant = True  # the older service: runs (and bills) the default Pro
    path = write_campaign(tmp_path, "sync = true" if sync else "")

    result = run("build", path, "--json")

    assert result.code == 1
    (job,) = result.json()["jobs"]
    assert job["status"] == "failed"
    assert "ran variant 'qwen-image-2.0-pro-2026-04-22', not the 'qwen-image-2.0'" in job["error"]
    assert result.json()["cost_usd"] == pytest.approx(PRICE_PRO)  # paid: recorded
    assert not (tmp_path / "out" / "1x1" / "em" / "hero.png").exists()
    kept = sorted(p.name for p in (cache_dir / "quarantine").iterdir())
    assert kept == [f"{job['key']}.json", f"{job['key']}.png"]
    record = json.loads((cache_dir / "quarantine" / f"{job['key']}.json").read_text())
    assert record["cost_usd"] == PRICE_PRO and "ran variant" in record["quarantined"]
    assert not (cache_dir / "objects").exists()  # never restored as the job's output
    (line,) = failure_lines(result)
    assert "kept for inspection" in line


def test_a_pro_price_for_the_standard_variant_fails_even_without_a_variant(
        tmp_path: Path, run: Run, fake: FakeEmpiriolabs) -> None:
    fake.ignore_variant = True
    fake.report_variant = False  # only the price tells
    result = run("build", write_campaign(tmp_path), "--json")
    assert result.code == 1
    (job,) = result.json()["jobs"]
    assert "billed $0.069, the price of a Pro variant" in job["error"]


def test_a_matching_variant_and_price_pass(tmp_path: Path, run: Run,
                                           fake: FakeEmpiriolabs) -> None:
    result = run("build", write_campaign(tmp_path, 'variant = "qwen-image-2.0-pro"'), "--json")
    assert result.code == 0, result.err
    assert fake.billed == [("qwen-image-2.0-pro", PRICE_PRO)]


def test_an_edit_comes_back_derived_from_its_input(tmp_path: Path, run: Run,
                                                   fake: FakeEmpiriolabs) -> None:
    from .fakes.server import derived_color

    ref = png_bytes(20, 20, (1, 2, 3))
    path = write_campaign(tmp_path, assets=(
        '[[assets]]\nid = "hero"\nreferences = ["r.png"]\n[assets.copy]\nheadline = "HI"\n'),
        files={"r.png": ref})
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    with Image.open(tmp_path / "out" / "1x1" / "em" / "hero.png") as img:
        assert img.getpixel((0, 0))[:3] == derived_color([ref])


# -- issue 16: a malformed job status is polled again, never paid again ----------------------


@pytest.mark.parametrize("reply", [
    Reply(200, b'{"job_id": "x", "status": ', {"Content-Type": "application/json"}),
    Reply(200, ["not", "an", "object"]),
    Reply(200, b"<html>gateway</html>", {"Content-Type": "text/html"}),
], ids=["truncated", "a list", "html"])
def test_a_malformed_job_status_is_polled_again_not_paid_again(
        tmp_path: Path, run: Run, fake: FakeEmpiriolabs, reply: Reply) -> None:
    fake.faults.append(("/v1/jobs/", reply))
    result = run("build", write_campaign(tmp_path), "--json")
    assert result.code == 0, result.err
    assert len(fake.generations()) == 1
    assert len(fake.polls()) == fake.running_polls + 2  # one extra for the malformed one
