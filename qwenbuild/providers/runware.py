"""Runware: Qwen-Image 2.0, 2.0-Pro (Alibaba, hosted) and Qwen-Image 20B (`runware:108@1`).

Wire format (Runware's model pages and the transport notes in PROTOCOLS.md): one
`POST <base>` whose body is a JSON *array* of task objects, each with a fresh UUID v4
`taskUUID`; auth is `Authorization: Bearer <key>`. A result comes back as
`{"data": [{taskUUID, imageUUID, imageURL | imageBase64Data | imageDataURI, seed, cost}]}`
(some pages show `data` as one object: both are accepted), errors as
`{"errors": [{code, message, parameter, taskType, taskUUID}]}`, per task.

The models differ in what they take:

* `alibaba:qwen-image@2.0` / `@2.0-pro` take no `seed`, `steps` or `CFGScale`: the seed
  is reported back (and recorded), while the campaign seed only names the variant in the
  cache key. Prompt rewriting is on by default at Alibaba, so `promptExtend` is always
  sent explicitly. Up to 3 reference images go in `inputs.referenceImages`; 2.0-Pro
  refuses references together with a negative prompt.
* `runware:108@1` takes `seed`, `steps`, `CFGScale`, `scheduler` (one of 75 names) and
  `lora`, and no `providerSettings` at all; it also takes a starting image and a mask
  (`inputs.seedImage`, `inputs.maskImage`, `inputs.strength`, `maskMargin`: the asset
  fields `init_image`, `mask`, `strength`, `mask_margin`).

Delivery is synchronous by default; `delivery = "async"` sends `deliveryMethod: "async"`
and polls `getResponse` for the same taskUUID (polls never submit the generation again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..errors import ProviderError
from ..sizes import QWEN_NATIVE, SizeRule
from .base import (
    GeneratedImage,
    GenerationRequest,
    ModelInfo,
    OptionSpec,
    ProviderInfo,
    TaskHandle,
    TaskUnknown,
)
from .http import HttpProvider, data_uri, new_task_uuid

log = logging.getLogger(__name__)

QWEN_2 = "alibaba:qwen-image@2.0"
QWEN_2_PRO = "alibaba:qwen-image@2.0-pro"
QWEN_20B = "runware:108@1"

#: Models that take `providerSettings.alibaba` and `inputs.referenceImages`, and no seed.
ALIBABA_MODELS = frozenset({QWEN_2, QWEN_2_PRO})
#: Models that refuse `inputs.referenceImages` together with `negativePrompt`. 2.0-Pro's
#: page states it ("Compatibility & Validation"); PROTOCOLS.md asks to treat the rule as
#: applying to 2.0 too, the same family behind the same API (safe: refused before spending,
#: with `negative_with_references = "drop"` as the way out).
NO_REFERENCES_WITH_NEGATIVE = frozenset({QWEN_2, QWEN_2_PRO})

#: Qwen-Image 2.0 sizes. The page says only "step 1"; PROTOCOLS.md gives the safe bounds
#: (each side <= 2048, area within [512*512, 2048*2048]). A step of 16 keeps sizes
#: friendly to any latent grid; the model renders natively near 2K, hence the native area.
QWEN_2_RULE = SizeRule(
    step=16,
    min_side=256,
    max_side=2048,
    min_area=512 * 512,
    max_area=2048 * 2048,
    native_area=2048 * 2048,
)

#: Qwen-Image 20B: width and height required, 128..2048, multiples of 16; the README's
#: native resolutions where they fit.
QWEN_20B_RULE = SizeRule(
    step=16,
    min_side=128,
    max_side=2048,
    native_area=1328 * 1328,
    native=tuple(QWEN_NATIVE.items()),
)

OUTPUT_EXTS: dict[str, str] = {"PNG": "png", "JPG": "jpg", "WEBP": "webp"}

#: The 75 `scheduler` values the runware:108@1 page allows ("Allowed values 75 values",
#: without naming them). The names are those of Runware's official Python SDK,
#: Runware/runware-python v1.4.0, runware/types/task_map.py, `AlibabaQwenImageParams`
#: (the TypedDict of `runware:108@1`, generated from Runware's schemas 20260623192341).
SCHEDULERS: tuple[str, ...] = (
    'DDIM', 'DDIMScheduler', 'DDPMScheduler', 'DEISMultistepScheduler', 'Default', 'DPM++',
    'DPM++ 2M', 'DPM++ 2M Beta', 'DPM++ 2M Exponential', 'DPM++ 2M Karras', 'DPM++ 2M SDE',
    'DPM++ 2M SDE Beta', 'DPM++ 2M SDE Exponential', 'DPM++ 2M SDE Karras',
    'DPM++ 2M SDE Uniform', 'DPM++ 2M Uniform', 'DPM++ 3M', 'DPM++ 3M Beta',
    'DPM++ 3M Exponential', 'DPM++ 3M Karras', 'DPM++ 3M SDE Uniform', 'DPM++ 3M Uniform',
    'DPM++ Beta', 'DPM++ Exponential', 'DPM++ Karras', 'DPM++ SDE', 'DPM++ SDE Beta',
    'DPM++ SDE Exponential', 'DPM++ SDE Karras', 'DPM++ Uniform', 'DPM++ Uniform Beta',
    'DPM++ Uniform Exponential', 'DPM++ Uniform Karras', 'DPMSolverMultistepInverse',
    'DPMSolverMultistepScheduler', 'DPMSolverSinglestepScheduler',
    'EDMDPMSolverMultistepScheduler', 'EDMEulerScheduler', 'Euler', 'Euler a', 'Euler Beta',
    'Euler Exponential', 'Euler Karras', 'EulerAncestralDiscreteScheduler',
    'EulerDiscreteScheduler', 'FlowMatchEulerDiscreteScheduler', 'Heun',
    'HeunDiscreteScheduler', 'Heun Karras', 'IPNDMScheduler', 'IPNDM Uniform',
    'IPNDM Uniform Beta', 'IPNDM Uniform Exponential', 'IPNDM Uniform Karras',
    'KDPM2AncestralDiscreteScheduler', 'KDPM2DiscreteScheduler', 'LCM', 'LCMScheduler', 'LMS',
    'LMSDiscreteScheduler', 'LMS Karras', 'PNDMScheduler', 'TCDScheduler', 'UniPC',
    'UniPC 2M', 'UniPC 2M Karras', 'UniPC 2M Uniform', 'UniPC 3M', 'UniPC 3M Karras',
    'UniPC 3M Uniform', 'UniPC Karras', 'UniPC Uniform', 'UniPC Uniform Beta',
    'UniPC Uniform Exponential', 'UniPC Uniform Karras',
)

#: runware:108@1's price grows with pixels and steps; the page shows $0.0058 (1024x768,
#: 28 and 30 steps), $0.0077 (1024x1024, 30) and $0.0128 (1024x1536, 30). The estimate
#: takes the dearest rate per pixel ($0.0128 for 1024x1536) and grows linearly with steps
#: above 30 (fewer steps are not assumed cheaper), never below the page's $0.0058:
#:     max(0.0058, 0.0128 * W*H / (1024*1536) * max(steps, 30) / 30)
#: An estimate, on the high side: the cost Runware reports is what the manifest records.
QWEN_20B_RATE = 0.0128 / (1024 * 1536)
QWEN_20B_MIN = 0.0058
QWEN_20B_PRICE_NOTE = ("estimate: max($0.0058, $0.0128 x W*H/(1024*1536) x max(steps, 30)/30) "
                       "from the page's examples")
#: Defaults of the page when a field is not sent.
QWEN_20B_STEPS = 20
#: What `negative_with_references` accepts: refuse the job (the page's rule) or send it
#: without its negative prompt.
NEGATIVE_WITH_REFERENCES = ("refuse", "drop")

#: Error codes that name a passing fault (worth another try) rather than a bad request.
_TRANSIENT_CODE_PARTS = ("timeout", "unavailable", "overloaded", "busy")


_QWEN_2_INFO = ModelInfo(
    id=QWEN_2,
    title="Qwen-Image-2.0 (Runware)",
    size_rule=QWEN_2_RULE,
    price_usd=0.035,
    min_prompt=2,
    max_prompt=2000,
    # An empty negative prompt is simply not sent; a present one takes 2..500.
    min_negative=2,
    max_negative=500,
    max_references=3,
    # No seed is sent: the campaign seed stays the variant identity in the key.
    seed_range=None,
)


class RunwareProvider(HttpProvider):
    """Qwen-Image models on Runware's task API."""

    info = ProviderInfo(kind="runware", billable=True, api_key_env="RUNWARE_API_KEY",
                        base_url_env="RUNWARE_BASE_URL",
                        default_base_url="https://api.runware.ai/v1", default_concurrency=4,
                        # Runware documents no retention for async results. A day, chosen
                        # long on purpose: resuming a task Runware has forgotten costs one
                        # poll (it answers that the task is unknown, and the job is
                        # generated again); giving up on one it still has costs an image.
                        task_retention=24 * 3600)

    models = {
        QWEN_2: _QWEN_2_INFO,
        # Same limits; dearer; and it refuses references together with a negative prompt.
        QWEN_2_PRO: replace(_QWEN_2_INFO, id=QWEN_2_PRO, title="Qwen-Image-2.0-Pro (Runware)",
                            price_usd=0.075),
        QWEN_20B: ModelInfo(
            id=QWEN_20B,
            title="Qwen-Image 20B (Runware runware:108@1)",
            size_rule=QWEN_20B_RULE,
            # The page shows $0.0058 to $0.0128: the price grows with steps and size.
            price_usd=0.0058,
            min_prompt=1,
            max_prompt=32000,
            min_negative=1,
            max_negative=32000,
            # Its only image input is `inputs.seedImage` (img2img from a starting image),
            # a different feature from reference images, so references are refused.
            max_references=0,
            seed_range=(0, 2**63 - 1),
            takes_prompt_extend=False,  # no promptExtend setting for this model
            takes_init_image=True,
            price_note=QWEN_20B_PRICE_NOTE,
        ),
    }

    options = {
        "output_format": OptionSpec(
            (str,), "File format Runware renders (outputFormat); the output extension "
            "follows it. Default PNG.", choices=tuple(OUTPUT_EXTS), default="PNG"),
        "output_quality": OptionSpec(
            (int,), "Compression quality of JPG/WEBP outputs (outputQuality); sent only "
            "when set.", minimum=20, maximum=99),
        "delivery": OptionSpec(
            (str,), "sync: the answer holds the image; async: acknowledged at once, then "
            "polled with getResponse. Default sync.", choices=("sync", "async"),
            affects_image=False),
        "output_type": OptionSpec(
            (str,), "How the image comes back (outputType): URL (downloaded), base64Data or "
            "dataURI (inline). Default URL.", choices=("URL", "base64Data", "dataURI"),
            affects_image=False),
        "steps": OptionSpec(
            (int,), "Denoising steps (default 20 at Runware); more steps cost more.",
            minimum=1, maximum=50, models=(QWEN_20B,)),
        "CFGScale": OptionSpec(
            (int, float), "Guidance scale: how closely the image follows the prompt.",
            minimum=1, maximum=20, models=(QWEN_20B,)),
        "scheduler": OptionSpec(
            (str,), "Diffusion scheduler, one of the 75 names Runware allows, e.g. "
            "\"DPM++ 2M Karras\" or \"Euler\".", choices=SCHEDULERS, models=(QWEN_20B,)),
        "lora": OptionSpec(
            (list,), "LoRA models, e.g. [{ model = \"civitai:120096@135931\", weight = 0.8 }] "
            "(weight -4..4, default 1; transformer high, low or both).", models=(QWEN_20B,)),
        "negative_with_references": OptionSpec(
            (str,), "The page forbids reference images with a negative prompt: \"refuse\" "
            "such a job (default) or \"drop\" its negative prompt and send the references.",
            choices=NEGATIVE_WITH_REFERENCES, models=(QWEN_2, QWEN_2_PRO), default="refuse"),
    }

    # -- configuration ----------------------------------------------------------------------

    # The base declares a class-wide default; here the extension follows each spec's options.
    @property
    def output_ext(self) -> str:  # type: ignore[override]
        """The extension of the files this provider returns, from `output_format`."""
        return OUTPUT_EXTS[str(self.spec.options.get("output_format", "PNG"))]

    @classmethod
    def check_config(cls, model: str, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = super().check_config(model, options)
        lora = options.get("lora")
        if isinstance(lora, list) and not any(key == "lora" for key, _ in problems):
            problems += [("lora", p) for p in _lora_problems(lora)]
        return problems

    def validate(self, request: GenerationRequest) -> list[str]:
        problems = super().validate(request)
        if self._refuses_negative_with_references(request):
            problems.append(
                f"{self.model.title} cannot combine reference images with a negative prompt "
                "(Runware rule: inputs.referenceImages cannot be used with negativePrompt); "
                "drop the negative prompt or the references for this asset, or set "
                f'negative_with_references = "drop" in [providers.{self.spec.name}] to send '
                "such jobs without their negative prompt")
        return problems

    def _drops_negative(self, request: GenerationRequest) -> bool:
        return (self.model.id in NO_REFERENCES_WITH_NEGATIVE and bool(request.references)
                and bool(request.negative)
                and self.spec.options.get("negative_with_references") == "drop")

    def _refuses_negative_with_references(self, request: GenerationRequest) -> bool:
        return (self.model.id in NO_REFERENCES_WITH_NEGATIVE and bool(request.references)
                and bool(request.negative) and not self._drops_negative(request))

    def key_fields(self, request: GenerationRequest) -> dict[str, Any]:
        # A dropped negative prompt is not sent: it cannot change the image.
        return {"negative": ""} if self._drops_negative(request) else {}

    def job_price_usd(self, width: int, height: int) -> float:
        if self.model.id != QWEN_20B:
            return self.price_usd()
        steps = self.spec.options.get("steps", QWEN_20B_STEPS)
        return round(max(QWEN_20B_MIN,
                         QWEN_20B_RATE * width * height * max(int(steps), 30) / 30), 6)

    # -- the request ------------------------------------------------------------------------

    def task_body(self, request: GenerationRequest, task_uuid: str) -> dict[str, Any]:
        """The `imageInference` task for `request`, field by field as the model page has it."""
        options = self.spec.options
        task: dict[str, Any] = {
            "taskType": "imageInference",
            "taskUUID": task_uuid,
            "model": self.model.id,
            "positivePrompt": request.prompt,
        }
        if request.negative and not self._drops_negative(request):
            # Absent rather than empty: the pages give the negative prompt a minimum length.
            task["negativePrompt"] = request.negative
        task["width"] = request.width
        task["height"] = request.height
        # Defaults at Runware are URL and JPG; both are sent so the answer never depends on
        # a default changing.
        task["outputType"] = options.get("output_type", "URL")
        task["outputFormat"] = options.get("output_format", "PNG")
        if "output_quality" in options:
            task["outputQuality"] = options["output_quality"]
        task["includeCost"] = True
        task["numberResults"] = 1
        if options.get("delivery", "sync") == "async":
            task["deliveryMethod"] = "async"
        if self.model.id in ALIBABA_MODELS:
            # promptExtend defaults to true at Alibaba: always say what the campaign wants.
            task["providerSettings"] = {"alibaba": {"promptExtend": bool(request.prompt_extend)}}
            if request.references:
                task["inputs"] = {"referenceImages": [data_uri(r) for r in request.references]}
        else:
            # Qwen-Image 20B takes the seed (and has no prompt rewriting to switch off).
            task["seed"] = request.seed
            for name in ("steps", "CFGScale", "scheduler", "lora"):
                if name in options:
                    task[name] = options[name]
            inputs: dict[str, Any] = {}
            if request.init_image is not None:
                inputs["seedImage"] = data_uri(request.init_image)
            if request.mask is not None:
                inputs["maskImage"] = data_uri(request.mask)
            if request.strength is not None and inputs:
                inputs["strength"] = request.strength
            if inputs:
                task["inputs"] = inputs
            if request.mask_margin is not None and request.mask is not None:
                task["maskMargin"] = request.mask_margin
        return task

    # -- generation -------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest,
                       task: TaskHandle | None = None) -> GeneratedImage:
        handle = task or TaskHandle()
        resumed = (handle.resume or {}).get("taskUUID")
        item: dict[str, Any] | None = None
        if resumed:
            # An earlier build submitted this very job and was stopped while waiting: ask
            # for that task's result instead of paying for a new one.
            task_uuid = resumed
            polling = True
        else:
            task_uuid = new_task_uuid()
            body = self.task_body(request, task_uuid)
            payload = await self.request_json("POST", self.base_url, [body])
            failure = self._task_error(payload, task_uuid)
            if failure is not None:
                raise failure
            item = _task_item(payload, task_uuid)
            is_async = body.get("deliveryMethod") == "async"
            if item is None and not is_async:
                raise ProviderError(f"the answer holds no result for task {task_uuid}",
                                    code="no_result")
            # Async: the acknowledgement holds no result yet (or may already hold it). A
            # sync answer that says "processing" is waited for the same way, not paid twice.
            polling = item is None or (not _finished(item) and (
                is_async or item.get("status") == "processing"))
            if polling:
                handle.on_submitted({"taskUUID": task_uuid})
        if polling:
            # Only getResponse from here on: a transient fault while polling is retried as
            # a poll (with_fetch_retries) and never submits (and pays for) a new task.
            deadline = time.monotonic() + self.spec.timeout
            outcome = await self.poll_until(
                f"waiting for Runware task {task_uuid}",
                lambda: self._poll(task_uuid, bool(resumed)), deadline)
            handle.on_finished()
            if isinstance(outcome, ProviderError):
                raise outcome
            item = outcome
        assert item is not None
        return await self._image(item, task_uuid)

    async def _poll(self, task_uuid: str,
                    resumed: bool = False) -> dict[str, Any] | ProviderError | None:
        """One getResponse: the finished item, the task's own failure, or None (running)."""
        try:
            payload = await self.request_json(
                "POST", self.base_url, [{"taskType": "getResponse", "taskUUID": task_uuid}])
        except ProviderError as exc:
            if resumed and _unknown_task(exc.code, exc.status, exc.message):
                raise TaskUnknown(f"task {task_uuid} is unknown to Runware: {exc.message}",
                                  code=exc.code, status=exc.status) from None
            raise
        if resumed:
            unknown = [e for e in _errors(payload)
                       if _unknown_task(_text(e.get("code")), None, _text(e.get("message")))]
            if unknown:
                raise TaskUnknown(f"task {task_uuid} is unknown to Runware: "
                                  f"{_describe(unknown[0], with_code=True)}", code="taskNotFound")
        failure = self._task_error(payload, task_uuid)
        if failure is not None:
            # Returned, not raised: with_fetch_retries would turn it into a poll failure and
            # lose whether the task's own fault is worth generating again.
            return failure
        item = _task_item(payload, task_uuid)
        if item is None or not _finished(item):
            return None
        return item

    async def _image(self, item: Mapping[str, Any], task_uuid: str) -> GeneratedImage:
        if isinstance(item.get("imageURL"), str) and item["imageURL"]:
            data = await self.image_from(item["imageURL"], url=True)
        elif isinstance(item.get("imageBase64Data"), str) and item["imageBase64Data"]:
            data = await self.image_from(item["imageBase64Data"], url=False)
        elif isinstance(item.get("imageDataURI"), str) and item["imageDataURI"]:
            data = await self.image_from(item["imageDataURI"], url=False)
        else:
            raise ProviderError(f"the result of task {task_uuid} holds no image "
                                "(no imageURL, imageBase64Data or imageDataURI)",
                                code="no_image")
        if item.get("NSFWContent") is True:
            log.warning("Runware flagged the image of task %s as NSFW", task_uuid)
        seed = item.get("seed")
        cost = item.get("cost")
        ids = {name: item[name] for name in ("taskUUID", "imageUUID")
               if isinstance(item.get(name), str)}
        return GeneratedImage(
            data=data,
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            cost=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool)
            else None,
            response_ids=ids,
        )

    # -- errors -----------------------------------------------------------------------------

    def error_message(self, status: int, payload: Any) -> tuple[str, str | None]:
        """Runware's envelope as one line: `message (parameter X)`, with the first code.

        ProviderError prints `HTTP <status> <code>: <message>`, so the line reads
        `HTTP 400 invalidPositivePrompt: ... (parameter positivePrompt)`.
        """
        errors = _errors(payload)
        if not errors:
            return f"HTTP {status}", None
        code = _text(errors[0].get("code")) or None
        parts = [_describe(errors[0], with_code=False)]
        parts += [_describe(e, with_code=True) for e in errors[1:]]
        message = "; ".join(p for p in parts if p) or f"HTTP {status}"
        if status == 401:
            message += f" (check {self.api_key_env})"
        return message, code

    def _task_error(self, payload: Any, task_uuid: str) -> ProviderError | None:
        """The failure of our task in a 2xx answer (an `errors` entry, or an item whose
        status is "error"), or None."""
        ours = [e for e in _errors(payload) if e.get("taskUUID") in (None, "", task_uuid)]
        if ours:
            code = _text(ours[0].get("code")) or "taskError"
            message = "; ".join([_describe(ours[0], with_code=False)]
                                + [_describe(e, with_code=True) for e in ours[1:]])
            return ProviderError(message or "task failed", code=code,
                                 retryable=_transient_code(code))
        item = _task_item(payload, task_uuid)
        if item is not None and item.get("status") == "error":
            code = _text(item.get("code")) or "taskError"
            error = item.get("error")
            message = (_describe(error, with_code=False) if isinstance(error, Mapping)
                       else _text(error) or _describe(item, with_code=False))
            return ProviderError(message or "task ended with status error",
                                 code=code, retryable=_transient_code(code))
        return None


