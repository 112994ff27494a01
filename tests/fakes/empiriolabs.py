"""A fake EmpirioLabs: `POST /v1/images/generations` and `GET /v1/jobs/{id}`.

It checks bodies strictly against the parameter table of the Qwen-Image-2.0 page (the
contract): an unknown field, a wrong type or a value out of range is a 400 with the
OpenAI-style envelope, so a provider that drifts from the docs fails its tests. Jobs are
asynchronous unless the body says `"sync": true`; images are real PNGs served under
`<base>/files/`, sized like the service would size them.

Knobs: `running_statuses` and `running_polls` (how a job progresses), `scripts` (per-job
faults chosen by a prompt substring: failed, never finishing, corrupt image, expired),
`enum_sizes` (the size answered per named aspect), `report_cost`, plus the `faults` and
`latency` of FakeApp.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .server import FakeApp, Reply, derived_image, png_bytes, source_bytes

FAKE_API_KEY = "el-FAKE-KEY-0123456789abcdef"

MODEL_ID = "qwen-image-2-0"
VARIANTS = ("qwen-image-2.0-pro-2026-04-22", "qwen-image-2.0-pro-2026-03-03",
            "qwen-image-2.0-pro", "qwen-image-2.0")
#: What the service uses when no variant is sent: a Pro snapshot (docs' default).
DEFAULT_VARIANT = VARIANTS[0]
PRICES = {"standard": 0.0322, "pro": 0.069}
ASPECT_RATIOS = ("16:9", "9:16", "1:1", "3:2", "2:3", "4:3", "3:4", "5:4", "4:5")
#: The size answered for each named aspect: 2048 on the long side, sides multiples of 16.
ENUM_SIZES: dict[str, tuple[int, int]] = {
    "16:9": (2048, 1152), "9:16": (1152, 2048), "1:1": (2048, 2048),
    "3:2": (2048, 1360), "2:3": (1360, 2048), "4:3": (2048, 1536), "3:4": (1536, 2048),
    "5:4": (2048, 1632), "4:5": (1632, 2048),
}
#: Every documented body field (the table, plus `model_variant` and `sync` from
#: PROTOCOLS.md).
FIELDS = frozenset({
    "prompt", "model", "model_variant", "aspect_ratio", "use_custom_size", "custom_width",
    "custom_height", "image", "num_images", "negative_prompt", "prompt_extend", "watermark",
    "seed", "response_format", "sync",
})


@dataclass
class JobScript:
    """What happens to the jobs whose prompt contains a given text."""

    #: End the job with status "failed" and this message.
    fail: str | None = None
    #: Stay "running" forever.
    never_finish: bool = False
    #: Serve truncated PNG bytes as the image.
    corrupt: bool = False
    #: Forget the job at once: every poll answers 404 (as after the one-hour retention).
    expire: bool = False


@dataclass
class FakeJob:
    id: str
    body: dict[str, Any]
    script: JobScript
    variant: str
    created_at: int
    polls: int = 0
    completed_at: int | None = None
    result: dict[str, Any] | None = None


class BadRequest(Exception):
    def __init__(self, message: str, code: str = "invalid_parameter") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def envelope(status: int, message: str, type_: str, code: str,
             headers: dict[str, str] | None = None) -> Reply:
    """An error answer in the OpenAI-style envelope."""
    return Reply(status, {"error": {"message": message, "type": type_, "code": code}},
                 headers or {})


class FakeEmpiriolabs(FakeApp):
    generation_path = "/v1/images/generations"

    def __init__(self, api_key: str = FAKE_API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.jobs: dict[str, FakeJob] = {}
        #: Statuses a job goes through before it ends, one per poll (cycled).
        self.running_statuses: list[str] = ["running"]
        self.running_polls = 2
        #: (prompt substring, script): the first match applies to a new job.
        self.scripts: list[tuple[str, JobScript]] = []
        self.enum_sizes = dict(ENUM_SIZES)
        self.report_cost = True
        #: Say which variant ran (`model_variant` in the answer; an undocumented field).
        self.report_variant = True
        #: Behave like the older service: ignore `model_variant` and run the default Pro
        #: snapshot (and bill it).
        self.ignore_variant = False
        #: Every image billed, as (variant, price).
        self.billed: list[tuple[str, float]] = []

    # -- inspection helpers for tests -----------------------------------------------------

    def generations(self) -> list[dict[str, Any]]:
        """Bodies of every generation request received, valid or not."""
        return [r.json() for r in self.requests
                if r.method == "POST" and r.path == "/v1/images/generations"]

    def polls(self) -> list[str]:
        return [r.path for r in self.requests
                if r.method == "GET" and r.path.startswith("/v1/jobs/")]

    def finish_all(self) -> None:
        """Let every job held running (`never_finish`) complete at its next poll."""
        with self.lock:
            self.scripts = [(p, s) for p, s in self.scripts if not s.never_finish]
            for job in self.jobs.values():
                if job.script.never_finish:
                    job.script = JobScript()
                    job.polls = max(job.polls, self.running_polls)

    def script(self, prompt_part: str, script: JobScript) -> None:
        self.scripts.append((prompt_part, script))

    def error_reply(self, status: int, message: str,
                    headers: dict[str, str] | None = None) -> Reply:
        codes = {401: ("authentication_error", "invalid_api_key"),
                 402: ("billing_error", "insufficient_credits"),
                 429: ("rate_limit_error", "rate_limit_exceeded")}
        type_, code = codes.get(status, ("api_error", "upstream_error"))
        return envelope(status, message, type_, code, headers)

    def empty_answer(self) -> Reply:
        return Reply(200, {"status": "queued"})

    # -- routing --------------------------------------------------------------------------

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        path = path.split("?", 1)[0]
        if not self._authorised(headers):
            return envelope(401, "Invalid API key provided.", "authentication_error",
                            "invalid_api_key")
        if method == "POST" and path == "/v1/images/generations":
            return self._generate(body)
        if method == "GET" and path.startswith("/v1/jobs/"):
            return self._job(path[len("/v1/jobs/"):])
        return envelope(404, f"No route {method} {path}.", "invalid_request_error",
                        "not_found")

    def _authorised(self, headers: dict[str, str]) -> bool:
        bearer = headers.get("authorization", "")
        return bearer == f"Bearer {self.api_key}" or headers.get("x-api-key") == self.api_key

    def _generate(self, raw: bytes) -> Reply:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return envelope(400, "Body is not JSON.", "invalid_request_error", "invalid_json")
        try:
            check_body(body)
        except BadRequest as exc:
            return envelope(400, exc.message, "invalid_request_error", exc.code)
        variant = (DEFAULT_VARIANT if self.ignore_variant
                   else body.get("model_variant", DEFAULT_VARIANT))
        script = next((s for part, s in self.scripts if part in body["prompt"]), JobScript())
        now = int(time.time())
        job = FakeJob(id=f"job_{uuid.uuid4().hex[:16]}", body=body, script=script,
                      variant=variant, created_at=now)
        if body.get("sync"):
            if script.fail:
                return envelope(502, script.fail, "api_error", "upstream_error")
            result = self._complete(job)
            answer: dict[str, Any] = {"created": now, **result}
            if self.report_variant:
                answer["model_variant"] = job.variant
            if self.report_cost:
                # The cost field is undocumented; the fake uses the `usage.cost` shape here
                # and a top-level `cost` for jobs, both of which the provider reads.
                answer["usage"] = {"cost": self._price(job)}
            return Reply(200, answer)
        with self.lock:
            if not script.expire:
                self.jobs[job.id] = job
        return Reply(200, {"job_id": job.id, "status": "queued"})

    def _job(self, job_id: str) -> Reply:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return envelope(404, f"Job {job_id} not found.", "invalid_request_error",
                                "job_not_found")
            job.polls += 1
            polls = job.polls
        answer: dict[str, Any] = {
            "job_id": job.id, "status": "", "progress": 0.0, "created_at": job.created_at,
            "completed_at": None, "result": None, "error": None,
        }
        if job.script.never_finish or polls <= self.running_polls:
            answer["status"] = self.running_statuses[(polls - 1) % len(self.running_statuses)]
            answer["progress"] = round(min(0.9, polls / (self.running_polls + 1)), 2)
            return Reply(200, answer)
        job.completed_at = job.completed_at or int(time.time())
        answer["completed_at"] = job.completed_at
        if job.script.fail:
            answer["status"] = "failed"
            answer["error"] = {"message": job.script.fail, "code": "upstream_error"}
            return Reply(200, answer)
        if job.result is None:
            job.result = self._complete(job)
        answer.update(status="completed", progress=1.0, result=job.result)
        if self.report_variant:
            answer["model_variant"] = job.variant
        if self.report_cost:
            answer["cost"] = self._price(job)
        return Reply(200, answer)

    # -- images ---------------------------------------------------------------------------

    def _complete(self, job: FakeJob) -> dict[str, Any]:
        """Render and bill the job's image; its OpenAI-style `{"data": [...]}` result."""
        body = job.body
        if body.get("use_custom_size"):
            size = (body["custom_width"], body["custom_height"])
        else:
            # Text-to-image without a ratio defaults to 16:9 (docs).
            size = self.enum_sizes[body.get("aspect_ratio", "16:9")]
        sources = [source_bytes(i) for i in body.get("image", [])]
        # An edit (input images) is derived from them; a generation is not.
        data = derived_image(*size, sources) if sources else png_bytes(*size,
                                                                        color=(30, 120, 160))
        if job.script.corrupt or self.corrupts(body["prompt"]):
            data = data[: len(data) // 2]
        with self.lock:
            self.billed.append((job.variant, self._price(job)))
        if body.get("response_format", "url") == "b64_json":
            item = {"b64_json": base64.b64encode(data).decode("ascii")}
        else:
            item = {"url": self.add_file(f"{job.id}.png", data)}
        return {"data": [item]}

    @staticmethod
    def _price(job: FakeJob) -> float:
        pro = job.variant.startswith("qwen-image-2.0-pro")
        return PRICES["pro" if pro else "standard"]


def check_body(body: Any) -> None:
    """Raise BadRequest for anything the documented parameter table does not allow."""
    if not isinstance(body, dict):
        raise BadRequest("Body must be a JSON object.", "invalid_json")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise BadRequest(f"Unknown parameter(s): {', '.join(unknown)}.", "unknown_parameter")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("prompt is required.", "missing_parameter")
    if body.get("model") != MODEL_ID:
        raise BadRequest(f"model must be {MODEL_ID!r}, got {body.get('model')!r}.",
                         "model_not_found")
    if "model_variant" in body and body["model_variant"] not in VARIANTS:
        raise BadRequest(f"model_variant must be one of {', '.join(VARIANTS)}.")
    if "aspect_ratio" in body and body["aspect_ratio"] not in ASPECT_RATIOS:
        raise BadRequest(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}.")
    for name in ("use_custom_size", "prompt_extend", "watermark", "sync"):
        if name in body and not isinstance(body[name], bool):
            raise BadRequest(f"{name} must be a boolean.")
    custom = [n for n in ("custom_width", "custom_height") if n in body]
    if body.get("use_custom_size"):
        if len(custom) != 2:
            raise BadRequest("use_custom_size needs custom_width and custom_height.")
        if "aspect_ratio" in body:
            raise BadRequest("aspect_ratio and use_custom_size are exclusive.")
        width, height = body["custom_width"], body["custom_height"]
        for name, value in (("custom_width", width), ("custom_height", height)):
            if not _is_int(value) or not 512 <= value <= 2048:
                raise BadRequest(f"{name} must be a number in 512..2048.")
        if not 512 * 512 <= width * height <= 2048 * 2048:
            raise BadRequest("Total pixel area must be in [512x512, 2048x2048].")
    elif custom:
        raise BadRequest(f"{custom[0]} is only allowed when use_custom_size=true.")
    if "image" in body:
        images = body["image"]
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise BadRequest("image must be an array of image URLs.")
        if len(images) > 3:
            raise BadRequest("Up to 3 input images are allowed.")
        for image in images:
            if not image.startswith(("https://", "http://", "data:image/")):
                raise BadRequest("image entries must be URLs.")
    if "num_images" in body and (not _is_int(body["num_images"])
                                 or not 1 <= body["num_images"] <= 6):
        raise BadRequest("num_images must be in 1..6.")
    if "negative_prompt" in body and not isinstance(body["negative_prompt"], str):
        raise BadRequest("negative_prompt must be a string.")
    if "seed" in body and (not _is_int(body["seed"])
                           or not 0 <= body["seed"] <= 2147483647):
        raise BadRequest("seed must be in 0..2147483647.")
    if body.get("response_format", "url") not in ("url", "b64_json"):
        raise BadRequest("response_format must be url or b64_json.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
