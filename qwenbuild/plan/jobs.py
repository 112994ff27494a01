"""Jobs: one image to produce (asset x aspect x provider x seed), and which jobs a command
selects."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..campaign import Asset, Campaign
from ..errors import UsageError
from ..providers.base import GenerationRequest, Reference
from ..sizes import aspect_dir


@dataclass(frozen=True, eq=False, slots=True)
class Job:
    """One image to produce: asset x aspect x provider x seed.

    The rendered request (prompt, negative prompt, references) is made on first use: when
    the key is known from an earlier run with the same inputs, a job that is up to date is
    never rendered at all. A job rendered while planning keeps only its prompts (`texts`),
    from which the request is formed again without rendering; the executor `release`s the
    request once the job is done, so a build holds at most a few requests at a time.
    """

    asset: str
    aspect: str
    provider: str
    kind: str
    model: str
    seed: int
    variant: int
    output: str  # relative to the campaign's output root, POSIX separators
    width: int
    height: int
    key: str
    #: Whether its provider charges for images (budgets and spending guards count it).
    billable: bool
    make: Callable[[], tuple[GenerationRequest, dict[str, Any]]] = field(repr=False)
    _made: list[tuple[GenerationRequest, dict[str, Any]]] = field(
        default_factory=list, repr=False)
    #: The locale of the copy (None: a campaign without locales).
    locale: str | None = None
    #: A job made by editing another job's output: that output (relative to the output
    #: root). Until the parent's image is known its key is "" (see `Plan.resolve`).
    parent: str | None = None
    #: For a job with a parent: its request and key fields from the parent's image.
    derive: Callable[[Reference], tuple[GenerationRequest, dict[str, Any]]] | None = field(
        default=None, repr=False)
    #: A cheap digest of every input but the parent's image (see `Fingerprints`).
    fingerprint: str = field(default="", repr=False)
    #: Its rendered (prompt, negative prompt), when known without rendering.
    texts: tuple[str, str] | None = field(default=None, repr=False)

    @property
    def pending(self) -> bool:
        """A job with a parent whose image is not known yet (no key)."""
        return self.parent is not None and not self.key
    #: For the candidate of a locked output (`build --candidates`): that output's path.
    #: `output` is then the candidate's own path, beside it.
    candidate_of: str | None = None

    def _materialise(self) -> tuple[GenerationRequest, dict[str, Any]]:
        if not self._made:
            self._made.append(self.make())
        return self._made[0]

    @property
    def rendered(self) -> bool:
        """Whether the request is made already (reading it costs nothing then)."""
        return bool(self._made)

    @property
    def request(self) -> GenerationRequest:
        return self._materialise()[0]

    @property
    def key_fields(self) -> dict[str, Any]:
        return self._materialise()[1]

    @property
    def prompts(self) -> tuple[str, str]:
        """(prompt, negative prompt), without forming the request when they are known."""
        if self.texts is not None:
            return self.texts
        request = self.request
        return request.prompt, request.negative

    def release(self) -> None:
        """Drop the request formed for this job (it is formed again if asked for)."""
        self._made.clear()

    @property
    def ext(self) -> str:
        """The extension of the output file (png, jpg, webp)."""
        return self.output.rsplit(".", 1)[1]

    @property
    def label(self) -> str:
        where = f" {self.locale}" if self.locale else ""
        return f"{self.asset}{where} {self.aspect} {self.provider} seed {self.seed}"

    def with_request(self, request: GenerationRequest, fields: dict[str, Any],
                     key: str) -> Job:
        """The same output made from another request (a text reroll's new seed)."""
        made = (request, fields)
        return Job(asset=self.asset, aspect=self.aspect, provider=self.provider,
                   kind=self.kind, model=self.model, seed=request.seed, variant=self.variant,
                   output=self.output, width=self.width, height=self.height, key=key,
                   billable=self.billable, make=lambda: made, _made=[made],
                   locale=self.locale, parent=self.parent, candidate_of=self.candidate_of,
                   texts=(request.prompt, request.negative))

    def as_candidate(self, output: str) -> Job:
        """The same image written to `output`, as the candidate of this job's output."""
        return replace(self, output=output, candidate_of=self.output)


def output_path(asset: Asset, aspect: str, provider: str, ext: str, variant: int,
                locale: str | None = None) -> str:
    """`<W>x<H>/<provider>/[<locale>/]<asset>[-vN].<ext>`: the `-vN` only when the asset
    has several seeds, the locale folder only when the campaign has locales. Existing
    repositories rely on these paths; never change them silently."""
    suffix = f"-v{variant}" if len(asset.seeds) > 1 else ""
    folder = f"{locale}/" if locale else ""
    return f"{aspect_dir(aspect)}/{provider}/{folder}{asset.id}{suffix}.{ext}"


#: What makes a candidate's name: `hero-v1.png` -> `hero-v1.candidate.png`.
CANDIDATE = ".candidate"


def candidate_path(output: str) -> str:
    """Where the candidate of a locked output goes: `<stem>.candidate.<ext>` beside it
    (asset ids hold no dot, so no output of a campaign can have such a name)."""
    stem, _, ext = output.rpartition(".")
    return f"{stem}{CANDIDATE}.{ext}"


def candidate_of(path: str) -> str | None:
    """The output a candidate's path stands beside; None for any other path."""
    stem, dot, ext = path.rpartition(".")
    if dot and stem.endswith(CANDIDATE):
        return f"{stem[:-len(CANDIDATE)]}.{ext}"
    return None


@dataclass(frozen=True)
class Selection:
    """Which jobs of the campaign to consider (the CLI's --only, --provider, --aspect)."""

    only: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    aspects: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()

    def check(self, campaign: Campaign) -> None:
        problems = []
        for pattern in self.only:
            if not any(fnmatch.fnmatchcase(a.id, pattern) for a in campaign.assets):
                problems.append(f"--only {pattern}: matches no asset id of {campaign.path.name}")
        used = {p for a in campaign.assets for p in a.providers}
        for name in self.providers:
            if name not in used:
                problems.append(f"--provider {name}: no asset of {campaign.path.name} uses it "
                                f"(used: {', '.join(sorted(used))})")
        aspects = {x for a in campaign.assets for x in a.aspects}
        for aspect in self.aspects:
            if aspect not in aspects:
                problems.append(f"--aspect {aspect}: no asset of {campaign.path.name} has it "
                                f"(used: {', '.join(sorted(aspects))})")
        for locale in self.locales:
            if locale not in campaign.locales:
                problems.append(f"--locale {locale}: not a locale of {campaign.path.name} "
                                f"(its locales: {', '.join(campaign.locales) or 'none'})")
        if problems:
            raise UsageError(problems)

    def wants(self, asset: str, aspect: str, provider: str, locale: str | None = None) -> bool:
        return (
            (not self.only or any(fnmatch.fnmatchcase(asset, p) for p in self.only))
            and (not self.providers or provider in self.providers)
            and (not self.aspects or aspect in self.aspects)
            and (not self.locales or locale in self.locales)
        )
