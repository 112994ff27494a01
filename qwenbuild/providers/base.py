"""The provider seam: one small interface, one module per provider.

A provider turns a provider-neutral `GenerationRequest` into an image. It knows its wire
format, its size rules, what it refuses (checked before spending) and how to get an image
back. Everything else (cache, retry policy, concurrency, outputs) lives once, outside.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..errors import ProviderError
from ..sizes import ASPECTS, SizeRule


@dataclass(frozen=True)
class Reference:
    """A local reference image: its path (for messages), content hash and bytes."""

    path: str
    sha256: str
    data: bytes = field(repr=False)
    media_type: str = "image/png"


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate, independent of any provider's wire format."""

    prompt: str
    negative: str
    width: int
    height: int
    seed: int
    prompt_extend: bool
    references: tuple[Reference, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    #: What the offline preview renderer draws (brand, copy, label); no HTTP provider uses it.
    design: Mapping[str, Any] = field(default_factory=dict)
    #: For messages only: which asset and aspect this request is for.
    asset: str = ""
    aspect: str = ""
    #: An edit: `references[0]` is the image to edit and the prompt is the instruction.
    edit: bool = False
    #: Image-to-image and inpainting (models with `takes_init_image`): the starting image,
    #: the mask of the area to repaint, how far to move from the starting image (0..1),
    #: and the context pixels around the mask. None: not asked for.
    init_image: Reference | None = None
    mask: Reference | None = None
    strength: float | None = None
    mask_margin: int | None = None


@dataclass(frozen=True)
class GeneratedImage:
    """An image a provider returned, before verification."""

    data: bytes = field(repr=False)
    #: The seed the provider reports it used (None when it does not say).
    seed: int | None = None
    #: Actual cost in USD when the provider reports it.
    cost: float | None = None
    #: Provider-side identifiers (task UUID, image UUID, job id, ...), for the cache record.
    response_ids: Mapping[str, str] = field(default_factory=dict)
    #: Set when the answer says something other than what was asked ran (another model
    #: or variant, or a price that only another variant has): the job fails loudly, the
    #: image is kept aside for inspection and its cost recorded, never used as the output.
    mismatch: str | None = None


def _ignore(*args: Any) -> None:
    return None


@dataclass
class TaskHandle:
    """What the build lends a provider for one job's asynchronous task: provider-neutral,
    so the build knows nothing of task UUIDs or job ids and providers nothing of the store.

    A provider that delivers asynchronously (it accepts a task, then is polled) calls
    `on_submitted(ids)` once the provider has accepted the task, *before* waiting for it:
    the build records the ids, so a build killed while waiting can resume that task instead
    of paying for a new one. It calls `on_finished()` once the task has ended at the
    provider (an image or the task's own failure): nothing is left to resume. When `resume`
    holds ids an earlier build recorded for this very job, the provider polls that task
    instead of submitting one, and raises `TaskUnknown` if the provider no longer knows it.
    """

    resume: Mapping[str, str] | None = None
    on_submitted: Callable[[Mapping[str, str]], None] = _ignore
    on_finished: Callable[[], None] = _ignore


class TaskUnknown(ProviderError):
    """The provider does not know a task it was asked about (expired, or never there):
    when it was a task to resume, the build generates the image again."""


@dataclass(frozen=True)
class OptionSpec:
    """One provider option a campaign may set in its `[providers.NAME]` table."""

    types: tuple[type, ...]
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    #: Model ids this option applies to (None: all of the kind's models).
    models: tuple[str, ...] | None = None
    #: False for options about transport only (delivery, how the image comes back): they
    #: stay out of the job key, so changing them never pays for an image again.
    affects_image: bool = True
    #: The value used when the option is not set; writing it out explicitly must not change
    #: the key (the request is the same), so it is left out of the key like an unset option.
    default: Any = None

    def check(self, value: Any) -> str | None:
        """Return what is wrong with `value`, or None."""
        if isinstance(value, bool) and bool not in self.types:
            return f"expected {self._type_names()}, got a boolean"
        if not isinstance(value, self.types):
            return f"expected {self._type_names()}, got {type(value).__name__} {value!r}"
        if self.choices is not None and value not in self.choices:
            import difflib

            shown = ", ".join(repr(c) for c in self.choices[:12])
            more = f", ... ({len(self.choices)} values)" if len(self.choices) > 12 else ""
            names = [c for c in self.choices if isinstance(c, str)]
            hint = (difflib.get_close_matches(value, names, n=1, cutoff=0.6)
                    if isinstance(value, str) else [])
            if not hint and isinstance(value, str):  # "dpm++ 2m karras": case and spaces
                folded = {" ".join(c.lower().split()): c for c in names}
                hint = [folded[k] for k in (" ".join(value.lower().split()),) if k in folded]
            tip = f" (did you mean {hint[0]!r}?)" if hint else ""
            return f"{value!r} is not one of {shown}{more}{tip}"
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                return "expected a finite number"
            if self.minimum is not None and value < self.minimum:
                return f"{value} is below the minimum {self.minimum:g}"
            if self.maximum is not None and value > self.maximum:
                return f"{value} is above the maximum {self.maximum:g}"
        return None

    def _type_names(self) -> str:
        names = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}
        return " or ".join(names.get(t, t.__name__) for t in self.types)


