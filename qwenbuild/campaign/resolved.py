"""A campaign after loading: every default applied, every path resolved, every check passed.

Frozen dataclasses that the rest of qwenbuild reads; nothing here knows the TOML.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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
    #: The folder template files must stay in (None: campaign.allow_external_templates).
    template_root: Path | None = None

    @property
    def cache_dir(self) -> Path:
        return cache_root(self.repo_root)


def derive_seed(asset_id: str, index: int) -> int:
    """The seed of variant `index` (0-based) of an asset: stable across machines."""
    digest = hashlib.sha256(f"qwenbuild-variant:{asset_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
