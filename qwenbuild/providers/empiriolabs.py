"""EmpirioLabs: Qwen-Image-2.0 behind an OpenAI-style endpoint, asynchronous by default.

Wire protocol (from /v1/images/generations docs and PROTOCOLS.md; unconfirmed parts are
marked and coded defensively):

- `POST /v1/images/generations` with `model = "qwen-image-2-0"` and the variant in
  `model_variant`. The answer is a job (`{"job_id", "status"}`) that is polled with
  `GET /v1/jobs/{job_id}` until `completed` or `failed`; with `"sync": true` (or when the
  server chooses to) the answer is OpenAI-style `{"created", "data": [...]}` directly.
- Sizes: an `aspect_ratio` from the documented enum, else `use_custom_size` with
  `custom_width`/`custom_height` (512..2048 each, area in [512x512, 2048x2048]).
- Errors: an OpenAI-style envelope `{"error": {"message", "type", "code"}}` (probable,
  unconfirmed; other common shapes are accepted too).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..errors import ProviderError
from ..sizes import SizeRule, ratio_error
from .base import (
    GeneratedImage,
    GenerationRequest,
    ModelInfo,
    OptionSpec,
    ProviderInfo,
    TaskHandle,
    TaskUnknown,
)
from .http import HttpProvider, data_uri, number_at, one_line
from .openai import first_image, keys_of

#: The model id of the endpoint, as in the docs' example request.
MODEL_ID = "qwen-image-2-0"

#: The standard variant: what qwenbuild sends unless a campaign asks for a Pro one.
STANDARD_VARIANT = "qwen-image-2.0"
#: Variants from the docs' parameter table. The service defaults to the first (a Pro
#: snapshot at about twice the price), which is why qwenbuild always sends one explicitly.
VARIANTS: tuple[str, ...] = (
    "qwen-image-2.0-pro-2026-04-22",
    "qwen-image-2.0-pro-2026-03-03",
    "qwen-image-2.0-pro",
    STANDARD_VARIANT,
)
PRICE_STANDARD = 0.0322
PRICE_PRO = 0.069

#: Aspect ratios the service takes by name; any other is sent as a custom pixel size.
ENUM_ASPECTS: frozenset[str] = frozenset(
    {"16:9", "9:16", "1:1", "3:2", "2:3", "4:3", "3:4", "5:4", "4:5"})

#: The custom-size bounds of the docs. The same rule gives the nominal size of every job
#: (templates, key, validation); for named aspects the service picks the actual size.
EMPIRIOLABS_RULE = SizeRule(
    step=16,
    min_side=512,
    max_side=2048,
    min_area=512 * 512,
    max_area=2048 * 2048,
    native_area=2048 * 2048,
)

#: Job statuses. Only `completed` and `failed` are documented (the full list is not);
#: the other terminal words are common spellings, accepted so a job never waits for its
#: timeout after the service has given up on it. Any other status means "keep polling".
_DONE = frozenset({"completed", "succeeded", "success"})
_FAILED = frozenset({"failed", "error", "errored", "cancelled", "canceled", "expired"})

#: Where a reported cost may sit in an answer (the field is not documented).
_COST_PATHS: tuple[tuple[str, ...], ...] = (
    ("cost",),
    ("cost_usd",),
    ("usage", "cost"),
    ("usage", "usd_spent"),
    ("meta", "usage", "usd_spent"),
)


class EmpiriolabsProvider(HttpProvider):
    """Qwen-Image-2.0 through EmpirioLabs (`kind = "empiriolabs"`)."""

    info = ProviderInfo(kind="empiriolabs", billable=True, api_key_env="EMPIRIOLABS_API_KEY",
                        base_url_env="EMPIRIOLABS_BASE_URL",
                        default_base_url="https://api.empiriolabs.ai", default_concurrency=4,
                        # "job state is kept one hour" (PROTOCOLS.md).
                        task_retention=3600)
    models = {
        MODEL_ID: ModelInfo(
            id=MODEL_ID,
            title="Qwen-Image-2.0 (EmpirioLabs)",
            size_rule=EMPIRIOLABS_RULE,
            price_usd=PRICE_STANDARD,
            # The docs give no prompt limits: these are the ones the other providers of
            # the same DashScope model document (prompt 2000, negative 500 characters).
            max_prompt=2000,
            max_negative=500,
            max_references=3,
            seed_range=(0, 2147483647),
        ),
    }
    options = {
        "variant": OptionSpec(
            (str,),
            f"Model variant sent as model_variant (default {STANDARD_VARIANT!r}; the Pro "
            f"ones cost ${PRICE_PRO} instead of ${PRICE_STANDARD} per image).",
            choices=VARIANTS,
            default=STANDARD_VARIANT,
        ),
        "response_format": OptionSpec(
            (str,), "How the image comes back: a signed URL or inline base64.",
            choices=("url", "b64_json"), affects_image=False,
        ),
        "watermark": OptionSpec((bool,), "Add an EmpirioLabs watermark (default false).",
                                default=False),
        "sync": OptionSpec(
            (bool,), "Ask for the image in the answer itself instead of polling a job.",
            affects_image=False),
    }
    output_ext = "png"
    # 50 requests a minute per account, polls included: poll gently.
    poll_first = 2.0
    poll_max = 8.0

    # -- configuration ----------------------------------------------------------------------

    @property
    def variant(self) -> str:
        """The variant this provider sends (the standard one unless the campaign says)."""
        return _variant(self.spec.options)

    def price_usd(self) -> float:
        """Price of one image with the configured variant."""
        return PRICE_PRO if _is_pro(self.variant) else PRICE_STANDARD

    def size_problem(self, request: GenerationRequest, width: int, height: int) -> str | None:
        """A named aspect is sized by the service (the page gives no pixels for it): any
        image of that ratio (within 3%) and of at least 512x512 pixels is an answer. A
        custom size must come back as sent."""
        if request.aspect not in ENUM_ASPECTS:
            return super().size_problem(request, width, height)
        if ratio_error(width, height, request.aspect) <= 0.03 and width * height >= 512 * 512:
            return None
        return (f"the image is {width}x{height}, not an image of aspect {request.aspect} of "
                "at least 512x512 as asked")

    def key_fields(self, request: GenerationRequest) -> dict[str, Any]:
        # The effective variant, not only the options as written: were the default ever
        # to change, images made with the old one must not count as up to date.
        return {"model_variant": self.variant}

    # -- wire format ------------------------------------------------------------------------

    def request_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body of `POST /v1/images/generations` for `request`."""
        options = request.options
        body: dict[str, Any] = {
            # The parameter table lists the variants under `model`, the example request
            # sends the model id there; newer docs moved the variant to `model_variant`.
            "model": MODEL_ID,
            "model_variant": _variant(options),
            "prompt": request.prompt,
        }
        if request.negative:
            body["negative_prompt"] = request.negative
        if request.aspect in ENUM_ASPECTS:
            body["aspect_ratio"] = request.aspect
        else:
            # Without a named ratio the service would default to 16:9: send the pixels.
            body["use_custom_size"] = True
            body["custom_width"] = request.width
            body["custom_height"] = request.height
        if request.references:
            # The docs say "input image URLs"; whether data URIs are accepted is
            # unconfirmed. Local references have no public URL, so they go inline.
            body["image"] = [data_uri(ref) for ref in request.references]
        body["seed"] = request.seed
        # Both default to values a campaign may not want (prompt_extend true): always say.
        body["prompt_extend"] = request.prompt_extend
        body["watermark"] = bool(options.get("watermark", False))
        body["response_format"] = str(options.get("response_format", "url"))
        if options.get("sync", False):
            body["sync"] = True
        return body

    def error_message(self, status: int, payload: Any) -> tuple[str, str | None]:
        """Read the OpenAI-style envelope, or `{"message"}`, `{"detail"}`, `{"error": str}`."""
        message, code = _envelope(payload)
        message = message or f"HTTP {status}"
        if status == 401:
            message += f" (check {self.api_key_env})"
        return message, code

    # -- generation -------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest,
                       task: TaskHandle | None = None) -> GeneratedImage:
        handle = task or TaskHandle()
        deadline = time.monotonic() + self.spec.timeout
        resumed = (handle.resume or {}).get("job_id")
        if resumed:
            # An earlier build submitted this very job and was stopped while waiting: poll
            # that job instead of paying for a new one.
            resumed_url = f"{self.base_url}/v1/jobs/{quote(resumed, safe='')}"
            done = await self.poll_until(f"job {resumed}",
                                         lambda: self._poll(resumed_url, True), deadline)
            handle.on_finished()
            return await self._finished_job(done, {"job_id": resumed})
        answer = await self.request_json("POST", f"{self.base_url}/v1/images/generations",
                                         self.request_body(request))
        if not isinstance(answer, Mapping):
            raise ProviderError(f"unexpected answer: a JSON {type(answer).__name__}, not an "
                                "object", code="bad_response")
        job_id = answer.get("job_id") or answer.get("id")
        valid = isinstance(job_id, str | int) and not isinstance(job_id, bool) and job_id
        ids = {"job_id": str(job_id)} if valid else {}
        if "data" in answer:
            # OpenAI-style: the image is in the answer itself (sync, or the server chose to).
            return await self._image(answer, answer, ids)
        if not ids:
            raise ProviderError("the answer holds neither an image nor a job_id "
                                f"(keys: {keys_of(answer)})", code="bad_response")
        job_id = ids["job_id"]
        url = f"{self.base_url}/v1/jobs/{quote(job_id, safe='')}"
        job: Mapping[str, Any] = answer
        if not _finished(job):
            handle.on_submitted({"job_id": job_id})
            job = await self.poll_until(f"job {job_id}", lambda: self._poll(url), deadline)
            handle.on_finished()
        return await self._finished_job(job, ids)

    async def _finished_job(self, job: Mapping[str, Any],
                            ids: dict[str, str]) -> GeneratedImage:
        job_id = ids["job_id"]
        status = _status(job)
        if status in _FAILED:
            message, code = _envelope(job)
            raise ProviderError(f"job {job_id} {status}: "
                                f"{message or 'no reason given'}",
                                code=code or "job_failed")
        return await self._image(job.get("result"), job, ids)

    async def _poll(self, url: str, resumed: bool = False) -> Mapping[str, Any] | None:
        """One look at a job: the job once it is finished, else None."""
        try:
            job = await self.request_json("GET", url)
        except ProviderError as exc:
            if exc.status == 404 and resumed:
                raise TaskUnknown(f"unknown to EmpirioLabs (job state is kept for one hour): "
                                  f"{exc.message}", code=exc.code or "job_not_found",
                                  status=404) from None
            if exc.status == 404:
                # Job state is kept one hour; generating again would pay again.
                raise ProviderError(
                    "unknown to EmpirioLabs (it may have expired: job state is kept for "
                    f"one hour): {exc.message}",
                    code=exc.code or "job_not_found", status=404) from None
            raise
        if not isinstance(job, Mapping):
            raise ProviderError(f"unexpected answer: a JSON {type(job).__name__}, not an "
                                "object", code="bad_response")
        return job if _finished(job) else None

    async def _image(self, result: Any, answer: Mapping[str, Any],
                     ids: dict[str, str]) -> GeneratedImage:
        """Fetch or decode the image of a finished answer; keep what it reports."""
        value, is_url = first_image(result)
        data = await self.image_from(value, url=is_url)
        cost = number_at([answer, result], *_COST_PATHS)
        ran = _reported_variant(answer, result)
        if ran is not None:
            ids = {**ids, "model_variant": ran}
        return GeneratedImage(
            data=data,
            seed=_reported_seed(answer, result),
            cost=cost,
            response_ids=ids,
            mismatch=self._mismatch(ran, cost),
        )

    def _mismatch(self, ran: str | None, cost: float | None) -> str | None:
        """What the answer says ran, or cost, against what was asked. The older version of
        the model page takes the variant as `model` and defaults to a Pro snapshot: a
        service that ignored `model_variant` would run (and bill) every image on Pro."""
        asked = self.variant
        if ran is not None and ran != asked:
            return (f"EmpirioLabs ran variant {ran!r}, not the {asked!r} asked for "
                    f"(model_variant ignored?)")
        if cost is not None:
            pro_asked = _is_pro(asked)
            # Halfway between the two list prices tells them apart.
            pro_billed = cost > (PRICE_STANDARD + PRICE_PRO) / 2
            if pro_billed != pro_asked:
                kind = "Pro" if pro_billed else "standard"
                return (f"EmpirioLabs billed ${cost:g}, the price of a {kind} variant, for "
                        f"variant {asked!r} (model_variant ignored?)")
        return None