@dataclass(frozen=True)
class ModelInfo:
    """What qwenbuild knows about one model of a provider."""

    id: str
    title: str
    size_rule: SizeRule
    #: Price per image in USD from the provider's page (an estimate where it varies).
    price_usd: float
    max_prompt: int = 2000
    max_negative: int = 500
    min_prompt: int = 1
    min_negative: int = 1
    max_references: int = 0
    seed_range: tuple[int, int] | None = (0, 2147483647)
    #: Whether the model can rewrite the prompt; when it cannot, prompt_extend is left out
    #: of the key (it cannot change the image).
    takes_prompt_extend: bool = True
    #: Whether it takes a starting image and a mask (image-to-image, inpainting).
    takes_init_image: bool = False
    #: How `price_usd` was arrived at when it is an estimate (shown by `qwenbuild
    #: providers` and the README); empty when it is the provider's list price.
    price_note: str = ""


@dataclass(frozen=True)
class ProviderInfo:
    """What the rest of qwenbuild knows about a provider kind: its metadata, no behaviour.

    The build asks `billable` (budgets, --max-jobs, the spending guard of watch) instead of
    naming kinds; the CLI lists the variables; the campaign loader takes the defaults.
    """

    kind: str
    #: Whether its images cost money.
    billable: bool
    #: Environment variable holding the API key (None: no key needed).
    api_key_env: str | None = None
    #: Environment variable that overrides the API base URL, and the URL itself.
    base_url_env: str | None = None
    default_base_url: str | None = None
    default_concurrency: int = 4
    #: How long the provider keeps an asynchronous task's result (seconds), for resuming a
    #: task after a kill; None: it has no tasks to resume.
    task_retention: float | None = None


@dataclass(frozen=True)
class ProviderSpec:
    """A provider as the campaign declares it, validated."""

    name: str
    kind: str
    model: str
    concurrency: int
    options: Mapping[str, Any]
    base_url: str | None = None
    timeout: float = 300.0
    max_retries: int = 3


class ImageProvider(Protocol):
    """What the planner and the build need from a provider (`Provider` implements it)."""

    info: ClassVar[ProviderInfo]
    spec: ProviderSpec
    model: ModelInfo

    @property
    def output_ext(self) -> str: ...

    def size_for(self, aspect: str) -> tuple[int, int]: ...

    def validate(self, request: GenerationRequest) -> list[str]: ...

    def key_fields(self, request: GenerationRequest) -> dict[str, Any]: ...

    def key_options(self) -> dict[str, Any]: ...

    def price_usd(self) -> float: ...

    def size_problem(self, request: GenerationRequest, width: int,
                     height: int) -> str | None: ...

    def job_price_usd(self, width: int, height: int) -> float: ...

    async def generate(self, request: GenerationRequest,
                       task: TaskHandle | None = None) -> GeneratedImage: ...

    async def aclose(self) -> None: ...


