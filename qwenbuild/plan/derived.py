"""Jobs made from other jobs' outputs: which output is the parent, and the edit request.

A derived job (an asset with `from`, or a locale made with the `edit` strategy) sends its
parent's output as the first reference image of an edit request whose prompt is the edit
instruction. Its key is the usual key plus `parent`: the sha256 of the parent output, so
rebuilding or re-picking the parent makes the child stale (`parent changed`) and nothing
else does. Until the parent's output is known the child has no key (`Job.pending`);
`resolve` gives it one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..campaign import Asset, Campaign, ParentRef
from ..campaign.resolved import DEFAULT_EDIT
from ..providers.base import GenerationRequest, Provider, Reference
from .jobs import output_path

#: Media types of reference images by output extension.
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


def parent_output(campaign: Campaign, assets: Mapping[str, Asset],
                  providers: Mapping[str, Provider], asset: Asset, aspect: str,
                  provider: str, variant: int, locale: str | None,
                  picks: Mapping[tuple[str, str, str, str | None], int]) -> str | None:
    """The output a job of `asset` is edited from, or None when it is made from scratch.

    A non-master locale of an asset localised by editing is made from the master locale's
    output of the same asset; else an asset with `from` is made from its parent's output
    in the same locale: the parent's aspect and provider as `from` names them, else the
    child's when the parent has them, else the parent's first; the variant as `from` names
    it, else the one picked in the review file (`picks`), else the first."""
    master = campaign.master_locale
    if locale is not None and locale != master and asset.locale_strategy == "edit":
        return output_path(asset, aspect, provider, providers[provider].output_ext, variant,
                           master)
    ref: ParentRef | None = asset.parent
    if ref is None:
        return None
    parent = assets[ref.asset]
    p_aspect = ref.aspect or (aspect if aspect in parent.aspects else parent.aspects[0])
    p_provider = ref.provider or (provider if provider in parent.providers
                                  else parent.providers[0])
    p_variant = ref.variant or picks.get((parent.id, p_aspect, p_provider, locale), 1)
    return output_path(parent, p_aspect, p_provider, providers[p_provider].output_ext,
                       p_variant, locale)


def localise_instruction(master: Mapping[str, Any], localised: Mapping[str, Any],
                         locale: str) -> str:
    """The edit instruction of a locale made by editing the master's image: replace each
    text of the copy that differs, keep everything else."""
    changes = [(old, new) for old, new in _texts(master, localised) if old != new]
    if not changes:
        return ("Keep this image exactly as it is: its layout, imagery, colours, typography "
                "and every text.")
    lines = [f"Replace the text \"{old}\" with \"{new}\"." for old, new in changes]
    return (f"Localise this image for the {locale} locale. " + " ".join(lines)
            + " Set each new text in the same place, size, colour and style as the text it "
              "replaces. Keep everything else exactly as it is: the layout, imagery, colours "
              "and typography.")


def _texts(master: Any, localised: Any) -> list[tuple[str, str]]:
    """Pairs (master text, localised text) at the same place in two copies."""
    if isinstance(master, str) and isinstance(localised, str):
        return [(master, localised)]
    if isinstance(master, Mapping) and isinstance(localised, Mapping):
        return [pair for key in master if key in localised
                for pair in _texts(master[key], localised[key])]
    if isinstance(master, Sequence) and isinstance(localised, Sequence) and not isinstance(
            master, str) and not isinstance(localised, str):
        return [pair for a, b in zip(master, localised, strict=False)
                for pair in _texts(a, b)]
    return []


def edit_template(campaign: Campaign, asset: Asset, locale: str | None) -> str | None:
    """The edit instruction's template of a derived job: None for a localised edit (its
    instruction is made from the copy change), else the asset's `edit` or the default."""
    master = campaign.master_locale
    if locale is not None and locale != master and asset.locale_strategy == "edit":
        return None
    return asset.edit or DEFAULT_EDIT


def parent_reference(rel: str, sha256: str, load: Callable[[], bytes]) -> Reference:
    """The parent output as the reference image of an edit request."""
    return Reference(path=rel, sha256=sha256, data=load(),
                     media_type=MEDIA_TYPES.get(rel.rsplit(".", 1)[-1], "image/png"))


#: A placeholder parent, to check a derived job against its provider's rules at plan
#: time (everything but the parent's bytes is known then).
PLACEHOLDER_PARENT = Reference(path="(parent)", sha256="0" * 64, data=b"")


def edit_request(request: GenerationRequest, image: Reference,
                 instruction: str) -> GenerationRequest:
    """`request` made an edit of `image` (a text repair): the instruction as the prompt,
    the image as the only reference, no negative prompt (an edit says what to change;
    Runware's 2.0 models refuse a negative prompt with references), no starting image or
    mask. Size, seed, options and design (the copy the preview draws) stay."""
    return replace(request, prompt=instruction, negative="", references=(image,), edit=True,
                   init_image=None, mask=None, strength=None, mask_margin=None)


def inpaint_request(request: GenerationRequest, image: Reference, mask: Reference,
                    prompt: str, strength: float, margin: int | None) -> GenerationRequest:
    """`request` made an inpainting of `image` where `mask` is white (a text repair on a
    model that takes a starting image and a mask instead of references)."""
    return replace(request, prompt=prompt, references=(), edit=False, init_image=image,
                   mask=mask, strength=strength, mask_margin=margin)