# -- reading answers ------------------------------------------------------------------------


def _variant(options: Mapping[str, Any]) -> str:
    return str(options.get("variant", STANDARD_VARIANT))


def _is_pro(variant: str) -> bool:
    return variant.startswith("qwen-image-2.0-pro")


def _reported_variant(*payloads: Any) -> str | None:
    """The variant an answer says ran: `model_variant` (the newer page), or `model` when it
    holds a variant name (the older page lists the variants as values of `model`). The
    answer's fields are not documented: anything else says nothing."""
    for payload in payloads:
        if not isinstance(payload, Mapping):
            continue
        for name in ("model_variant", "variant", "model"):
            value = payload.get(name)
            if isinstance(value, str) and value.strip().lower() in VARIANTS:
                return value.strip().lower()
    return None


def _envelope(payload: Any) -> tuple[str, str | None]:
    """(message, code) of an error answer or a failed job: `{"error": {"message", "code",
    "type"}}` as documented-ish, else `{"error": str}`, `{"message"}` or `{"detail"}`."""
    if not isinstance(payload, Mapping):
        return "", None
    message: Any = None
    code: Any = None
    error = payload.get("error")
    if isinstance(error, Mapping):
        message = error.get("message")
        code = error.get("code") or error.get("type")
    elif isinstance(error, str):
        message = error
    if not message:
        message = payload.get("message") or payload.get("detail")
    code = code or payload.get("code")
    return one_line(message), (str(code) if code else None)


def _status(job: Mapping[str, Any]) -> str:
    status = job.get("status")
    return status.strip().lower() if isinstance(status, str) else ""


def _finished(job: Mapping[str, Any]) -> bool:
    status = _status(job)
    if status in _DONE or status in _FAILED:
        return True
    # No status at all but a result: take the result rather than wait for nothing.
    return not status and bool(job.get("result"))


def _reported_seed(*payloads: Any) -> int | None:
    for payload in payloads:
        if isinstance(payload, Mapping):
            seed = payload.get("seed")
            if isinstance(seed, int) and not isinstance(seed, bool):
                return seed
    return None
