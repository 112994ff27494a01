"""The Runware provider, end to end: real builds through the CLI against a strict fake.

The fake (tests/fakes/runware.py) refuses anything the model pages do not allow, so a
build that passes sends documented bodies; the tests also compare the recorded bodies
field by field with the pages' examples, and check outputs, manifest, cache and messages.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from qwenbuild.providers.base import ProviderSpec
from qwenbuild.providers.runware import QWEN_2, QWEN_2_PRO, QWEN_20B, RunwareProvider
from qwenbuild.sizes import ratio_error

from .conftest import Result, build_file_tree
from .fakes import FakeProviders
from .fakes.runware import API_PATH, FAKE_KEY, PRICES, FakeRunware, TaskError
from .fakes.server import FakeServer, Reply, png_bytes

Run = Callable[..., Result]

TEMPLATE = ('A {{ asset.orientation }} poster for {{ brand.name }} (asset-id={{ asset.id }};). '
            'Headline reading exactly: "{{ copy.headline }}".\n')
NEGATIVE = "blurry text, misspelled words, watermark"

#: Top-level fields of every task we send, as in the model pages' examples (plus the
#: output fields we always set explicitly).
COMMON_FIELDS = {"taskType", "taskUUID", "model", "positivePrompt", "width", "height",
                 "outputType", "outputFormat", "includeCost", "numberResults"}


@pytest.fixture
def fake(fake_providers: FakeProviders) -> FakeRunware:
    app: FakeRunware = fake_providers["runware"]
    return app


def write_campaign(root: Path, providers: str, assets: str,
                   files: dict[str, str | bytes] | None = None) -> Path:
    text = f"""\
[campaign]
name = "rw-test"

[brand]
name = "Acme"

[copy]
headline = "HELLO RUNWARE"

[defaults]
template = "poster.j2"
aspects = ["1:1"]
seeds = [7]

{providers}

{assets}
"""
    build_file_tree(root, {"templates/poster.j2": TEMPLATE, "campaign.toml": text,
                           **(files or {})})
    return root / "campaign.toml"


def provider_for(model: str, **options: Any) -> RunwareProvider:
    return RunwareProvider(ProviderSpec(name="rw", kind="runware", model=model,
                                        concurrency=1, options=options))


def marker(asset: str) -> str:
    """The text of an asset's prompt that names it (see TEMPLATE)."""
    return f"asset-id={asset};"


def jobs_by_asset(result: Result) -> dict[tuple[str, str], dict[str, Any]]:
    return {(j["asset"], j["aspect"]): j for j in result.json()["jobs"]}


def failure_lines(result: Result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("failed: ")]


# -- text to image, per model ------------------------------------------------------------------

ASPECTS = ["1:1", "9:16", "16:9", "21:9"]


@pytest.mark.parametrize("model", [QWEN_2, QWEN_2_PRO, QWEN_20B])
def test_multi_aspect_build_sends_documented_bodies(
        model: str, fake: FakeRunware, run: Run, tmp_path: Path) -> None:
    extra = ('steps = 28\nCFGScale = 7.5\nscheduler = "DPM++ 2M Karras"\n'
             if model == QWEN_20B else "")
    path = write_campaign(tmp_path, f'[providers.rw]\nkind = "runware"\nmodel = "{model}"\n'
                                    f"{extra}", f"""\
[[assets]]
id = "hero"
providers = ["rw"]
aspects = {json.dumps(ASPECTS)}
negative = "{NEGATIVE}"
""")
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    provider = provider_for(model)
    rule = provider.model.size_rule

    tasks = fake.tasks()
    assert len(tasks) == len(ASPECTS)
    expected = COMMON_FIELDS | {"negativePrompt"}
    expected |= ({"seed", "steps", "CFGScale", "scheduler"} if model == QWEN_20B
                 else {"providerSettings"})
    for task in tasks:
        assert set(task) == expected
        assert task["taskType"] == "imageInference"
        assert uuid.UUID(task["taskUUID"]).version == 4
        assert task["model"] == model
        assert marker("hero") in task["positivePrompt"]
        assert task["negativePrompt"] == NEGATIVE
        assert task["outputType"] == "URL" and task["outputFormat"] == "PNG"
        assert task["includeCost"] is True and task["numberResults"] == 1
        assert rule.accepts(task["width"], task["height"])
        if model == QWEN_20B:
            assert task["seed"] == 7
            assert (task["steps"], task["CFGScale"], task["scheduler"]) == (
                28, 7.5, "DPM++ 2M Karras")
        else:
            # Prompt rewriting is on by default at Alibaba: "off" must be said explicitly.
            assert task["providerSettings"] == {"alibaba": {"promptExtend": False}}
    assert len({t["taskUUID"] for t in tasks}) == len(tasks)
    sent = {(t["width"], t["height"]) for t in tasks}
    for aspect in ASPECTS:
        size = provider.size_for(aspect)
        assert size in sent
        assert ratio_error(*size, aspect) <= 0.01
    for request in fake.api_posts():
        assert request.headers["authorization"] == f"Bearer {FAKE_KEY}"
        assert request.headers["content-type"] == "application/json"

    report = result.json()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())["outputs"]
    assert len(manifest) == len(ASPECTS)
    seeds_reported = {t["taskUUID"]: t.get("seed") for t in tasks}
    for job in report["jobs"]:
        assert job["status"] == "generated"
        with Image.open(tmp_path / job["output"]) as img:
            assert img.size == provider.size_for(job["aspect"])
            assert img.format == "PNG"
        entry = manifest[job["output"].removeprefix("out/")]
        assert entry["cost_usd"] == PRICES[model]
        assert isinstance(entry["provider_seed"], int)
        if model == QWEN_20B:
            assert entry["provider_seed"] == 7
        assert entry["seed"] == 7
    assert report["cost_usd"] == pytest.approx(
        sum(e["cost_usd"] for e in manifest.values()))
    assert report["cost_usd"] == pytest.approx(PRICES[model] * len(ASPECTS))
    if model != QWEN_20B:
        assert len(seeds_reported) == len(ASPECTS)

    before = len(fake.requests)
    again = run("build", path, "--json")
    assert again.code == 0
    assert {j["status"] for j in again.json()["jobs"]} == {"up_to_date"}
    assert len(fake.requests) == before  # no request at all, not even a download


