"""AI/ML API (api.aimlapi.com): Qwen-Image 2.0 and 2.0 Pro through one synchronous call.

Contract: the OpenAPI schema of `POST /v1/images/generations` on the provider's
qwen-image-2.0 page (shared/provider-docs/aimlapi-qwen-image-2-0.md). The body holds only
the properties that schema lists; `enhance_prompt` is always sent because it defaults to
true there, and a campaign's `prompt_extend = false` must keep the prompt as written.

Answers: `{"created", "data": [{"url" | "b64_json"}], "meta": {"usage": {"credits_used",
"usd_spent"}}}`; errors: `{"message", "path", "requestId", "statusCode", "timestamp"}`
with `statusCode` a string. The API reports no seed, but the model takes the one sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ProviderError
from ..sizes import SizeRule
from .base import (
    GeneratedImage,
    GenerationRequest,
    ModelInfo,
    OptionSpec,
    ProviderInfo,
    TaskHandle,
)
from .http import HttpProvider, data_uri, number_at, one_line
from .openai import first_image

#: Sizes the schema accepts: `image_size: {width, height}`, each 512..1440 and a multiple
#: of 32, with no bound on the area beyond that. The model renders near 2K natively, so a
#: native area of 2048*2048 makes the largest accepted size near the aspect win.
AIMLAPI_RULE = SizeRule(
    step=32,
    min_side=512,
    max_side=1440,
    min_area=0,
    max_area=1440 * 1440,
    native_area=2048 * 2048,
)

#: Where the generation endpoint lives under the base URL.
GENERATIONS_PATH = "/v1/images/generations"


#: Short codes for the statuses the provider documents; others fall back to a generic one.
_STATUS_CODES: dict[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    408: "timeout",
    413: "too_large",
    422: "invalid_request",
    429: "rate_limited",
    500: "server_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "generation_timeout",
}


def _model(model_id: str, title: str, price: float) -> ModelInfo:
    """Both models share one schema, so they share every limit but the price."""
    return ModelInfo(
        id=model_id,
        title=title,
        size_rule=AIMLAPI_RULE,
        price_usd=price,
        max_prompt=2000,
        min_prompt=1,
        max_negative=500,
        min_negative=1,
        max_references=3,
        seed_range=(0, 2147483647),
    )


class AimlapiProvider(HttpProvider):
    """Qwen-Image 2.0 (and Pro) through AI/ML API's OpenAI-style image endpoint."""

    info = ProviderInfo(kind="aimlapi", billable=True, api_key_env="AIMLAPI_API_KEY",
                        base_url_env="AIMLAPI_BASE_URL",
                        default_base_url="https://api.aimlapi.com", default_concurrency=4)
    models = {
        # Estimate: the usd_spent of the documented example answer (one 2.0 image).
        "alibaba/qwen-image-2-0": _model("alibaba/qwen-image-2-0",
                                         "AI/ML API Qwen-Image 2.0", 0.0455),
        # The usd_spent of the example answer on AI/ML API's own Pro page (its docs
        # repository; same schema apart from `model`), as PROTOCOLS.md records: $0.0975.
        "alibaba/qwen-image-2-0-pro": _model("alibaba/qwen-image-2-0-pro",
                                             "AI/ML API Qwen-Image 2.0 Pro", 0.0975),
    }
    options = {
        "watermark": OptionSpec(
            (bool,),
            "Ask AI/ML API to add its invisible watermark to the images (default false).",
            default=False,
        ),
    }
    output_ext = "png"

    # -- the request ------------------------------------------------------------------------

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body for `request`: exactly the properties the schema lists."""
        body: dict[str, Any] = {
            "model": self.model.id,
            "prompt": request.prompt,
            "image_size": {"width": request.width, "height": request.height},
            # Always explicit: the API defaults to rewriting the prompt.
            "enhance_prompt": bool(request.prompt_extend),
        }
        # The schema's negative_prompt has no minimum, but an empty one says nothing:
        # leaving it out keeps the body the same as a campaign without a negative.
        if request.negative:
            body["negative_prompt"] = request.negative
        body["seed"] = request.seed
        if request.references:
            # "List of URLs or local Base64 encoded images": local files go as data URIs.
            body["image_urls"] = [data_uri(ref) for ref in request.references]
        body["watermark"] = bool(request.options.get("watermark", False))
        return body

    async def generate(self, request: GenerationRequest,
                       task: TaskHandle | None = None) -> GeneratedImage:
        payload = await self.request_json("POST", self.base_url + GENERATIONS_PATH,
                                          self.body(request))
        return await self.parse_answer(payload, request)

    # -- the answer -------------------------------------------------------------------------

    async def parse_answer(self, payload: Any, request: GenerationRequest) -> GeneratedImage:
        """The image of a 2xx answer, its cost and ids.

        Nothing here is retryable: the provider has answered (and may have charged), so a
        new generation would pay twice. Downloads retry on their own (HttpProvider.download).
        """
        if not isinstance(payload, Mapping):
            raise ProviderError(f"unexpected answer: expected a JSON object, got "
                                f"{type(payload).__name__}", code="bad_response")
        value, is_url = first_image(payload)
        image = await self.image_from(value, url=is_url)
        ids: dict[str, str] = {}
        created = payload.get("created")
        if isinstance(created, int | str) and not isinstance(created, bool):
            ids["created"] = str(created)
        return GeneratedImage(
            data=image,
            # The API reports no seed; the schema says the one sent is the one used.
            seed=request.seed,
            cost=number_at([payload], ("meta", "usage", "usd_spent")),
            response_ids=ids,
        )

    # -- errors -----------------------------------------------------------------------------

    def error_message(self, status: int, payload: Any) -> tuple[str, str | None]:
        """One readable line from the error envelope, and a short code for the status.

        The envelope is `{message, path, requestId, statusCode, timestamp}`; `message` has
        been seen as a string and, for body validation, may be a list. Anything else falls
        back to the HTTP status, so a malformed error never hides the real one.
        """
        code = _STATUS_CODES.get(status) or ("server_error" if status >= 500 else "http_error")
        envelope: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
        # Some gateways nest an OpenAI-style {"error": {...}}; read through it.
        nested = envelope.get("error")
        if isinstance(nested, Mapping):
            envelope = {**nested, **{k: v for k, v in envelope.items() if k != "error"}}
        message = one_line(envelope.get("message")) or one_line(nested) or f"HTTP {status}"
        details = []
        path = one_line(envelope.get("path"))
        if path:
            details.append(f"path {path}")
        provider_status = one_line(envelope.get("statusCode"))
        if provider_status and provider_status != str(status):
            details.append(f"status {provider_status}")
        request_id = one_line(envelope.get("requestId"))
        if request_id:
            details.append(f"request id {request_id}")
        if details:
            message = f"{message} ({'; '.join(details)})"
        if status == 401:
            message += f"; check {self.api_key_env}"
        elif status == 403 and "credit" not in message.lower():
            message += " (AI/ML API answers 403 when the account is out of credits)"
        return message, code


__all__ = ["AIMLAPI_RULE", "AimlapiProvider"]
