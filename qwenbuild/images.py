"""Image bytes that Pillow has verified: the only kind the store accepts."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from .errors import ProviderError

#: Pillow's format names of the output extensions.
FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}


@dataclass(frozen=True)
class VerifiedImage:
    """Image bytes that Pillow has opened, verified and fully decoded."""

    data: bytes = field(repr=False)
    ext: str
    width: int
    height: int


def verify_image(data: bytes, ext: str) -> VerifiedImage:
    """Check that `data` is a complete image; convert it to `ext`'s format if it is another.

    Raises ProviderError (not retryable) for anything Pillow cannot fully decode.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ProviderError("empty image data")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            img.verify()
        with Image.open(io.BytesIO(data)) as img:
            if fmt != "PNG":
                # PNG's verify() checks every chunk's CRC through IEND, which catches
                # truncated or damaged bytes without decoding; other formats must decode.
                img.load()
            width, height = img.size
            if fmt != FORMATS[ext]:
                # Keep the file's extension honest: store what the output path says.
                converted = img.convert("RGB") if ext == "jpg" else img.copy()
                buf = io.BytesIO()
                save_kw: dict[str, Any] = {"quality": 95} if ext in ("jpg", "webp") else {}
                if ext == "webp":
                    save_kw = {"lossless": True}
                converted.save(buf, FORMATS[ext], **save_kw)
                data = buf.getvalue()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as exc:
        raise ProviderError(f"not a valid image ({len(data)} bytes): {exc}") from exc
    return VerifiedImage(data=data, ext=ext, width=width, height=height)
