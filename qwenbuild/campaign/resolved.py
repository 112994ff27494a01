"""A campaign after loading: every default applied, every path resolved, every check passed.

Frozen dataclasses that the rest of qwenbuild reads; nothing here knows the TOML.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..providers.base import ProviderSpec
from ..store.location import cache_root


@dataclass(frozen=True)
class Export:
    """A validated `[[exports]]` entry: a rendition at an exact pixel size, cut from the
    outputs of one aspect ratio (see `qwenbuild.exports`)."""

    name: str
    aspect: str
    width: int
    height: int
    format: str
    quality: int
    focus: tuple[float, float]


@dataclass(frozen=True)
class ParentRef:
    """Which output of another asset an asset is edited from; None parts follow the child
    (its aspect and provider when the parent has them) or the parent's defaults."""

    asset: str
    aspect: str | None = None
    provider: str | None = None
    variant: int | None = None


#: The default edit instruction of a derived asset (a template, like the prompt).
DEFAULT_EDIT = (
    "Adapt this image to a {{ asset.orientation }} {{ asset.aspect }} format "
    "({{ asset.width }}x{{ asset.height }} pixels). Keep its composition, imagery, colours, "
    "typography and every text exactly as they are; extend or crop the background where the "
    "new format needs it, and never cut off or change any lettering."
)


@dataclass(frozen=True)
class Asset:
    """An asset with defaults applied and everything resolved."""

    id: str
    index: int
    template: str
    negative: str
    aspects: tuple[str, ...]
    providers: tuple[str, ...]
    seeds: tuple[int, ...]
    references: tuple[Path, ...]
    prompt_extend: bool
    copy: dict[str, Any]
    #: `expect_text` as written (templates); None: the copy's headline and subtitle.
    expect_text: tuple[str, ...] | None = None
    #: Image-to-image and inpainting (runware:108@1): None when not asked for.
    init_image: Path | None = None
    mask: Path | None = None
    strength: float | None = None
    mask_margin: int | None = None
    #: The asset this one is edited from, with the edit instruction (a template).
    parent: ParentRef | None = None
    edit: str | None = None
    #: How locales other than the master are made: "generate" or "edit".
    locale_strategy: str = "generate"
    #: The copy of each locale other than the master's (the master's is `copy`).
    locale_copy: dict[str, dict[str, Any]] = field(default_factory=dict)

    def copy_for(self, locale: str | None) -> dict[str, Any]:
        """The copy of a locale (None or the master locale: `copy`)."""
        return self.locale_copy.get(locale, self.copy) if locale else self.copy


@dataclass(frozen=True)
class Campaign:
    """A loaded, validated campaign."""

    path: Path
    #: The campaign file as the user named it (for messages).
    shown: str
    name: str
    root: Path
    out: Path
    template_dirs: tuple[Path, ...]
    repo_root: Path
    brand: dict[str, Any]
    copy: dict[str, Any]
    providers: dict[str, ProviderSpec]
    assets: tuple[Asset, ...]
    #: Most a build may spend in USD (None: no limit).
    budget: float | None = None
    exports: tuple[Export, ...] = ()
    #: The locales every asset is built in, master first; empty: no locales (today's
    #: output paths, without a locale folder).
    locales: tuple[str, ...] = ()

    @property
    def extra_inputs(self) -> tuple[Path, ...]:
        """Files beside the campaign that change what a build does (present or not): the
        repository's qwenbuild.toml (the team cache) and the campaign's review file."""
        review = "review.toml" if self.path.name == "campaign.toml" else \
            f"{self.path.stem}.review.toml"  # as review/decisions.py names it
        return (self.repo_root / "qwenbuild.toml", self.path.with_name(review))

    @property
    def master_locale(self) -> str | None:
        return self.locales[0] if self.locales else None
    #: The folder template files must stay in (None: campaign.allow_external_templates).
    template_root: Path | None = None

    @property
    def cache_dir(self) -> Path:
        return cache_root(self.repo_root)


def derive_seed(asset_id: str, index: int) -> int:
    """The seed of variant `index` (0-based) of an asset: stable across machines."""
    digest = hashlib.sha256(f"qwenbuild-variant:{asset_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
