"""The campaign file's schema: pydantic models of its TOML tables.

Types only: what each table and field may hold, with the descriptions that become the JSON
Schema's. Checks of meaning (unknown templates, providers, references) are in `load.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from ..sizes import ASPECTS

#: Names used as file or folder names (asset ids, export and provider names). `$` is the
#: end of the text here: pydantic checks it with Rust's regex engine, and JSON Schema with
#: ECMAScript's (in Python's `re`, `$` also matches before a final newline: use `is_name`).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}



def is_name(value: object) -> bool:
    """Whether `value` may be an asset id, export or provider name (the whole text)."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def _check_name(value: str) -> str:
    # Belt and braces: the pattern above is checked by pydantic's engine; this is the same
    # rule in Python, on the whole text, whatever engine pydantic uses.
    if not is_name(value):
        raise ValueError("invalid name")
    return value


Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN), AfterValidator(_check_name)]

#: A BCP 47 language tag as qwenbuild accepts it (it becomes a folder name): en, de,
#: zh-Hans, pt-BR, sr-Latn-RS.
LOCALE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$"
_LOCALE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}")


def _check_locale(value: str) -> str:
    # The whole text, as for names: no trailing newline slips through.
    if _LOCALE.fullmatch(value) is None:
        raise ValueError("invalid locale")
    return value


Locale = Annotated[str, StringConstraints(pattern=LOCALE_PATTERN),
                   AfterValidator(_check_locale)]
MAX_SEED = 2**63 - 1
MAX_VARIANTS = 100


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True,
                              frozen=True)


class CampaignSection(_Model):
    """The `[campaign]` table."""

    name: str = Field(description="Campaign name, shown in reports and the review page.")
    out: str = Field("out", description="Output root, relative to the campaign file.")
    templates: list[str] = Field(
        default_factory=lambda: ["templates"],
        description="Template folders, relative to the campaign file, searched in order.",
    )
    allow_external_references: bool = Field(
        False,
        description="Allow reference images outside the repository holding the campaign.",
    )
    allow_external_templates: bool = Field(
        False,
        description="Allow template folders and template files (after following symbolic "
                    "links) outside the repository holding the campaign.",
    )
    budget: float | None = Field(
        None, ge=0, allow_inf_nan=False,
        description="Most a build may spend, in USD: a build whose estimated cost is higher "
                    "stops before any request (`build --budget` overrides it).",
    )
    locales: list[Locale] | None = Field(
        None, min_length=1,
        description="Locales to build every asset in (BCP 47 tags such as en, de, zh-Hans); "
                    "the first is the master locale. Outputs go to "
                    "<aspect>/<provider>/<locale>/.",
    )


class AssetFields(_Model):
    """Fields an asset may set; `[defaults]` may set any of them for every asset."""

    template: str | None = Field(None, description="Prompt template file name (Jinja2).")
    negative: str | None = Field(
        None, description="Negative prompt, a template string rendered like the prompt."
    )
    aspects: list[str] | None = Field(
        None, min_length=1, description=f"Aspect ratios to build: {', '.join(ASPECTS)}."
    )
    providers: list[str] | None = Field(
        None, min_length=1,
        description="Provider names from [providers.*]; `preview` exists without a table.",
    )
    seeds: list[int] | None = Field(None, min_length=1, description="Seeds, one output each.")
    variants: int | None = Field(
        None, ge=1, le=MAX_VARIANTS,
        description="Instead of seeds: this many seeds derived from the asset id.",
    )
    references: list[str] | None = Field(
        None, description="Reference image files, relative to the campaign file."
    )
    prompt_extend: bool | None = Field(
        None, description="Let the provider rewrite the prompt (off keeps it as written)."
    )
    init_image: str | None = Field(
        None, description="Image-to-image (runware:108@1): the starting image, relative to "
                          "the campaign file.")
    mask: str | None = Field(
        None, description="Inpainting (runware:108@1, with init_image): the mask image of the "
                          "area to repaint, relative to the campaign file.")
    strength: float | None = Field(
        None, ge=0, le=1, allow_inf_nan=False,
        description="With init_image: how far to move from it, 0..1 (Runware's default 0.8).")
    mask_margin: int | None = Field(
        None, ge=32, le=128,
        description="With mask: context pixels around the masked area, 32..128.")
    copy_: dict[str, Any] | None = Field(
        None, alias="copy", description="Copy for the template, merged over [copy]."
    )
    expect_text: list[str] | None = Field(
        None,
        description="Lines that must appear in the image, template strings rendered like "
                    "the prompt; default: copy.headline and copy.subtitle (`check`).",
    )
    edit: str | None = Field(
        None,
        description="For an asset made `from` another: the edit instruction sent with the "
                    "parent image, a template string rendered like the prompt.",
    )
    locale_strategy: Literal["generate", "edit"] | None = Field(
        None,
        description="How the other locales of an asset are made: `generate` (default) a "
                    "fresh image from the localised copy; `edit` the master locale's image "
                    "with its text replaced.",
    )
    locales: dict[str, dict[str, Any]] | None = Field(
        None,
        description="Copy per locale (`[assets.locales.de]`), merged over the asset's copy.",
    )