@pytest.mark.parametrize(("fmt", "out_type", "pil"), [
    ("JPG", "base64Data", "JPEG"),
    ("WEBP", "dataURI", "WEBP"),
])
def test_output_format_and_inline_delivery(fmt: str, out_type: str, pil: str,
                                           fake: FakeRunware, run: Run, tmp_path: Path) -> None:
    path = write_campaign(tmp_path, f"""\
[providers.rw]
kind = "runware"
output_format = "{fmt}"
output_type = "{out_type}"
output_quality = 80
""", """\
[[assets]]
id = "hero"
providers = ["rw"]
prompt_extend = true
""")
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    (task,) = fake.tasks()
    assert task["model"] == QWEN_2  # the kind's default model
    assert (task["outputFormat"], task["outputType"], task["outputQuality"]) == (fmt, out_type,
                                                                                  80)
    assert task["providerSettings"] == {"alibaba": {"promptExtend": True}}
    assert "negativePrompt" not in task  # empty: absent, not ""
    (job,) = result.json()["jobs"]
    assert job["output"].endswith("." + fmt.lower())
    with Image.open(tmp_path / job["output"]) as img:
        assert img.format == pil
        assert img.size == (2048, 2048)
    assert not [r for r in fake.requests if r.path.startswith("/files/")]  # nothing to fetch


# -- reference images --------------------------------------------------------------------------


@pytest.mark.parametrize("model", [QWEN_2, QWEN_2_PRO])
def test_references_are_sent_as_data_uris_and_keyed(model: str, fake: FakeRunware, run: Run,
                                                    tmp_path: Path) -> None:
    first = png_bytes(32, 32, (10, 20, 30))
    second = png_bytes(24, 40, (200, 100, 0), fmt="JPEG")
    path = write_campaign(tmp_path, f'[providers.rw]\nkind = "runware"\nmodel = "{model}"\n',
                          """\
[[assets]]
id = "edit"
providers = ["rw"]
references = ["refs/a.png", "refs/b.jpg"]
""", {"refs/a.png": first, "refs/b.jpg": second})
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    (task,) = fake.tasks()
    assert "referenceImages" not in task
    assert task["inputs"] == {"referenceImages": [
        "data:image/png;base64," + base64.b64encode(first).decode(),
        "data:image/jpeg;base64," + base64.b64encode(second).decode(),
    ]}
    key = result.json()["jobs"][0]["key"]

    (tmp_path / "refs" / "a.png").write_bytes(png_bytes(32, 32, (10, 20, 31)))
    planned = run("plan", path, "--json")
    assert planned.code == 0, planned.err
    (job,) = planned.json()["jobs"]
    assert job["key"] != key
    assert job["status"] == "build" and "references changed" in job["reason"]


