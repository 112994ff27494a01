"""A strict fake of Runware's task API (`POST /v1`) for the three Qwen-Image models.

It follows the model pages (alibaba:qwen-image@2.0, @2.0-pro, runware:108@1) and the
transport notes of PROTOCOLS.md: the body must be a JSON array of tasks, each with a UUID
v4 `taskUUID` used once; top-level fields are checked against each model's allow-list,
values against their documented ranges, and anything the pages reject is answered with
Runware's envelope `{"errors": [{code, message, parameter, taskType, taskUUID}]}`. So a
body that passes here is one the documentation allows.

Successful tasks render a real image (PNG, JPEG or WEBP per `outputFormat`) of exactly
width x height, served from `/files/<imageUUID>.<ext>` or inlined per `outputType`, with
a seed (the one sent for 108; a stable made-up one for the Alibaba models, which take
none) and `cost` when `includeCost` is true. `deliveryMethod: "async"` is acknowledged
with `{"data": []}`; `getResponse` then says `processing` `async_polls` times, then
`success` (or `error`, or never finishes, per the knobs below).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .server import FakeApp, Recorded, Reply, derived_image, source_bytes

API_PATH = "/v1"
FAKE_KEY = "rw-fake-key-5d0c8a61f3e947b2"

QWEN_2 = "alibaba:qwen-image@2.0"
QWEN_2_PRO = "alibaba:qwen-image@2.0-pro"
QWEN_20B = "runware:108@1"

#: Price per image as the model pages' example answers show it (108 at 20 steps).
PRICES: dict[str, float] = {QWEN_2: 0.035, QWEN_2_PRO: 0.075, QWEN_20B: 0.0058}

#: API options every model page lists (platform-level), plus the generation basics.
_COMMON = frozenset({
    "taskType", "taskUUID", "outputType", "outputFormat", "outputQuality", "webhookURL",
    "deliveryMethod", "uploadEndpoint", "safety", "ttl", "includeCost", "numberResults",
    "inputs", "model", "positivePrompt", "negativePrompt", "width", "height",
})
#: Top-level fields per model, from each page's parameter list.
ALLOWED: dict[str, frozenset[str]] = {
    QWEN_2: _COMMON | {"providerSettings"},
    QWEN_2_PRO: _COMMON | {"providerSettings"},
    QWEN_20B: _COMMON | {
        "acceleratorOptions", "seed", "steps", "scheduler", "CFGScale", "maskMargin",
        "outpaint", "lora", "controlNet", "settings", "advancedFeatures",
    },
}
#: Fields of `inputs` per model.
INPUTS: dict[str, frozenset[str]] = {
    QWEN_2: frozenset({"referenceImages"}),
    QWEN_2_PRO: frozenset({"referenceImages"}),
    QWEN_20B: frozenset({"seedImage", "maskImage", "strength"}),
}
#: (min, max) length of positivePrompt and negativePrompt per model.
PROMPT_LIMITS: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    QWEN_2: ((2, 2000), (2, 500)),
    QWEN_2_PRO: ((2, 2000), (2, 500)),
    QWEN_20B: ((1, 32000), (1, 32000)),
}
MAX_SEED = 2**63 - 1
FORMATS: dict[str, tuple[str, str, str]] = {  # outputFormat -> (Pillow, ext, media type)
    "PNG": ("PNG", "png", "image/png"),
    "JPG": ("JPEG", "jpg", "image/jpeg"),
    "WEBP": ("WEBP", "webp", "image/webp"),
}
#: The scheduler names runware:108@1 allows ("Allowed values 75 values" on the page), as
#: Runware's Python SDK lists them (Runware/runware-python v1.4.0, task_map.py).
SCHEDULERS = frozenset({
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
})
_DATA_URI = re.compile(r"^data:image/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=]+$")
_URL = re.compile(r"^https?://\S+$")


class TaskRejected(Exception):
    """One task broke a documented rule: becomes an entry of the errors envelope."""

    def __init__(self, status: int, code: str, message: str, parameter: str | None = None,
                 task_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.parameter = parameter
        #: The taskType the entry names when it is not the request task's own (getResponse
        #: reports the failed imageInference task).
        self.task_type = task_type


@dataclass(frozen=True)
class TaskError:
    """A scripted per-task error: answered with the envelope, naming the task's UUID.
    `status` 200 answers a 2xx whose body carries `errors` (Runware does this per task)."""

    status: int
    code: str
    message: str
    parameter: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error_entry(code: str, message: str, parameter: str | None = None,
                task_type: str | None = None, task_uuid: str | None = None) -> dict[str, Any]:
    """One entry of Runware's errors envelope."""
    entry: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        entry["parameter"] = parameter
    if task_type is not None:
        entry["taskType"] = task_type
    if task_uuid is not None:
        entry["taskUUID"] = task_uuid
    return entry