# -- answer parsing (module level: pure functions of the JSON) ------------------------------


def _errors(payload: Any) -> list[Mapping[str, Any]]:
    """The entries of an `errors` envelope (a list, or one object), else []."""
    if not isinstance(payload, Mapping):
        return []
    errors = payload.get("errors", payload.get("error"))
    if isinstance(errors, Mapping):
        errors = [errors]
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, Mapping)]


def _task_item(payload: Any, task_uuid: str) -> dict[str, Any] | None:
    """The `data` item of our task (data may be a list or a single object)."""
    data = payload.get("data") if isinstance(payload, Mapping) else payload
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        return None
    for item in data:
        if isinstance(item, dict) and item.get("taskUUID") == task_uuid:
            return item
    return None


def _finished(item: Mapping[str, Any]) -> bool:
    """Whether an item is a final result (status success, or no status and an image)."""
    status = item.get("status")
    if status is not None:
        return bool(status == "success")
    return any(item.get(k) for k in ("imageURL", "imageBase64Data", "imageDataURI"))


def _describe(error: Mapping[str, Any], *, with_code: bool) -> str:
    message = _text(error.get("message")) or _text(error.get("error"))
    parameters = _parameters(error)
    code = _text(error.get("code"))
    line = f"{code}: {message}" if with_code and code else message or code
    if len(parameters) == 1:
        line += f" (parameter {parameters[0]})"
    elif parameters:
        line += f" (parameters {', '.join(parameters)})"
    return line