# -- async delivery ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["errors", "data"])
def test_async_delivery_polls_get_response(shape: str, fake: FakeRunware, run: Run,
                                           tmp_path: Path) -> None:
    fake.async_polls = 2
    fake.async_error_when = marker("doomed")
    fake.async_error_shape = shape
    path = write_campaign(tmp_path, '[providers.rw]\nkind = "runware"\ndelivery = "async"\n',
                          """\
[[assets]]
id = "hero"
providers = ["rw"]

[[assets]]
id = "doomed"
providers = ["rw"]
""")
    result = run("build", path, "--json")
    assert result.code == 1
    jobs = jobs_by_asset(result)
    assert jobs[("hero", "1:1")]["status"] == "generated"
    assert (tmp_path / jobs[("hero", "1:1")]["output"]).is_file()
    failed = jobs[("doomed", "1:1")]
    assert failed["status"] == "failed"
    assert "inferenceFailed" in failed["error"]
    assert "The provider could not generate this image" in failed["error"]
    assert not (tmp_path / failed["output"]).exists()

    (hero,) = fake.tasks_for(marker("hero"))
    assert hero["deliveryMethod"] == "async"
    polls = [t for t in fake.tasks("getResponse") if t["taskUUID"] == hero["taskUUID"]]
    assert len(polls) == 3  # processing, processing, success
    assert all(set(p) == {"taskType", "taskUUID"} for p in polls)
    # Each generation was submitted once; only polls were repeated.
    assert len(fake.tasks_for(marker("doomed"))) == 1
    line = [x for x in failure_lines(result) if " doomed " in x]
    assert len(line) == 1 and "inferenceFailed" in line[0]


def test_async_task_that_never_finishes_times_out(fake: FakeRunware, run: Run,
                                                  tmp_path: Path) -> None:
    fake.async_stuck_when = marker("hero")
    path = write_campaign(tmp_path, '[providers.rw]\nkind = "runware"\ndelivery = "async"\n'
                                    "timeout = 1\n", """\
[[assets]]
id = "hero"
providers = ["rw"]
""")
    result = run("build", path, "--json")
    assert result.code == 1
    (job,) = result.json()["jobs"]
    assert job["status"] == "failed"
    assert "1s" in job["error"] and ("timed out" in job["error"]
                                     or "not finished" in job["error"])
    assert len(fake.tasks()) == 1  # polled, never submitted again


# -- errors ------------------------------------------------------------------------------------

ENVELOPES = [
    TaskError(400, "invalidPositivePrompt", "Invalid value for positivePrompt parameter",
              "positivePrompt"),
    TaskError(401, "invalidApiKey", "Invalid API key", "apiKey"),
    TaskError(402, "insufficientCredits", "Insufficient balance to process the task"),
    TaskError(200, "invalidReferenceImage", "The reference image could not be read",
              "inputs.referenceImages"),
]


@pytest.mark.parametrize("error", ENVELOPES, ids=[f"{e.status}-{e.code}" for e in ENVELOPES])
def test_error_envelope_is_one_readable_line(error: TaskError, fake: FakeRunware, run: Run,
                                             tmp_path: Path) -> None:
    fake.fail_when(marker("bad"), error)
    path = write_campaign(tmp_path, '[providers.rw]\nkind = "runware"\n', """\
[[assets]]
id = "good"
providers = ["rw"]

[[assets]]
id = "bad"
providers = ["rw"]
aspects = ["9:16"]
""")
    result = run("build", path, "--json")
    assert result.code == 1
    jobs = jobs_by_asset(result)
    assert jobs[("good", "1:1")]["status"] == "generated"
    assert (tmp_path / jobs[("good", "1:1")]["output"]).is_file()
    failed = jobs[("bad", "9:16")]
    assert failed["status"] == "failed"
    assert "\n" not in failed["error"]
    assert error.code in failed["error"] and error.message in failed["error"]
    if error.parameter:
        assert f"(parameter {error.parameter})" in failed["error"]
    if error.status != 200:
        assert f"HTTP {error.status}" in failed["error"]
    (line,) = failure_lines(result)
    assert line.startswith("failed: rw bad 9:16 seed 7: ")
    assert error.code in line and error.message in line
    assert len(fake.tasks_for(marker("bad"))) == 1  # not retried: not a transient fault


def test_429_with_retry_after_is_retried_once(fake: FakeRunware, run: Run,
                                              tmp_path: Path) -> None:
    fake.fail_when(marker("hero"), TaskError(429, "tooManyRequests", "Queue is full",
                                            headers={"Retry-After": "1"}))
    path = write_campaign(tmp_path, '[providers.rw]\nkind = "runware"\n', """\
[[assets]]
id = "hero"
providers = ["rw"]
""")
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    assert result.json()["jobs"][0]["status"] == "generated"
    tasks = fake.tasks_for(marker("hero"))
    assert len(tasks) == 2
    assert tasks[0]["taskUUID"] != tasks[1]["taskUUID"]  # a retry is a new task
    assert len(fake.api_posts()) == 2


