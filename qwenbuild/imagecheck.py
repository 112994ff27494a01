"""Checking an input image (a reference image) from its header, before anything decodes it.

A decompression bomb (a small PNG declaring 100,000 x 100,000 pixels) is refused from the
size in its header; Pillow's own bomb warning and error are turned into the same clear
message instead of escaping as a warning (an error under `-W error`) or an exception.
"""

from __future__ import annotations

import io
import struct
import warnings
from typing import Any

#: Most pixels a reference image may have (8000 x 8000).
MAX_REFERENCE_PIXELS = 64_000_000


class BadImageError(ValueError):
    """Not an image qwenbuild accepts; the message says why, for a user."""


#: The formats a reference image may have.
REFERENCE_FORMATS = ("PNG", "JPEG", "WEBP")


def header_problem(path: Any, max_pixels: int = MAX_REFERENCE_PIXELS) -> str | None:
    """Why the image file at `path` (a regular file, checked already) is refused, from its
    header alone (a few kilobytes read, nothing decoded), or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open(path, "rb") as file, Image.open(file) as img:
                width, height = img.size
                fmt = (img.format or "").upper()
    except Image.DecompressionBombError as exc:
        return f"too many pixels ({exc})"
    except UnidentifiedImageError:
        return "not a readable image (unknown format)"
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
            struct.error) as exc:
        return f"not a readable image ({exc or type(exc).__name__})"
    if width * height > max_pixels:
        return (f"it declares {width}x{height} pixels ({width * height:,}); the limit is "
                f"{max_pixels:,} pixels (a decompression bomb, or far larger than any "
                "provider takes)")
    if fmt not in REFERENCE_FORMATS:
        return f"it is {fmt or 'an unknown format'}; reference images must be PNG, JPEG or WebP"
    return None


def image_format(data: bytes, max_pixels: int = MAX_REFERENCE_PIXELS) -> str:
    """The format of the image in `data` ("PNG", "JPEG", ...), checked from its header and
    structure without decoding its pixels. Raises BadImageError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 megapixels and raises from twice that; our own limit is
            # checked from the header below, so neither may escape as a warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width <= 0 or height <= 0:
                    raise BadImageError(f"it declares an empty size {width}x{height}")
                if width * height > max_pixels:
                    raise BadImageError(
                        f"it declares {width}x{height} pixels ({width * height:,}); the limit "
                        f"is {max_pixels:,} pixels (a decompression bomb, or far larger than "
                        "any provider takes)")
                fmt = (img.format or "PNG").upper()
                img.verify()
    except BadImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"too many pixels ({exc})") from None
    except UnidentifiedImageError:
        raise BadImageError("unknown format") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
            struct.error) as exc:
        raise BadImageError(str(exc) or type(exc).__name__) from None
    return fmt

