"""The content-addressed image cache: key -> image file + JSON record.

Layout: `<cache>/objects/<key[:2]>/<key>.<ext>` and `<key>.json` beside it. The record is
written last, so an entry exists only once both files are complete; every write is
atomic. The cache is the source of truth for what was paid for: nothing here is ever
replaced by a cheaper guess.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ProviderError
from .fsutil import atomic_write

_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}


@dataclass(frozen=True)
class CacheEntry:
    key: str
    image: Path
    record: dict[str, Any]


@dataclass(frozen=True)
class VerifiedImage:
    """Image bytes that Pillow has opened, verified and fully decoded."""

    data: bytes
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
            if fmt != _FORMATS[ext]:
                # Keep the file's extension honest: store what the output path says.
                converted = img.convert("RGB") if ext == "jpg" else img.copy()
                buf = io.BytesIO()
                save_kw: dict[str, Any] = {"quality": 95} if ext in ("jpg", "webp") else {}
                if ext == "webp":
                    save_kw = {"lossless": True}
                converted.save(buf, _FORMATS[ext], **save_kw)
                data = buf.getvalue()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as exc:
        raise ProviderError(f"not a valid image ({len(data)} bytes): {exc}") from exc
    return VerifiedImage(data=data, ext=ext, width=width, height=height)


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"

    def _paths(self, key: str, ext: str) -> tuple[Path, Path]:
        folder = self.objects / key[:2]
        return folder / f"{key}.{ext}", folder / f"{key}.json"

    def get(self, key: str, ext: str) -> CacheEntry | None:
        """The entry for `key`, or None. A half-written entry counts as absent."""
        image, record_path = self._paths(key, ext)
        try:
            record = json.loads(record_path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not image.is_file():
            return None
        return CacheEntry(key, image, record)

    def has(self, key: str, ext: str) -> bool:
        image, record_path = self._paths(key, ext)
        return record_path.is_file() and image.is_file()

    def record(self, key: str, ext: str) -> dict[str, Any] | None:
        entry = self.get(key, ext)
        return entry.record if entry else None

    def put(self, key: str, image: VerifiedImage, record: dict[str, Any]) -> CacheEntry:
        """Store a verified image and its record (image first, record last)."""
        image_path, record_path = self._paths(key, image.ext)
        import hashlib

        record = {**record, "sha256": hashlib.sha256(image.data).hexdigest(),
                  "bytes": len(image.data)}
        atomic_write(image_path, image.data)
        atomic_write(record_path, (json.dumps(record, indent=2, sort_keys=True,
                                              ensure_ascii=False) + "\n").encode("utf-8"))
        return CacheEntry(key, image_path, record)

    def discard(self, key: str, ext: str) -> None:
        for path in self._paths(key, ext):
            path.unlink(missing_ok=True)