def test_the_key_is_never_written_or_shown(fake: FakeRunware, run: Run, tmp_path: Path,
                                           cache_dir: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="qwenbuild")
    # A server that echoes the key in its messages must not get it into ours.
    fake.fail_when(marker("echo400"), TaskError(400, "invalidApiKey",
                                                f"key {FAKE_KEY} is not allowed here"))
    fake.fail_when(marker("echo200"), TaskError(200, "invalidPositivePrompt",
                                                f"rejected for {FAKE_KEY}"))
    fake.fail_when(marker("retried"), TaskError(503, "serviceUnavailable",
                                                f"busy ({FAKE_KEY})"))
    path = write_campaign(tmp_path, '[providers.rw]\nkind = "runware"\n', """\
[[assets]]
id = "fine"
providers = ["rw"]

[[assets]]
id = "echo400"
providers = ["rw"]

[[assets]]
id = "echo200"
providers = ["rw"]

[[assets]]
id = "retried"
providers = ["rw"]
""")
    result = run("build", path, "--json")
    assert result.code == 1
    statuses = {a: j["status"] for (a, _), j in jobs_by_asset(result).items()}
    assert statuses == {"fine": "generated", "echo400": "failed", "echo200": "failed",
                        "retried": "generated"}
    assert "[redacted]" in result.err
    secret = FAKE_KEY.encode()
    written = [p for root in (tmp_path, cache_dir) for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in written)
    assert not [p for p in written if secret in p.read_bytes()]
    assert FAKE_KEY not in result.out and FAKE_KEY not in result.err
    assert FAKE_KEY not in caplog.text
    # The key travels in the header only, never in a body.
    assert not [r for r in fake.api_posts() if secret in r.body]


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(("table", "expected"), [
    (f'model = "{QWEN_2}"\nsteps = 20\n', "providers.rw.steps: unknown key"),
    (f'model = "{QWEN_2_PRO}"\nCFGScale = 4\n', "providers.rw.CFGScale: unknown key"),
    (f'model = "{QWEN_20B}"\nsteps = 51\n', "above the maximum 50"),
    (f'model = "{QWEN_20B}"\nscheduler = ""\n', "'' is not one of"),
    ('output_format = "TIFF"\n', "'TIFF' is not one of"),
    ("output_quality = 10\n", "below the minimum 20"),
    ('delivery = "webhook"\n', "'webhook' is not one of"),
    ('model = "alibaba:qwen-image@2"\n', "unknown model"),
])
def test_bad_provider_tables_are_refused(table: str, expected: str, run: Run,
                                         tmp_path: Path) -> None:
    path = write_campaign(tmp_path, f'[providers.rw]\nkind = "runware"\n{table}', """\
[[assets]]
id = "hero"
providers = ["rw"]
""")
    result = run("build", path, "--json")
    assert result.code == 2
    assert expected in result.err


def test_sizes_follow_each_rule() -> None:
    assert provider_for(QWEN_20B).size_for("16:9") == (1664, 928)  # the README's native
    assert provider_for(QWEN_2).size_for("3:4") == (1536, 2048)  # as in the page's examples
    assert provider_for(QWEN_2).size_for("21:9") == (2048, 880)
    assert provider_for(QWEN_2, output_format="WEBP").output_ext == "webp"
    assert provider_for(QWEN_20B).output_ext == "png"


def test_answer_shapes_are_parsed_leniently() -> None:
    from qwenbuild.providers.runware import _finished, _task_item

    provider = provider_for(QWEN_2)
    ours, other = str(uuid.uuid4()), str(uuid.uuid4())
    item = {"taskUUID": ours, "imageURL": "https://im.example/x.png", "seed": 5}
    assert _task_item({"data": item}, ours) == item  # data as one object
    assert _task_item({"data": [{"taskUUID": other}, item]}, ours) == item
    assert _task_item({"data": []}, ours) is None
    assert _finished(item) and not _finished({"taskUUID": ours, "status": "processing"})
    error = provider._task_error({"data": [], "errors": [
        {"code": "failedTaskTimeout", "message": "Timed out", "taskUUID": ours}]}, ours)
    assert error is not None and error.retryable and str(error) == (
        "failedTaskTimeout: Timed out")
    assert provider._task_error({"errors": [{"code": "x", "taskUUID": other}]}, ours) is None
    message, code = provider.error_message(400, {"errors": [
        {"code": "invalidWidth", "message": "Bad width", "parameter": "width"},
        {"code": "invalidHeight", "message": "Bad height", "parameter": "height"}]})
    assert code == "invalidWidth"
    assert message == ("Bad width (parameter width); invalidHeight: Bad height "
                       "(parameter height)")
    assert provider.error_message(502, None) == ("HTTP 502", None)


# -- the fake is strict (so "the fake accepted it" means "the docs allow it") -----------------


def _valid(model: str) -> dict[str, Any]:
    task: dict[str, Any] = {"taskType": "imageInference", "taskUUID": str(uuid.uuid4()),
                            "model": model, "positivePrompt": "a poster", "width": 1024,
                            "height": 1024, "outputFormat": "PNG"}
    if model == QWEN_20B:
        task["seed"] = 1
    else:
        task["providerSettings"] = {"alibaba": {"promptExtend": False}}
    return task