class Provider:
    """Base class of every provider. Subclasses set `info`, `models`, `options` and
    implement `generate`; the rules shared by all (options, limits, sizes) live here."""

    info: ClassVar[ProviderInfo]
    #: Models of this kind, by id; the first is the default.
    models: ClassVar[dict[str, ModelInfo]]
    options: ClassVar[dict[str, OptionSpec]] = {}
    #: File extension of the images this provider returns ("png", "jpg", "webp").
    output_ext: ClassVar[str] = "png"

    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        self.model = self.models[spec.model]

    # -- configuration, checked when the campaign loads ------------------------------------

    @classmethod
    def default_model(cls) -> str:
        return next(iter(cls.models))

    @classmethod
    def check_config(cls, model: str, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems with a provider table, as (key, message) pairs."""
        import difflib

        problems: list[tuple[str, str]] = []
        if model not in cls.models:
            known = ", ".join(repr(m) for m in cls.models)
            hint = difflib.get_close_matches(model, list(cls.models), n=1)
            tip = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(("model", f"unknown model {model!r} for kind {cls.info.kind!r}{tip}; "
                                      f"known: {known}"))
            return problems
        for key, value in options.items():
            spec = cls.options.get(key)
            if spec is None or (spec.models is not None and model not in spec.models):
                allowed = [k for k, o in cls.options.items()
                           if o.models is None or model in o.models]
                hint = difflib.get_close_matches(
                    key, allowed + ["kind", "model", "concurrency", "base_url", "timeout",
                                    "max_retries"], n=1)
                tip = f" (did you mean {hint[0]!r}?)" if hint else ""
                listed = ", ".join(allowed) if allowed else "none"
                problems.append((key, f"unknown key{tip}; options of {cls.info.kind} model "
                                      f"{model}: {listed}"))
                continue
            wrong = spec.check(value)
            if wrong:
                problems.append((key, wrong))
        return problems

    # -- planning --------------------------------------------------------------------------

    def size_for(self, aspect: str) -> tuple[int, int]:
        """The pixel size sent for an aspect ratio."""
        return self.model.size_rule.resolve(aspect)

    def key_fields(self, request: GenerationRequest) -> dict[str, Any]:
        """Provider-specific inputs that change the image, beyond the common ones."""
        return {}

    def environment_paths(self) -> tuple[list[Path], list[Path]]:
        """Files and folders on this machine whose change may change `key_environment`
        (files by their stat, folders by their mtime), for the no-op fast path."""
        return [], []

    def key_environment(self) -> str:
        """A digest of what on this machine, outside the campaign, key_fields depends on
        (the preview's installed fonts); "" when nothing. The planner's key memo includes
        it, so a change there recomputes the keys instead of reusing remembered ones."""
        return ""

    def key_options(self) -> dict[str, Any]:
        """The options that can change the image (those marked affects_image)."""
        kept = {}
        for name, value in self.spec.options.items():
            spec = self.options.get(name)
            if spec is not None and (not spec.affects_image
                                     or (spec.default is not None and value == spec.default)):
                continue
            kept[name] = value
        return kept

    def validate(self, request: GenerationRequest) -> list[str]:
        """What this provider would refuse in `request`, checked before any spending."""
        m = self.model
        problems = []
        if not m.min_prompt <= len(request.prompt) <= m.max_prompt:
            problems.append(f"prompt is {len(request.prompt)} characters; {m.title} takes "
                            f"{m.min_prompt} to {m.max_prompt}")
        if request.negative and not m.min_negative <= len(request.negative) <= m.max_negative:
            problems.append(f"negative prompt is {len(request.negative)} characters; "
                            f"{m.title} takes {m.min_negative} to {m.max_negative}")
        if len(request.references) > m.max_references:
            if m.max_references == 0:
                problems.append(f"{m.title} takes no reference images "
                                f"({len(request.references)} given)")
            else:
                problems.append(f"{len(request.references)} reference images; {m.title} takes "
                                f"at most {m.max_references}")
        if (request.init_image or request.mask) and not m.takes_init_image:
            given = "init_image" if request.init_image else "mask"
            problems.append(f"{m.title} takes no starting image or mask ({given} given); "
                            "image-to-image and inpainting need runware:108@1")
        if m.seed_range is not None:
            lo, hi = m.seed_range
            if not lo <= request.seed <= hi:
                problems.append(f"seed {request.seed} is outside {lo}..{hi} for {m.title}")
        if not self.model.size_rule.accepts(request.width, request.height):
            problems.append(f"size {request.width}x{request.height} is not accepted by {m.title}")
        return problems

    def supports_aspect(self, aspect: str) -> bool:
        return aspect in ASPECTS

    #: How far each side of a returned image may be from the size asked for, as a fraction
    #: (providers may round to their own grid). The pages promise the size sent; 2% lets
    #: a provider round to a multiple of 64 at 2K without letting a wrong image through.
    size_tolerance: ClassVar[float] = 0.02

    def size_problem(self, request: GenerationRequest, width: int, height: int) -> str | None:
        """Why an image of `width` x `height` is not an answer to `request`, or None."""
        tolerance = self.size_tolerance
        if (abs(width - request.width) <= tolerance * request.width
                and abs(height - request.height) <= tolerance * request.height):
            return None
        return (f"the image is {width}x{height}, not the {request.width}x{request.height} "
                "asked for")

    def price_usd(self) -> float:
        """Price of one image as this provider is configured (the model's list price;
        providers whose options change the price, such as a Pro variant, override it)."""
        return self.model.price_usd

    def job_price_usd(self, width: int, height: int) -> float:
        """Estimated price of one image of `width` x `height` (providers whose price grows
        with the size or the steps override it; by default the flat `price_usd`)."""
        return self.price_usd()

    # -- generation ------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest,
                       task: TaskHandle | None = None) -> GeneratedImage:
        """Generate `request`'s image. `task` (asynchronous providers only): record and
        resume the provider-side task (see TaskHandle)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections. Called once when the build ends."""

