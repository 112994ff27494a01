"""A benchmark-only provider that answers at once with a tiny image, so that campaigns of
20,000 jobs can be built in seconds and no-op builds measured against them.

Registered by bench/child.py as kind "instant"; never part of qwenbuild itself.
"""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from functools import lru_cache

from qwenbuild.providers.base import (
    GeneratedImage,
    GenerationRequest,
    ModelInfo,
    Provider,
    ProviderInfo,
    TaskHandle,
)
from qwenbuild.sizes import SizeRule


@lru_cache(maxsize=4096)
def _png(seed: int) -> bytes:
    """A valid 8x8 PNG whose colour depends on the seed (written by hand: fast)."""
    r, g, b = seed & 255, (seed >> 8) & 255, (seed >> 16) & 255
    raw = b"".join(b"\x00" + bytes((r, g, b)) * 8 for _ in range(8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    out = io.BytesIO()
    out.write(b"\x89PNG\r\n\x1a\n")
    out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)))
    out.write(chunk(b"IDAT", zlib.compress(raw)))
    out.write(chunk(b"IEND", b""))
    return out.getvalue()


class InstantProvider(Provider):
    # Billable, so that it stands for a paid provider in every measure.
    info = ProviderInfo(kind="instant", billable=True, default_concurrency=64)
    models = {"tiny": ModelInfo(id="tiny", title="instant", price_usd=0.0,
                                size_rule=SizeRule(step=16, min_side=16, max_side=64,
                                                   native_area=32 * 32),
                                max_prompt=100_000, max_negative=100_000, min_prompt=0,
                                min_negative=0)}
    output_ext = "png"

    def validate(self, request: GenerationRequest) -> list[str]:
        return []

    def size_problem(self, request: GenerationRequest, width: int, height: int) -> str | None:
        return None  # an 8x8 stand-in for every size: the measures are about the build

    async def generate(self, request: GenerationRequest,
                       task: TaskHandle | None = None) -> GeneratedImage:
        mark = os.environ.get("BENCH_FIRST_CALL_FILE")
        if mark and not os.path.exists(mark):
            with open(mark, "w") as fh:  # when the first "request" went out
                fh.write(repr(time.time()))
        return GeneratedImage(data=_png(request.seed & 0xFFFFFF), seed=request.seed, cost=0.0)