MUTATIONS: list[tuple[str, str, Callable[[dict[str, Any]], object], str]] = [
    ("seed to 2.0", QWEN_2, lambda t: t.update(seed=1), "unsupportedParameter"),
    ("steps to pro", QWEN_2_PRO, lambda t: t.update(steps=20), "unsupportedParameter"),
    ("CFGScale to 2.0", QWEN_2, lambda t: t.update(CFGScale=4), "unsupportedParameter"),
    ("width alone", QWEN_2, lambda t: t.pop("height"), "missingParameter"),
    ("area too small", QWEN_2, lambda t: t.update(width=256, height=256), "invalidDimensions"),
    ("side too long", QWEN_2, lambda t: t.update(width=2304, height=1024), "invalidWidth"),
    ("108 not a multiple of 16", QWEN_20B, lambda t: t.update(width=1000), "invalidWidth"),
    ("108 too large", QWEN_20B, lambda t: t.update(height=2064), "invalidHeight"),
    ("top-level referenceImages", QWEN_2,
     lambda t: t.update(referenceImages=["https://example.com/a.png"]), "unsupportedParameter"),
    ("four references", QWEN_2,
     lambda t: t.update(inputs={"referenceImages": ["https://example.com/a.png"] * 4}),
     "invalidReferenceImages"),
    ("pro references with negative", QWEN_2_PRO,
     lambda t: t.update(inputs={"referenceImages": ["https://example.com/a.png"]},
                        negativePrompt="blurry"), "conflictingParameters"),
    ("promptExtend not boolean", QWEN_2,
     lambda t: t.update(providerSettings={"alibaba": {"promptExtend": "no"}}),
     "invalidPromptExtend"),
    ("promptExtend to 108", QWEN_20B,
     lambda t: t.update(providerSettings={"alibaba": {"promptExtend": False}}),
     "unsupportedParameter"),
    ("short prompt", QWEN_2, lambda t: t.update(positivePrompt="a"), "invalidPositivePrompt"),
    ("long negative", QWEN_2, lambda t: t.update(negativePrompt="x" * 501),
     "invalidNegativePrompt"),
    ("seed too large", QWEN_20B, lambda t: t.update(seed=2**63), "invalidSeed"),
    ("steps too many", QWEN_20B, lambda t: t.update(steps=51), "invalidSteps"),
    ("CFGScale too high", QWEN_20B, lambda t: t.update(CFGScale=20.5), "invalidCFGScale"),
    ("unknown model", QWEN_2, lambda t: t.update(model="alibaba:qwen-image@3"), "invalidModel"),
    ("uuid v1", QWEN_2, lambda t: t.update(taskUUID=str(uuid.uuid1())), "invalidTaskUUID"),
    ("task type", QWEN_2, lambda t: t.update(taskType="imageUpscale"), "invalidTaskType"),
    ("output format", QWEN_2, lambda t: t.update(outputFormat="TIFF"), "invalidOutputFormat"),
    ("unknown scheduler", QWEN_20B, lambda t: t.update(scheduler="DPM++ 2M Karas"),
     "invalidScheduler"),
    ("lora weight", QWEN_20B, lambda t: t.update(lora=[{"model": "a:1@1", "weight": 4.5}]),
     "invalidLoraWeight"),
    ("lora empty", QWEN_20B, lambda t: t.update(lora=[]), "invalidLora"),
    ("strength above 1", QWEN_20B,
     lambda t: t.update(inputs={"seedImage": "https://example.com/a.png", "strength": 1.2}),
     "invalidStrength"),
    ("mask without seed image", QWEN_20B,
     lambda t: t.update(inputs={"maskImage": "https://example.com/m.png"}), "missingSeedImage"),
    ("maskMargin out of range", QWEN_20B,
     lambda t: t.update(inputs={"seedImage": "https://example.com/a.png",
                                "maskImage": "https://example.com/m.png"}, maskMargin=16),
     "invalidMaskMargin"),
    ("seedImage to 2.0", QWEN_2,
     lambda t: t.update(inputs={"seedImage": "https://example.com/a.png"}),
     "unsupportedParameter"),
]


@pytest.mark.parametrize(("model", "mutate", "code"), [m[1:] for m in MUTATIONS],
                         ids=[m[0] for m in MUTATIONS])
def test_fake_rejects_what_the_docs_reject(model: str, mutate: Callable[[dict[str, Any]], object],
                                           code: str) -> None:
    app = FakeRunware()
    with FakeServer(app) as server, httpx.Client() as client:
        headers = {"Authorization": f"Bearer {FAKE_KEY}"}
        ok = client.post(server.url + API_PATH, json=[_valid(model)], headers=headers)
        assert ok.status_code == 200, ok.text
        task = _valid(model)
        mutate(task)
        answer = client.post(server.url + API_PATH, json=[task], headers=headers)
        assert answer.status_code == 400
        (error,) = answer.json()["errors"]
        assert error["code"] == code
        assert error["taskUUID"] == task["taskUUID"]