def _parameters(error: Mapping[str, Any]) -> list[str]:
    """Every parameter an error entry names: `parameter` is documented as a string, but
    errors about several fields name a list (or a `parameters` list): show them all."""
    found: list[str] = []
    for name in ("parameter", "parameters"):
        value = error.get(name)
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            text = _text(item)
            if text:
                found += [p.strip() for p in text.split(",") if p.strip()]
    return list(dict.fromkeys(found))


def _lora_problems(lora: list[Any]) -> list[str]:
    """What the page's `lora` rules refuse: at least one item, each a table with a
    `model` string, an optional `weight` in -4..4 and `transformer` high, low or both."""
    if not lora:
        return ["expected at least one LoRA, e.g. [{ model = \"civitai:1@2\", weight = 0.8 }]"]
    problems = []
    for i, item in enumerate(lora):
        where = f"[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: expected a table {{ model = \"...\", weight = 0.8 }}")
            continue
        unknown = sorted(set(item) - {"model", "weight", "transformer"})
        if unknown:
            problems.append(f"{where}: unknown key {unknown[0]!r} (known: model, weight, "
                            "transformer)")
        model = item.get("model")
        if not isinstance(model, str) or not model.strip():
            problems.append(f"{where}.model: expected a LoRA model identifier")
        weight = item.get("weight", 1)
        if (isinstance(weight, bool) or not isinstance(weight, int | float)
                or not -4 <= weight <= 4 or weight != weight):
            problems.append(f"{where}.weight: expected a number from -4 to 4, got {weight!r}")
        if item.get("transformer", "both") not in ("high", "low", "both"):
            problems.append(f"{where}.transformer: expected high, low or both")
    return problems


def _text(value: Any) -> str:
    """One line of text from a JSON value (error fields are strings, but be lenient)."""
    if value is None or isinstance(value, Mapping | list):
        return ""
    return " ".join(str(value).split())[:500]


def _unknown_task(code: str | None, status: int | None, message: str) -> bool:
    """Whether an answer to getResponse says the task is unknown. The code Runware uses is
    not documented: a 404, or a code or message saying "not found" / "unknown"."""
    text = f"{code or ''} {message}".lower().replace(" ", "")
    return status == 404 or "notfound" in text or "unknowntask" in text


def _transient_code(code: str) -> bool:
    lowered = code.lower()
    return any(part in lowered for part in _TRANSIENT_CODE_PARTS)


__all__ = ["RunwareProvider", "QWEN_2", "QWEN_2_PRO", "QWEN_20B", "QWEN_2_RULE",
           "QWEN_20B_RULE", "SCHEDULERS"]