def error_reply(status: int, code: str, message: str, parameter: str | None = None,
                headers: dict[str, str] | None = None) -> Reply:
    """A whole-request error answer (for `app.faults`)."""
    return Reply(status, {"errors": [error_entry(code, message, parameter)]},
                 dict(headers or {}))


@dataclass
class _Async:
    task: dict[str, Any]
    polls_left: int
    outcome: str  # success | error | never


@dataclass
class _PromptFault:
    part: str
    fault: Reply | TaskError
    times: int | None  # None: every time


class FakeRunware(FakeApp):
    """Runware's `POST /v1`, strict about the documented contract.

    Knobs:
    * `faults` (FakeApp): scripted whole replies, by path prefix;
    * `slow`: seconds before each API answer (`release()` ends the waits);
    * `fail_when(prompt part, fault)`: per-task faults, to hit one job of a build;
    * `draw_when(prompt part, draw)`: valid tasks whose prompt holds the text get the image
      `draw(task, sources)` makes (`sources`: the bytes of its input images), to serve
      images with something to read on them (the next one only, first match first);
    * `corrupt_when`: serve bytes that are no image for prompts holding this text ("": all);
    * `async_polls`: `processing` answers before an async task's outcome;
    * `async_error_when` / `async_stuck_when`: async tasks whose prompt holds the text end
      with status error / never finish; `async_error` (code, message) and
      `async_error_shape` ("errors" or "data") say how that error is answered.
    """

    generation_path = API_PATH

    def __init__(self, api_key: str = FAKE_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.async_polls = 2
        self.async_error_when: str | None = None
        self.async_stuck_when: str | None = None
        self.async_error: tuple[str, str] = ("inferenceFailed",
                                             "The provider could not generate this image")
        #: "errors": the failure comes in the errors envelope; "data": as an item with
        #: status error (PROTOCOLS.md leaves the shape open, so both are served).
        self.async_error_shape = "errors"
        self.prompt_faults: list[_PromptFault] = []
        self.used_uuids: set[str] = set()
        self.pending: dict[str, _Async] = {}
        self._images: dict[tuple[int, int, str], bytes] = {}
        self._image_lock = threading.Lock()
        #: Seconds each API answer waits. Unlike FakeApp.latency, `release()` cuts the wait
        #: short, so a test's teardown never waits for an answer nobody reads any more.
        self.slow = 0.0
        self._released = threading.Event()
        #: Replies to the next getResponse polls (before the fake looks at them).
        self.poll_replies: deque[Reply] = deque()
        self.drawn: deque[tuple[str, Any]] = deque()

    def finish_stuck(self) -> None:
        """Let every async task that was held in `processing` succeed at its next poll."""
        with self.lock:
            self.async_stuck_when = None
            for job in self.pending.values():
                if job.outcome == "never":
                    job.outcome, job.polls_left = "success", 0

    def release(self) -> None:
        """End every pending and future `slow` wait at once."""
        self._released.set()

    # -- test helpers -------------------------------------------------------------------------

    def _is_generation(self, body: bytes) -> bool:
        return b'"imageInference"' in body

    def error_reply(self, status: int, message: str,
                    headers: dict[str, str] | None = None) -> Reply:
        codes = {401: "invalidApiKey", 429: "tooManyRequests", 500: "internalServerError",
                 502: "badGateway", 503: "serviceUnavailable", 504: "failedTaskTimeout"}
        return error_reply(status, codes.get(status, "error"), message, headers=headers)

    def empty_answer(self) -> Reply:
        return Reply(200, {"data": []})

    def fail_when(self, prompt_part: str, fault: Reply | TaskError, times: int | None = 1) -> None:
        """Answer `fault` to imageInference tasks whose positivePrompt holds `prompt_part`
        (the next `times` of them; None: all)."""
        with self.lock:
            self.prompt_faults.append(_PromptFault(prompt_part, fault, times))

    def draw_when(self, prompt_part: str, draw: Any) -> None:
        """Serve `draw(task, sources) -> bytes` (in the task's outputFormat) as the image of
        the next valid imageInference task whose positivePrompt holds `prompt_part`."""
        with self.lock:
            self.drawn.append((prompt_part, draw))

    def _drawing(self, prompt: str) -> Any:
        with self.lock:
            for i, (part, draw) in enumerate(self.drawn):
                if part in prompt:
                    del self.drawn[i]
                    return draw
        return None

    def api_posts(self) -> list[Recorded]:
        """POSTs to the API path (generations and polls), in order."""
        return [r for r in self.requests if r.method == "POST" and r.path == API_PATH]

    def tasks(self, task_type: str = "imageInference") -> list[dict[str, Any]]:
        """Every task object of `task_type` received (parseable bodies only), in order."""
        found = []
        for r in self.api_posts():
            try:
                body = r.json()
            except ValueError:
                continue
            if isinstance(body, list):
                found += [t for t in body if isinstance(t, dict) and t.get("taskType") == task_type]
        return found

    def tasks_for(self, prompt_part: str) -> list[dict[str, Any]]:
        """The imageInference tasks whose positivePrompt holds `prompt_part`."""
        return [t for t in self.tasks() if prompt_part in str(t.get("positivePrompt", ""))]

    # -- routing ------------------------------------------------------------------------------

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if self.slow and self._released.wait(self.slow):
            # Released at teardown: the client gave up long ago, so close without answering
            # (writing to its closed socket would print a BrokenPipe traceback).
            return Reply(drop=True)
        if path != API_PATH:
            return error_reply(404, "notFound", f"no route {method} {path}")
        if method != "POST":
            return error_reply(405, "methodNotAllowed", "use POST")
        if headers.get("authorization") != f"Bearer {self.api_key}":
            # Never echo what was sent: a real service would not either.
            return error_reply(401, "invalidApiKey", "Invalid API key", "apiKey")
        if b'"getResponse"' in body:
            with self.lock:
                if self.poll_replies:
                    return self.poll_replies.popleft()
        try:
            tasks = json.loads(body)
        except ValueError:
            return error_reply(400, "invalidRequestBody", "The body is not valid JSON.")
        if not isinstance(tasks, list) or not tasks:
            return error_reply(400, "invalidRequestBody",
                               "The body must be a JSON array of task objects.")
        data: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        statuses: list[int] = []
        for task in tasks:
            task_type = task.get("taskType") if isinstance(task, dict) else None
            task_uuid = task.get("taskUUID") if isinstance(task, dict) else None
            try:
                if not isinstance(task, dict):
                    raise TaskRejected(400, "invalidTask", "Each task must be a JSON object.")
                fault = self._prompt_fault(task)
                if isinstance(fault, Reply):
                    return fault
                if fault is not None:
                    if fault.status != 200:
                        return Reply(fault.status, {"errors": [error_entry(
                            fault.code, fault.message, fault.parameter, task_type,
                            task_uuid)]}, dict(fault.headers))
                    raise TaskRejected(200, fault.code, fault.message, fault.parameter)
                data += self._task(task)
            except TaskRejected as exc:
                statuses.append(exc.status)
                entry = error_entry(exc.code, exc.message, exc.parameter,
                                    exc.task_type or (task_type if isinstance(task_type, str)
                                                      else None),
                                    task_uuid if isinstance(task_uuid, str) else None)
                if exc.task_type is not None:
                    entry["status"] = "error"
                errors.append(entry)
        if errors and not data and any(s != 200 for s in statuses):
            return Reply(next(s for s in statuses if s != 200), {"errors": errors})
        answer: dict[str, Any] = {"data": data}
        if errors:
            answer["errors"] = errors
        return Reply(200, answer)

    def _prompt_fault(self, task: dict[str, Any]) -> Reply | TaskError | None:
        if task.get("taskType") != "imageInference":
            return None
        prompt = str(task.get("positivePrompt", ""))
        with self.lock:
            for i, pf in enumerate(self.prompt_faults):
                if pf.part in prompt:
                    if pf.times is not None:
                        pf.times -= 1
                        if pf.times <= 0:
                            del self.prompt_faults[i]
                    return pf.fault
        return None

    def _task(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        task_type = task.get("taskType")
        task_uuid = task.get("taskUUID")
        if not isinstance(task_uuid, str) or not _is_uuid4(task_uuid):
            raise TaskRejected(400, "invalidTaskUUID",
                               "taskUUID must be a UUID v4 string.", "taskUUID")
        if task_type == "getResponse":
            return self._get_response(task)
        if task_type != "imageInference":
            # `authentication` exists too, but this client authenticates with the header.
            raise TaskRejected(400, "invalidTaskType",
                               f"Unsupported taskType {task_type!r}.", "taskType")
        with self.lock:
            if task_uuid in self.used_uuids:
                raise TaskRejected(400, "duplicateTaskUUID",
                                   "taskUUID must be unique per task.", "taskUUID")
            self.used_uuids.add(task_uuid)
        check_inference(task)
        if task.get("deliveryMethod") == "async":
            prompt = task["positivePrompt"]
            outcome = ("never" if self.async_stuck_when is not None
                       and self.async_stuck_when in prompt else
                       "error" if self.async_error_when is not None
                       and self.async_error_when in prompt else "success")
            with self.lock:
                self.pending[task_uuid] = _Async(task, self.async_polls, outcome)
            return []
        return self._results(task)

    def _get_response(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        unknown = set(task) - {"taskType", "taskUUID"}
        if unknown:
            name = sorted(unknown)[0]
            raise TaskRejected(400, "unsupportedParameter",
                               f"getResponse takes no {name!r}.", name)
        task_uuid = task["taskUUID"]
        with self.lock:
            job = self.pending.get(task_uuid)
            if job is None:
                raise TaskRejected(400, "taskNotFound",
                                   "No async task with this taskUUID.", "taskUUID")
            if job.outcome == "never" or job.polls_left > 0:
                job.polls_left -= 1
                return [{"taskType": "imageInference", "taskUUID": task_uuid,
                         "status": "processing"}]
        if job.outcome == "error":
            code, message = self.async_error
            if self.async_error_shape == "data":
                # The other shape a client must accept: the item itself says status error.
                return [{"taskType": "imageInference", "taskUUID": task_uuid,
                         "status": "error", "code": code, "message": message}]
            raise TaskRejected(200, code, message, task_type="imageInference")
        return [{**item, "status": "success"} for item in self._results(job.task)]

    # -- results ------------------------------------------------------------------------------

    def _results(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        model = task["model"]
        width, height = _size(task)
        pil, ext, media = FORMATS[task.get("outputFormat", "JPG")]
        out_type = task.get("outputType", "URL")
        corrupt = self.corrupts(task["positivePrompt"])
        inputs = task.get("inputs", {})
        # An edit (reference images, or a starting image and mask) is derived from them.
        sources = [source_bytes(v) for v in inputs.get("referenceImages", [])] + [
            source_bytes(inputs[n]) for n in ("seedImage", "maskImage") if n in inputs]
        items = []
        draw = self._drawing(task["positivePrompt"])
        for n in range(task.get("numberResults", 1)):
            image_uuid = str(uuid.uuid4())
            data = (b"<html>this is not an image</html>" if corrupt
                    else draw(task, sources) if draw is not None
                    else derived_image(width, height, sources, pil) if sources
                    else self.image(width, height, pil))
            if model == QWEN_20B:
                seed = task.get("seed", _made_up_seed(task["taskUUID"], n)) + n
            else:
                # The Alibaba models take no seed; Runware reports the one used.
                seed = _made_up_seed(task["taskUUID"], n)
            item: dict[str, Any] = {"taskType": "imageInference",
                                    "taskUUID": task["taskUUID"], "imageUUID": image_uuid}
            if out_type == "URL":
                item["imageURL"] = self.add_file(f"{image_uuid}.{ext}", data, media)
            elif out_type == "base64Data":
                item["imageBase64Data"] = base64.b64encode(data).decode("ascii")
            else:
                item["imageDataURI"] = (f"data:{media};base64,"
                                        + base64.b64encode(data).decode("ascii"))
            item["seed"] = seed
            item["NSFWContent"] = False
            if task.get("includeCost") is True and self.report_cost:
                item["cost"] = PRICES[model]
            items.append(item)
        return items

    def image(self, width: int, height: int, fmt: str = "PNG") -> bytes:
        """A solid image of exactly width x height (cached: renders are reused per size)."""
        key = (width, height, fmt)
        with self._image_lock:
            if key not in self._images:
                shade = int(hashlib.sha256(f"{width}x{height}".encode()).hexdigest()[:6], 16)
                color = (shade >> 16 & 255, shade >> 8 & 255, shade & 255)
                buf = io.BytesIO()
                Image.new("RGB", (width, height), color).save(buf, fmt)
                self._images[key] = buf.getvalue()
            return self._images[key]


# -- the documented rules ---------------------------------------------------------------------


def check_inference(task: dict[str, Any]) -> None:
    """Raise TaskRejected for anything the model's page does not allow."""
    model = task.get("model")
    if model is None:
        raise TaskRejected(400, "missingParameter", "model is required.", "model")
    if model not in ALLOWED:
        raise TaskRejected(400, "invalidModel", f"Unknown model {model!r}.", "model")
    for name in task:
        if name not in ALLOWED[model]:
            where = (" (reference images must be nested inside inputs)"
                     if name == "referenceImages" else "")
            raise TaskRejected(400, "unsupportedParameter",
                               f"{name} is not a parameter of {model}{where}.", name)
    _check_choice(task, "outputType", ("URL", "base64Data", "dataURI"))
    _check_choice(task, "outputFormat", tuple(FORMATS))
    _check_choice(task, "deliveryMethod", ("sync", "async"))
    _check_int(task, "outputQuality", 20, 99)
    _check_int(task, "numberResults", 1, 20)
    if "includeCost" in task and not isinstance(task["includeCost"], bool):
        raise TaskRejected(400, "invalidIncludeCost", "includeCost must be a boolean.",
                           "includeCost")
    (p_min, p_max), (n_min, n_max) = PROMPT_LIMITS[model]
    prompt = task.get("positivePrompt")
    if not isinstance(prompt, str):
        raise TaskRejected(400, "missingPositivePrompt", "positivePrompt is required.",
                           "positivePrompt")
    if not p_min <= len(prompt) <= p_max:
        raise TaskRejected(400, "invalidPositivePrompt",
                           f"positivePrompt must be {p_min} to {p_max} characters long.",
                           "positivePrompt")
    if "negativePrompt" in task:
        negative = task["negativePrompt"]
        if not isinstance(negative, str) or not n_min <= len(negative) <= n_max:
            raise TaskRejected(400, "invalidNegativePrompt",
                               f"negativePrompt must be {n_min} to {n_max} characters long.",
                               "negativePrompt")
    _check_size(task, model)
    _check_inputs(task, model)
    if model == QWEN_20B:
        _check_int(task, "seed", 0, MAX_SEED)
        _check_int(task, "steps", 1, 50)
        if "CFGScale" in task:
            value = task["CFGScale"]
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not 1 <= value <= 20):
                raise TaskRejected(400, "invalidCFGScale", "CFGScale must be from 1 to 20.",
                                   "CFGScale")
        if "scheduler" in task and task["scheduler"] not in SCHEDULERS:
            raise TaskRejected(400, "invalidScheduler", "Unknown scheduler.", "scheduler")
        if "lora" in task:
            _check_lora(task["lora"])
        if "maskMargin" in task:
            _check_int(task, "maskMargin", 32, 128)
            if "maskImage" not in task.get("inputs", {}):
                raise TaskRejected(400, "invalidMaskMargin",
                                   "maskMargin applies to inpainting: send inputs.maskImage.",
                                   "maskMargin")
    else:
        _check_provider_settings(task)


def _check_size(task: dict[str, Any], model: str) -> None:
    has_w, has_h = "width" in task, "height" in task
    if model == QWEN_20B:
        for name in ("width", "height"):
            if name not in task:
                raise TaskRejected(400, "missingParameter", f"{name} is required.", name)
            value = task[name]
            if (isinstance(value, bool) or not isinstance(value, int)
                    or not 128 <= value <= 2048 or value % 16):
                raise TaskRejected(400, f"invalid{name.capitalize()}",
                                   f"{name} must be a multiple of 16 from 128 to 2048.", name)
        return
    if has_w != has_h:
        missing = "height" if has_w else "width"
        raise TaskRejected(400, "missingParameter",
                           "width and height must be used together.", missing)
    if not has_w:
        return
    for name in ("width", "height"):
        value = task[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2048:
            raise TaskRejected(400, f"invalid{name.capitalize()}",
                               f"{name} must be an integer up to 2048.", name)
    if not 512 * 512 <= task["width"] * task["height"] <= 2048 * 2048:
        raise TaskRejected(400, "invalidDimensions",
                           "width x height must be within 512x512 and 2048x2048 pixels.",
                           "width")


def _check_inputs(task: dict[str, Any], model: str) -> None:
    if "inputs" not in task:
        return
    inputs = task["inputs"]
    if not isinstance(inputs, dict):
        raise TaskRejected(400, "invalidInputs", "inputs must be an object.", "inputs")
    for name in inputs:
        if name not in INPUTS[model]:
            raise TaskRejected(400, "unsupportedParameter",
                               f"inputs.{name} is not a parameter of {model}.",
                               f"inputs.{name}")
    if "referenceImages" in inputs:
        refs = inputs["referenceImages"]
        if not isinstance(refs, list) or not 1 <= len(refs) <= 3:
            raise TaskRejected(400, "invalidReferenceImages",
                               "referenceImages takes 1 to 3 images.", "inputs.referenceImages")
        for ref in refs:
            if not isinstance(ref, str) or not (_DATA_URI.match(ref) or _URL.match(ref)
                                                or _is_uuid4(ref) or _is_base64(ref)):
                raise TaskRejected(400, "invalidReferenceImages",
                                   "Each reference image must be a UUID, URL, data URI or "
                                   "base64 string.", "inputs.referenceImages")
        if model in (QWEN_2, QWEN_2_PRO) and "negativePrompt" in task:
            raise TaskRejected(400, "conflictingParameters",
                               "inputs.referenceImages cannot be used with negativePrompt.",
                               "negativePrompt")


    for name in ("seedImage", "maskImage"):
        if name in inputs and not _is_image_value(inputs[name]):
            raise TaskRejected(400, f"invalid{name[0].upper()}{name[1:]}",
                               f"{name} must be a UUID, URL, data URI or base64 string.",
                               f"inputs.{name}")
    if "maskImage" in inputs and "seedImage" not in inputs:
        raise TaskRejected(400, "missingSeedImage", "maskImage needs seedImage.",
                           "inputs.seedImage")
    if "strength" in inputs:
        value = inputs["strength"]
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not 0 <= value <= 1):
            raise TaskRejected(400, "invalidStrength", "strength must be from 0 to 1.",
                               "inputs.strength")
        if "seedImage" not in inputs:
            raise TaskRejected(400, "missingSeedImage", "strength needs seedImage.",
                               "inputs.seedImage")


def _is_image_value(value: Any) -> bool:
    return isinstance(value, str) and bool(_DATA_URI.match(value) or _URL.match(value)
                                           or _is_uuid4(value) or _is_base64(value))


def _check_lora(lora: Any) -> None:
    if not isinstance(lora, list) or not lora:
        raise TaskRejected(400, "invalidLora", "lora takes at least one item.", "lora")
    for i, item in enumerate(lora):
        where = f"lora[{i}]"
        if not isinstance(item, dict) or set(item) - {"model", "weight", "transformer"}:
            raise TaskRejected(400, "invalidLora", "lora items take model, weight and "
                               "transformer only.", where)
        if not isinstance(item.get("model"), str) or not item["model"]:
            raise TaskRejected(400, "invalidLoraModel", "lora model is required.",
                               f"{where}.model")
        weight = item.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
                -4 <= weight <= 4):
            raise TaskRejected(400, "invalidLoraWeight", "lora weight must be from -4 to 4.",
                               f"{where}.weight")
        if item.get("transformer", "both") not in ("high", "low", "both"):
            raise TaskRejected(400, "invalidLoraTransformer",
                               "transformer must be high, low or both.", f"{where}.transformer")


def _check_provider_settings(task: dict[str, Any]) -> None:
    if "providerSettings" not in task:
        return
    settings = task["providerSettings"]
    if not isinstance(settings, dict) or set(settings) - {"alibaba"}:
        raise TaskRejected(400, "invalidProviderSettings",
                           "providerSettings takes only an alibaba object.", "providerSettings")
    alibaba = settings.get("alibaba", {})
    if not isinstance(alibaba, dict) or set(alibaba) - {"promptExtend"}:
        raise TaskRejected(400, "invalidProviderSettings",
                           "providerSettings.alibaba takes only promptExtend.",
                           "providerSettings.alibaba")
    if "promptExtend" in alibaba and not isinstance(alibaba["promptExtend"], bool):
        raise TaskRejected(400, "invalidPromptExtend", "promptExtend must be a boolean.",
                           "providerSettings.alibaba.promptExtend")


def _check_choice(task: dict[str, Any], name: str, choices: tuple[str, ...]) -> None:
    if name in task and task[name] not in choices:
        raise TaskRejected(400, f"invalid{name[0].upper()}{name[1:]}",
                           f"{name} must be one of {', '.join(choices)}.", name)


def _check_int(task: dict[str, Any], name: str, low: int, high: int) -> None:
    if name not in task:
        return
    value = task[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TaskRejected(400, f"invalid{name[0].upper()}{name[1:]}",
                           f"{name} must be an integer from {low} to {high}.", name)


def _size(task: dict[str, Any]) -> tuple[int, int]:
    return int(task.get("width", 1024)), int(task.get("height", 1024))


def _is_uuid4(value: str) -> bool:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == value.lower()


def _is_base64(value: str) -> bool:
    return len(value) >= 16 and re.fullmatch(r"[A-Za-z0-9+/]+=*", value) is not None


def _made_up_seed(task_uuid: str, n: int) -> int:
    """A random-looking seed that stays the same for the same task."""
    digest = hashlib.sha256(f"{task_uuid}:{n}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