def test_fake_checks_auth_body_and_uuid_reuse() -> None:
    app = FakeRunware()
    with FakeServer(app) as server, httpx.Client() as client:
        url = server.url + API_PATH
        headers = {"Authorization": f"Bearer {FAKE_KEY}"}
        task = _valid(QWEN_2)
        assert client.post(url, json=[task]).status_code == 401
        assert client.post(url, json=[task], headers={"Authorization": "Bearer nope"}
                           ).json()["errors"][0]["code"] == "invalidApiKey"
        assert client.post(url, json=task, headers=headers).status_code == 400  # not an array
        first = client.post(url, json=[task], headers=headers)
        assert first.status_code == 200
        (item,) = first.json()["data"]
        assert set(item) == {"taskType", "taskUUID", "imageUUID", "imageURL", "seed",
                             "NSFWContent"}  # no cost: includeCost was not sent
        image = client.get(item["imageURL"])
        with Image.open(io.BytesIO(image.content)) as img:
            assert (img.format, img.size) == ("PNG", (1024, 1024))
        again = client.post(url, json=[task], headers=headers)
        assert again.json()["errors"][0]["code"] == "duplicateTaskUUID"
        # Scripted whole-request faults still work through the base class.
        app.faults.append((API_PATH, Reply(503, {"errors": [{"code": "x", "message": "y"}]})))
        assert client.post(url, json=[_valid(QWEN_2)], headers=headers).status_code == 503


# -- issue 15: scheduler, LoRA, image-to-image and inpainting, prices, messages -------------


def test_a_scheduler_typo_is_refused_before_spending_with_did_you_mean(
        fake: FakeRunware, run: Run, tmp_path: Path) -> None:
    path = write_campaign(tmp_path, f'[providers.rw]\nkind = "runware"\nmodel = "{QWEN_20B}"\n'
                                    'scheduler = "DPM++ 2M Karas"\n',
                          '[[assets]]\nid = "hero"\nproviders = ["rw"]\n')
    result = run("build", path, "--json")
    assert result.code == 2
    assert "providers.rw.scheduler" in result.err
    assert "did you mean 'DPM++ 2M Karras'?" in result.err
    assert "(75 values)" in result.err
    assert not fake.requests


def test_every_documented_scheduler_is_accepted() -> None:
    from qwenbuild.providers.runware import SCHEDULERS

    from .fakes.runware import SCHEDULERS as FAKE_SCHEDULERS

    assert len(SCHEDULERS) == len(set(SCHEDULERS)) == 75
    assert set(SCHEDULERS) == FAKE_SCHEDULERS
    for name in SCHEDULERS:
        assert not RunwareProvider.check_config(QWEN_20B, {"scheduler": name})
    assert RunwareProvider.check_config(QWEN_20B, {"scheduler": "dpm++ 2m karras"})[0][1] \
        .endswith("(did you mean 'DPM++ 2M Karras'?)")


LORA = '[{ model = "civitai:120096@135931", weight = 0.8 }]'


def test_lora_is_sent_as_written_and_is_part_of_the_key(fake: FakeRunware, run: Run,
                                                        tmp_path: Path) -> None:
    table = f'[providers.rw]\nkind = "runware"\nmodel = "{QWEN_20B}"\n'
    assets = '[[assets]]\nid = "hero"\nproviders = ["rw"]\n'
    path = write_campaign(tmp_path, table, assets)
    plain_key = run("plan", path, "--json").json()["jobs"][0]["key"]
    path = write_campaign(tmp_path, table + f"lora = {LORA}\n", assets)
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    (task,) = fake.tasks()
    assert task["lora"] == [{"model": "civitai:120096@135931", "weight": 0.8}]
    assert result.json()["jobs"][0]["key"] != plain_key


@pytest.mark.parametrize(("lora", "message"), [
    ("[]", "expected at least one LoRA"),
    ('[{ model = "civitai:1@2", weight = 5 }]', "[0].weight: expected a number from -4 to 4"),
    ("[{ weight = 1 }]", "[0].model: expected a LoRA model identifier"),
    ('[{ model = "civitai:1@2", strength = 1 }]', "[0]: unknown key 'strength'"),
    ('"civitai:1@2"', "expected list, got str"),
])
def test_a_bad_lora_is_refused_before_spending(lora: str, message: str, fake: FakeRunware,
                                               run: Run, tmp_path: Path) -> None:
    path = write_campaign(tmp_path, f'[providers.rw]\nkind = "runware"\nmodel = "{QWEN_20B}"\n'
                                    f"lora = {lora}\n",
                          '[[assets]]\nid = "hero"\nproviders = ["rw"]\n')
    result = run("build", path)
    assert result.code == 2
    assert "providers.rw.lora" in result.err and message in result.err, result.err
    assert not fake.requests


