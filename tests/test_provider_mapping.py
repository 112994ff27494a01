"""The providers' mapping logic, through their injectable transport (`httpx.MockTransport`):
error envelopes become one readable line, answers are parsed into an image, a cost and
ids, and a 2xx that is not JSON fails without being retried. No socket, no build: each
test calls `provider.generate()` on a canned answer. (The wire contract itself is tested
against the real-socket fakes: test_provider_contract.py and test_provider_<kind>.py.)"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from qwenbuild.errors import ProviderError
from qwenbuild.providers import provider_class
from qwenbuild.providers.base import GeneratedImage, GenerationRequest, ProviderSpec

from .fakes.server import png_bytes

KEY = "mock-secret-key-31415926"
IMAGE = png_bytes(32, 32)
B64 = base64.b64encode(IMAGE).decode()

Handler = Callable[[httpx.Request], httpx.Response]


def generate(kind: str, model: str, handler: Handler, monkeypatch: pytest.MonkeyPatch,
             **options: Any) -> GeneratedImage:
    cls = provider_class(kind)
    assert cls.info.api_key_env is not None
    monkeypatch.setenv(cls.info.api_key_env, KEY)
    spec = ProviderSpec("p", kind, model, 1, options, base_url="https://api.test/v1"
                        if kind == "runware" else "https://api.test")
    provider = cls(spec, transport=httpx.MockTransport(handler))  # type: ignore[call-arg]
    request = GenerationRequest(prompt="a poster", negative="", width=1024, height=1024,
                                seed=5, prompt_extend=False, options=options, aspect="1:1")

    async def go() -> GeneratedImage:
        try:
            return await provider.generate(request)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers or {})
        return httpx.Response(status, json=body, headers=headers or {})
    return handler


def runware_item(request: httpx.Request, **fields: Any) -> dict[str, Any]:
    (task,) = json.loads(request.content)
    return {"taskType": "imageInference", "taskUUID": task["taskUUID"], **fields}


# -- error envelopes: one readable line --------------------------------------------------------

ENVELOPES = [
    ("runware", "alibaba:qwen-image@2.0", 400,
     {"errors": [{"code": "invalidWidth", "message": "Bad width", "parameter": "width"}]},
     "HTTP 400 invalidWidth: Bad width (parameter width)"),
    ("aimlapi", "alibaba/qwen-image-2-0", 400,
     {"message": ["seed must be an integer", "prompt too long"], "path": "seed",
      "statusCode": "400", "requestId": "r1"},
     "HTTP 400 invalid_request: seed must be an integer; prompt too long (path seed; "
     "request id r1)"),
    ("empiriolabs", "qwen-image-2-0", 402,
     {"error": {"message": "Not enough\ncredits.", "type": "billing_error",
                "code": "insufficient_credits"}},
     "HTTP 402 insufficient_credits: Not enough credits."),
]


@pytest.mark.parametrize(("kind", "model", "status", "body", "line"), ENVELOPES,
                         ids=[e[0] for e in ENVELOPES])
def test_an_error_envelope_becomes_one_readable_line(kind: str, model: str, status: int,
                                                     body: Any, line: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProviderError) as info:
        generate(kind, model, answer(status, body), monkeypatch)
    assert str(info.value) == line
    assert not info.value.retryable


@pytest.mark.parametrize(("kind", "model"), [("runware", "alibaba:qwen-image@2.0"),
                                             ("aimlapi", "alibaba/qwen-image-2-0"),
                                             ("empiriolabs", "qwen-image-2-0")])
def test_a_transient_status_is_retryable_and_keeps_retry_after(
        kind: str, model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    html = b"<html><head><title>503 Service Unavailable</title></head></html>"
    with pytest.raises(ProviderError) as info:
        generate(kind, model, answer(503, html, {"Content-Type": "text/html",
                                                  "Retry-After": "7"}), monkeypatch)
    assert info.value.retryable and info.value.retry_after == 7.0
    message = str(info.value)
    assert message.startswith("HTTP 503") and message.count("HTTP") == 1  # said once
    assert message.endswith(": text/html answer, not JSON: 503 Service Unavailable")


# -- a 2xx that is not JSON ----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "model"), [("runware", "alibaba:qwen-image@2.0"),
                                             ("aimlapi", "alibaba/qwen-image-2-0"),
                                             ("empiriolabs", "qwen-image-2-0")])
def test_a_2xx_that_is_not_json_fails_unretried_and_redacted(
        kind: str, model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    echo = f"gateway: key Bearer {KEY} accepted".encode()
    with pytest.raises(ProviderError) as info:
        generate(kind, model, answer(200, echo, {"Content-Type": "text/plain"}), monkeypatch)
    error = info.value
    assert not error.retryable and error.code == "bad_response"
    assert "unreadable answer" in str(error) and "[redacted]" in str(error)
    assert KEY not in str(error)


# -- answers parsed ------------------------------------------------------------------------------


def test_runware_answer_gives_image_seed_cost_and_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        item = runware_item(request, imageUUID="img-1", imageBase64Data=B64, seed=99,
                            cost=0.035)
        return httpx.Response(200, json={"data": item})  # one object, not a list

    got = generate("runware", "alibaba:qwen-image@2.0", handler, monkeypatch,
                   output_type="base64Data")
    assert got.data == IMAGE and got.seed == 99 and got.cost == 0.035
    assert got.response_ids["imageUUID"] == "img-1"


def test_aimlapi_answer_gives_image_and_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    got = generate("aimlapi", "alibaba/qwen-image-2-0", answer(200, {
        "created": 17, "data": [{"b64_json": B64}],
        "meta": {"usage": {"credits_used": 1, "usd_spent": 0.0455}}}), monkeypatch)
    assert got.data == IMAGE and got.cost == 0.0455 and got.seed == 5
    assert got.response_ids == {"created": "17"}


def test_empiriolabs_sync_answer_gives_image_and_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    got = generate("empiriolabs", "qwen-image-2-0", answer(200, {
        "created": 1, "data": [{"b64_json": B64}], "usage": {"cost": 0.0322}}),
        monkeypatch, sync=True)
    assert got.data == IMAGE and got.cost == 0.0322


@pytest.mark.parametrize(("kind", "model", "body", "message"), [
    ("runware", "alibaba:qwen-image@2.0", {"data": []}, "no result for task"),
    ("aimlapi", "alibaba/qwen-image-2-0", {"data": [{"revised_prompt": "x"}]},
     "holds no image"),
    ("aimlapi", "alibaba/qwen-image-2-0", ["not", "an", "object"], "expected a JSON object"),
    ("empiriolabs", "qwen-image-2-0", {"status": "queued"}, "neither an image nor a job_id"),
])
def test_an_answer_without_an_image_fails_unretried(kind: str, model: str, body: Any,
                                                    message: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProviderError) as info:
        generate(kind, model, answer(200, body), monkeypatch)
    assert message in str(info.value)
    assert not info.value.retryable  # answered (and maybe charged): never generated again
