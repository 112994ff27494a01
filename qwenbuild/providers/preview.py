"""The built-in offline provider: a Pillow layout comp of the copy, deterministic per seed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..sizes import QWEN_NATIVE, SizeRule
from .base import (
    GeneratedImage,
    GenerationRequest,
    ModelInfo,
    OptionSpec,
    Provider,
    ProviderInfo,
    TaskHandle,
)

PREVIEW_RULE = SizeRule(
    step=16,
    min_side=128,
    max_side=2048,
    native_area=1328 * 1328,
    native=tuple(QWEN_NATIVE.items()),
)


class PreviewProvider(Provider):
    """Draws the copy (headline, subtitle, blocks, footer) in the brand palette, offline."""

    info = ProviderInfo(kind="preview", billable=False, default_concurrency=2)
    models = {
        "comp": ModelInfo(
            id="comp",
            title="preview comp",
            size_rule=PREVIEW_RULE,
            price_usd=0.0,
            max_prompt=1_000_000,
            max_negative=1_000_000,
            min_prompt=0,
            min_negative=0,
            max_references=16,
            seed_range=(0, 2**63 - 1),
            takes_prompt_extend=False,  # it draws the copy, never the prompt
        ),
    }
    options = {
        "scale": OptionSpec(
            (int, float),
            "Render at this fraction of the native size (1.0 = the size a real Qwen model "
            "would get, as width and height in templates show it).",
            minimum=0.1,
            maximum=1.0,
            default=1.0,
        ),
    }
    output_ext = "png"

    def size_for(self, aspect: str) -> tuple[int, int]:
        width, height = super().size_for(aspect)
        scale = float(self.spec.options.get("scale", 1.0))
        if scale == 1.0:
            return width, height
        return max(16, round(width * scale / 16) * 16), max(16, round(height * scale / 16) * 16)

    def size_problem(self, request: GenerationRequest, width: int, height: int) -> str | None:
        return None  # rendered here, at the size asked (or scaled down by `scale`)

    def validate(self, request: GenerationRequest) -> list[str]:
        # The preview draws whatever it is given; only the seed range can be wrong.
        lo, hi = self.model.seed_range or (0, 2**63 - 1)
        return [] if lo <= request.seed <= hi else [f"seed {request.seed} is outside {lo}..{hi}"]

    def key_fields(self, request: GenerationRequest) -> dict[str, Any]:
        from .preview_render import RENDERER_VERSION, fonts_key

        # The comp draws the copy and palette directly, not the prompt: they are its inputs,
        # and so are the installed fonts it can draw that copy with (preview_fonts).
        return {"design": request.design, "renderer": RENDERER_VERSION,
                "fonts": fonts_key(request.design)}

    def key_environment(self) -> str:
        from .preview_fonts import environment_digest

        return environment_digest()

    def environment_paths(self) -> tuple[list[Path], list[Path]]:
        from .preview_fonts import watched_paths

        return watched_paths()

    async def generate(self, request: GenerationRequest,
                       task: TaskHandle | None = None) -> GeneratedImage:
        from .preview_render import render_edit_png, render_png

        if request.edit and request.references:
            # An edit of another output (a derived asset, a localised one): the parent
            # image with the new copy drawn over it, so the comp shows what the edit keeps.
            parent = request.references[0].data
            data = await asyncio.to_thread(render_edit_png, parent, request.width,
                                           request.height, request.seed, request.design)
        else:
            data = await asyncio.to_thread(
                render_png, request.width, request.height, request.seed, request.design
            )
        return GeneratedImage(data=data, seed=request.seed, cost=0.0)