def test_image_to_image_and_inpainting_send_the_documented_inputs(
        fake: FakeRunware, run: Run, tmp_path: Path) -> None:
    from .fakes.server import derived_color

    start, mask = png_bytes(64, 64, (0, 90, 0)), png_bytes(64, 64, (255, 255, 255))
    table = f'[providers.rw]\nkind = "runware"\nmodel = "{QWEN_20B}"\n'
    files: dict[str, str | bytes] = {"start.png": start, "mask.png": mask}
    plain = write_campaign(tmp_path, table, '[[assets]]\nid = "hero"\nproviders = ["rw"]\n',
                           files)
    plain_key = run("plan", plain, "--json").json()["jobs"][0]["key"]
    path = write_campaign(tmp_path, table, """\
[[assets]]
id = "hero"
providers = ["rw"]
init_image = "start.png"
mask = "mask.png"
strength = 0.6
mask_margin = 48
""", files)
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    (task,) = fake.tasks()
    assert task["inputs"] == {
        "seedImage": "data:image/png;base64," + base64.b64encode(start).decode(),
        "maskImage": "data:image/png;base64," + base64.b64encode(mask).decode(),
        "strength": 0.6,
    }
    assert task["maskMargin"] == 48
    (job,) = result.json()["jobs"]
    assert job["key"] != plain_key
    with Image.open(tmp_path / job["output"]) as img:  # an edit of these inputs came back
        assert img.getpixel((0, 0))[:3] == derived_color([start, mask])

    # Another starting image is another job.
    (tmp_path / "start.png").write_bytes(png_bytes(64, 64, (0, 91, 0)))
    (again,) = run("plan", path, "--json").json()["jobs"]
    assert again["key"] != job["key"] and again["status"] == "build"


@pytest.mark.parametrize(("model", "lines", "message"), [
    (QWEN_20B, 'init_image = "start.png"\nstrength = 1.5', "strength"),
    (QWEN_20B, 'mask = "start.png"', "a mask needs init_image"),
    (QWEN_20B, 'init_image = "start.png"\nmask_margin = 48', "mask_margin needs a mask"),
    (QWEN_20B, 'init_image = "start.png"\nmask = "start.png"\nmask_margin = 16', "mask_margin"),
    (QWEN_20B, 'init_image = "missing.png"', "image not found: missing.png"),
    (QWEN_2, 'init_image = "start.png"', "takes no starting image or mask"),
])
def test_image_to_image_fields_are_checked_before_spending(
        model: str, lines: str, message: str, fake: FakeRunware, run: Run,
        tmp_path: Path) -> None:
    path = write_campaign(tmp_path, f'[providers.rw]\nkind = "runware"\nmodel = "{model}"\n',
                          f'[[assets]]\nid = "hero"\nproviders = ["rw"]\n{lines}\n',
                          {"start.png": png_bytes(32, 32)})
    result = run("build", path)
    assert result.code == 2
    assert message in result.err, result.err
    assert not fake.requests


def test_pro_with_references_and_a_negative_names_the_way_out_and_drop_takes_it(
        fake: FakeRunware, run: Run, tmp_path: Path) -> None:
    table = f'[providers.pro]\nkind = "runware"\nmodel = "{QWEN_2_PRO}"\n'
    assets = (f'[[assets]]\nid = "hero"\nproviders = ["pro"]\nreferences = ["a.png"]\n'
              f'negative = "{NEGATIVE}"\n')
    files: dict[str, str | bytes] = {"a.png": png_bytes(16, 16)}
    refused = run("build", write_campaign(tmp_path, table, assets, files))
    assert refused.code == 2
    assert 'set negative_with_references = "drop" in [providers.pro]' in refused.err
    assert not fake.requests

    path = write_campaign(tmp_path, table + 'negative_with_references = "drop"\n', assets, files)
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    (task,) = fake.tasks()
    assert "negativePrompt" not in task and len(task["inputs"]["referenceImages"]) == 1
    # The negative prompt is not sent, so changing it changes nothing.
    path = write_campaign(tmp_path, table + 'negative_with_references = "drop"\n',
                          assets.replace(NEGATIVE, "something else"), files)
    assert run("plan", path, "--json").json()["jobs"][0]["status"] == "up_to_date"


def test_the_108_price_is_estimated_from_size_and_steps() -> None:
    provider = provider_for(QWEN_20B)
    # The page's examples: never under what they cost.
    for (width, height), cost in {(1024, 768): 0.0058, (1024, 1024): 0.0077,
                                  (1024, 1536): 0.0128}.items():
        assert cost <= provider.job_price_usd(width, height) <= cost * 1.4
    assert provider.job_price_usd(128, 128) == 0.0058  # the floor
    assert provider_for(QWEN_20B, steps=50).job_price_usd(1024, 1536) == pytest.approx(
        0.0128 * 50 / 30, abs=1e-6)
    assert provider_for(QWEN_2).job_price_usd(2048, 2048) == 0.035  # a flat price