class ParentSpec(_Model):
    """`from = { asset = "key-visual", aspect = "1:1", provider = "draft", variant = 1 }`:
    which output of another asset an asset is edited from."""

    asset: Name = Field(description="The parent asset's id.")
    aspect: str | None = Field(
        None, description="The parent's aspect ratio (default: the child's when the parent "
                          "has it, else the parent's first).")
    provider: str | None = Field(
        None, description="The parent's provider (default: the child's when the parent has "
                          "it, else the parent's first).")
    variant: int | None = Field(
        None, ge=1, le=MAX_VARIANTS,
        description="The parent's variant, 1-based (default: the picked one in the review "
                    "file, else the first).")


class AssetSpec(AssetFields):
    """One `[[assets]]` entry."""

    id: Name = Field(description="Asset id: letters, digits, '-' and '_'; unique.")
    from_: Name | ParentSpec | None = Field(
        None, alias="from",
        description="Make this asset by editing another asset's output (its id, or a table "
                    "naming the aspect, provider and variant); see `edit`.",
    )


class ProviderTable(BaseModel):
    """A `[providers.NAME]` table. Keys other than these are options of the provider kind."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    kind: str = Field(description="Provider kind: preview, runware, aimlapi or empiriolabs.")
    model: str | None = Field(None, description="Model id; the kind's default when absent.")
    concurrency: int | None = Field(None, ge=1, le=64, description="Requests in flight.")
    base_url: str | None = Field(None, description="API base URL (else the env variable).")
    timeout: float | int = Field(300, gt=0, le=3600,
                                 description="Overall seconds one job may take.")
    max_retries: int = Field(3, ge=0, le=10, description="Retries of transient faults.")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="Provider options (may also be top-level keys).")


class ExportSpec(_Model):
    """One `[[exports]]` entry: a rendition derived by Pillow from the outputs of one aspect
    ratio, written to `<out>/exports/<name>/<provider>/<asset>[-vN].<format>`."""

    name: Name = Field(description="Export name, the folder under <out>/exports/; unique.")
    aspect: str = Field(description=f"Aspect ratio of the outputs it is cut from: "
                                    f"{', '.join(ASPECTS)}.")
    width: int = Field(ge=1, le=8192, description="Exact width in pixels.")
    height: int = Field(ge=1, le=8192, description="Exact height in pixels.")
    format: Literal["png", "jpg", "webp"] = Field(
        "png", description="File format: png, jpg or webp.")
    quality: int = Field(90, ge=1, le=100,
                         description="Encoder quality for jpg and webp (1..100; png ignores it).")
    focus: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: [0.5, 0.5], min_length=2, max_length=2,
        description="Focal point [x, y] as fractions of the width and height (0..1): the crop "
                    "keeps it as close to the centre as the image allows.",
    )


class CampaignFile(_Model):
    """The whole campaign file."""

    campaign: CampaignSection = Field(
        description="The [campaign] table: name, output folder, template folders, budget.")
    brand: dict[str, Any] = Field(default_factory=dict,
                                  description="Free-form brand table; templates see `brand`.")
    copy_: dict[str, Any] = Field(default_factory=dict, alias="copy",
                                  description="Campaign-wide copy, merged under each asset's.")
    locales: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Campaign-wide copy per locale (`[locales.de]`), merged over [copy] for "
                    "that locale.")
    defaults: AssetFields = Field(default_factory=AssetFields,
                                  description="Defaults for every asset field.")
    providers: dict[str, ProviderTable] = Field(default_factory=dict,
                                                description="Named providers.")
    assets: list[AssetSpec] = Field(min_length=1, description="The assets to build.")
    exports: list[ExportSpec] = Field(
        default_factory=list,
        description="Renditions at exact pixel sizes, cut from the outputs after each build.")
