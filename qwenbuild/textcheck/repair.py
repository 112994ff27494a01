"""Text repair: an edit request that corrects the lines an image reads wrong.

A red image (a line read wrong) is repaired on its own provider, before any reroll:

- a model that takes reference images (Qwen-Image 2.0 and Pro everywhere, the preview)
  gets an **edit** request: the image as `references[0]`, `GenerationRequest.edit`, and an
  instruction made from the wrong lines as the prompt: "Change the text 'SUMNER MAKRET'
  to 'SUMMER MARKET'; keep everything else exactly as it is." (`instruction`). The
  preview draws the copy again over the image, so repairs work offline too;
- a model that takes a starting image and a mask instead (`runware:108@1`) gets an
  **inpainting** request: `init_image` the image, `mask` white boxes on black where the
  readings found the wrong lines (each padded by `MASK_PAD` of its height), `strength`
  `REPAIR_STRENGTH` (the page's range is 0..1, default 0.8), `mask_margin`
  `REPAIR_MASK_MARGIN` (32..128), and a prompt that describes the right text;
- any other model cannot be repaired (the image is rerolled).

The repair's request is the job's (the planned one, or the reroll's it repairs) with those
changes, and its key is the job's key fields with what was sent (prompt, references or
starting image and mask) and `repair`: the sha256 of the image repaired and the
instruction. Same image, same wrong reading: same key, so a repair is paid for once.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..keys import job_key
from ..plan import Job
from ..plan.derived import MEDIA_TYPES, edit_request, inpaint_request
from ..providers.base import GenerationRequest, Provider, Reference
from . import LineResult, TextResult

#: runware:108@1 inpainting: how far from the starting image (its page: 0..1, default 0.8).
#: High: the letters under the mask are drawn again, not nudged.
REPAIR_STRENGTH = 0.9
#: Context pixels around the masked area the model zooms in with (its page: 32..128).
REPAIR_MASK_MARGIN = 64
#: Padding around each wrong line's box in the mask, as a fraction of the box's height
#: (at least MASK_PAD_MIN pixels): the reading's box is tight, the glyphs' edges are not.
MASK_PAD = 0.35
MASK_PAD_MIN = 8

EDIT, INPAINT = "edit", "inpaint"


def repair_mode(provider: Provider) -> str | None:
    """How `provider` repairs text: EDIT (reference images), INPAINT (a starting image and
    a mask), or None when its model takes neither."""
    if provider.model.max_references >= 1:
        return EDIT
    if provider.model.takes_init_image:
        return INPAINT
    return None


def _quoted(text: str) -> str:
    text = " ".join(text.split())
    return f'"{text}"' if "'" in text else f"'{text}'"


def instruction(wrong: Sequence[LineResult]) -> str:
    """The edit instruction for the lines read wrong: change what was read to what the
    copy says, keep everything else."""
    changes = []
    for line in wrong:
        if line.read.strip():
            changes.append(f"the text {_quoted(line.read)} to {_quoted(line.expected)}")
        else:
            changes.append(f"the missing text to {_quoted(line.expected)}")
    return f"Change {' and '.join(changes)}; keep everything else exactly as it is."


def inpaint_prompt(wrong: Sequence[LineResult]) -> str:
    """What an inpainting model draws under the mask: the right text, as it was set."""
    texts = " and ".join(_quoted(line.expected) for line in wrong)
    noun = "Text" if len(wrong) == 1 else "Texts"
    return (f"{noun} reading exactly {texts}, spelled exactly so, in the same typeface, "
            "size, colour and style as the lettering around it, on the same background.")


def mask_png(size: tuple[int, int], boxes: Sequence[tuple[int, int, int, int]]) -> bytes:
    """A mask of `size`: black, with each box white, padded (MASK_PAD), as PNG bytes
    (deterministic: no metadata)."""
    from PIL import Image, ImageDraw

    width, height = size
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for x0, y0, x1, y1 in boxes:
        pad = max(MASK_PAD_MIN, round(MASK_PAD * max(1, y1 - y0)))
        draw.rectangle((max(0, x0 - pad), max(0, y0 - pad), min(width - 1, x1 + pad),
                        min(height - 1, y1 + pad)), fill=255)
    buf = io.BytesIO()
    mask.save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


@dataclass(frozen=True)
class Repair:
    """A repair request: the job that sends it (its own key), and what it repairs."""

    job: Job
    instruction: str
    #: The image repaired: its sha256, and its key in the store.
    source_sha256: str
    source_key: str
    mode: str

    def record(self) -> dict[str, Any]:
        """How the choice record remembers this repair (`choices.py`)."""
        return {"key": self.job.key, "source_key": self.source_key,
                "source_sha256": self.source_sha256, "instruction": self.instruction,
                "mode": self.mode}


def repair_of(base: Job, provider: Provider, source_key: str, data: bytes, ext: str,
              text: TextResult, size: tuple[int, int]) -> Repair | str:
    """The repair of an image (`data`, stored as `source_key`, `size` pixels) made by
    `base` (the planned job or a reroll), whose check is `text`; or why it cannot be
    repaired."""
    mode = repair_mode(provider)
    if mode is None:
        return f"{provider.model.title} takes no reference image, starting image or mask"
    wrong = text.wrong
    if not wrong:
        return "no line reads wrong"
    sha = hashlib.sha256(data).hexdigest()
    image = Reference(path=f"(image {sha[:12]})", sha256=sha, data=data,
                      media_type=MEDIA_TYPES.get(ext, "image/png"))
    said = instruction(wrong)
    fields = dict(base.key_fields)
    for name in ("init_image", "mask", "strength", "mask_margin"):
        fields.pop(name, None)
    repair: dict[str, Any] = {"image": sha, "instruction": said}
    if mode == EDIT:
        request = edit_request(base.request, image, said)
        fields.update(prompt=said, negative="", references=[sha])
    else:
        boxes = [line.box for line in wrong]
        if any(box is None for box in boxes):
            missing = next(line.expected for line in wrong if line.box is None)
            return f"the reading did not locate {missing!r} in the image (no mask)"
        mask = mask_png(size, [b for b in boxes if b is not None])
        mask_sha = hashlib.sha256(mask).hexdigest()
        request = inpaint_request(
            base.request, image, Reference(path="(repair mask)", sha256=mask_sha, data=mask),
            inpaint_prompt(wrong), REPAIR_STRENGTH, REPAIR_MASK_MARGIN)
        fields.update(prompt=request.prompt, references=[], init_image=sha, mask=mask_sha,
                      strength=REPAIR_STRENGTH, mask_margin=REPAIR_MASK_MARGIN)
        repair["mask"] = mask_sha
    problems = provider.validate(request)
    if problems:
        return "; ".join(problems)
    fields.update(provider.key_fields(request))
    fields["repair"] = repair
    return Repair(base.with_request(request, fields, job_key(fields)), said, sha, source_key,
                  mode)


def stored_repair(job: Job, key: str, inputs: Any) -> Job | None:
    """The job of a repair already in the store (its record's `inputs`, which hash to
    `key`): to restore it or use it again, never to send it (its images are placeholders
    named by their sha256)."""
    if not isinstance(inputs, dict) or job_key(inputs) != key:
        return None
    repair = inputs.get("repair")
    if not isinstance(repair, dict) or not isinstance(repair.get("image"), str):
        return None
    fields = dict(inputs)
    sha = repair["image"]
    image = Reference(path=f"(image {sha[:12]})", sha256=sha, data=b"")
    seed = fields.get("seed", job.seed)
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else job.seed

    def make() -> tuple[GenerationRequest, dict[str, Any]]:
        request = replace(job.request, prompt=str(fields.get("prompt", "")),
                          negative=str(fields.get("negative", "")), seed=seed)
        if isinstance(repair.get("mask"), str):
            mask = Reference(path="(repair mask)", sha256=repair["mask"], data=b"")
            request = inpaint_request(request, image, mask, request.prompt,
                                      float(fields.get("strength", REPAIR_STRENGTH)),
                                      fields.get("mask_margin"))
        else:
            request = edit_request(request, image, request.prompt)
        return request, fields

    return replace(job, key=key, seed=seed, make=make, _made=[])


__all__ = ["EDIT", "INPAINT", "MASK_PAD", "REPAIR_MASK_MARGIN", "REPAIR_STRENGTH", "Repair",
           "inpaint_prompt", "instruction", "mask_png", "repair_mode", "repair_of",
           "stored_repair"]