def test_the_summary_shows_the_estimate_next_to_the_reported_cost(
        fake: FakeRunware, run: Run, tmp_path: Path) -> None:
    path = write_campaign(tmp_path, f'[providers.rw]\nkind = "runware"\nmodel = "{QWEN_20B}"\n',
                          '[[assets]]\nid = "hero"\nproviders = ["rw"]\n')
    estimate = provider_for(QWEN_20B).job_price_usd(*provider_for(QWEN_20B).size_for("1:1"))
    result = run("build", path)
    assert result.code == 0, result.err
    assert f"cost ${PRICES[QWEN_20B]:.4f} (estimated ${estimate:.4f})" in result.out
    fake.report_cost = False
    path = write_campaign(tmp_path, f'[providers.rw]\nkind = "runware"\nmodel = "{QWEN_20B}"\n'
                                    "steps = 21\n",
                          '[[assets]]\nid = "hero"\nproviders = ["rw"]\n')
    unreported = run("build", path, "--json")
    assert unreported.json()["cost_unreported"] == 1
    assert unreported.json()["estimated_cost_usd"] == pytest.approx(estimate)


def test_an_error_naming_several_parameters_shows_them_all() -> None:
    provider = provider_for(QWEN_20B)
    message, code = provider.error_message(400, {"errors": [
        {"code": "invalidDimensions", "message": "Width and height do not fit",
         "parameter": ["width", "height"]}]})
    assert (message, code) == ("Width and height do not fit (parameters width, height)",
                               "invalidDimensions")
    message, _ = provider.error_message(400, {"errors": [
        {"code": "conflictingParameters", "message": "These cannot be combined",
         "parameters": ["inputs.referenceImages", "negativePrompt"]}]})
    assert message.endswith("(parameters inputs.referenceImages, negativePrompt)")


def test_qwenbuild_providers_shows_the_new_options_and_the_estimate(run: Run) -> None:
    result = run("providers", "-v")
    assert result.code == 0
    block = result.out.split("runware:108@1", 1)[1].split("\naimlapi", 1)[0]
    assert "~$0.0058" in block and "price: estimate: max($0.0058" in block
    assert "lora" in block and "scheduler: Diffusion scheduler, one of the 75" in block
    assert "asset fields: init_image, mask, strength, mask_margin" in block
    rows = {(r["kind"], r["model"]): r for r in run("providers", "--json").json()}
    assert "negative_with_references" in rows[("runware", QWEN_2_PRO)]["options"]
    assert rows[("aimlapi", "alibaba/qwen-image-2-0-pro")]["price_usd"] == 0.0975


# -- issue 16: a malformed poll is a transient fault, never a reason to pay again ------------

MALFORMED_POLLS = {
    "truncated JSON": Reply(200, b'{"data": [', {"Content-Type": "application/json"}),
    "HTML page": Reply(200, b"<html>busy</html>", {"Content-Type": "text/html"}),
    "502": Reply(502, b"<html><title>502 Bad Gateway</title></html>",
                 {"Content-Type": "text/html"}),
}


@pytest.mark.parametrize("answer", sorted(MALFORMED_POLLS))
def test_a_malformed_poll_answer_is_polled_again_not_paid_again(
        answer: str, fake: FakeRunware, run: Run, tmp_path: Path) -> None:
    fake.async_polls = 1
    fake.poll_replies.append(MALFORMED_POLLS[answer])
    path = write_campaign(tmp_path, '[providers.rw]\nkind = "runware"\ndelivery = "async"\n',
                          '[[assets]]\nid = "hero"\nproviders = ["rw"]\n')
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    assert result.json()["jobs"][0]["status"] == "generated"
    assert len(fake.tasks()) == 1  # one generation, paid once
    assert len(fake.tasks("getResponse")) == 3  # the malformed one, processing, success


def test_malformed_polls_are_bounded(fake: FakeRunware, run: Run, tmp_path: Path) -> None:
    from qwenbuild.providers.http import FETCH_TRIES

    for _ in range(FETCH_TRIES):
        fake.poll_replies.append(MALFORMED_POLLS["truncated JSON"])
    path = write_campaign(tmp_path, '[providers.rw]\nkind = "runware"\ndelivery = "async"\n',
                          '[[assets]]\nid = "hero"\nproviders = ["rw"]\n')
    result = run("build", path, "--json")
    assert result.code == 1
    (job,) = result.json()["jobs"]
    assert "unreadable answer" in job["error"]
    assert len(fake.tasks()) == 1 and len(fake.tasks("getResponse")) == FETCH_TRIES
