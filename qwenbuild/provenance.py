"""Provenance inside the image files: what made each output, readable by any tool.

PNG outputs carry text chunks: `parameters` in the convention of Stable Diffusion tools
(`<prompt>\\nNegative prompt: <negative>\\nSteps: 30, Seed: 7, Size: 1104x1472, Model: ...`),
which image viewers and "PNG info" panels show, plus one `qwenbuild:<field>` chunk per field
for exact reading. JPEG and WebP outputs carry the same fields as XMP (an APP1 segment in
JPEG, an `XMP ` chunk in WebP's RIFF container).

Everything is inserted byte by byte, never by re-encoding: the pixels (and every other byte
of the provider's file) are exactly what the provider sent, and the same inputs always give
the same bytes (no timestamps, no tool version), so outputs rebuilt from the cache on
another machine are byte-identical. The cache keeps the provider's bytes untouched; the
metadata is added when an output is written.
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from .contracts import CacheRecord
from .fsutil import atomic_write
from .plan import Job

log = logging.getLogger(__name__)

#: Prefix of every field name (PNG keyword, XMP element in the namespace below).
PREFIX = "qwenbuild:"
XMP_NAMESPACE = "urn:qwenbuild:provenance:1"
#: Field order in files and in `inspect`; fields not listed follow in name order.
FIELDS = ("prompt", "negative", "seed", "provider_seed", "model", "kind", "provider", "key",
          "asset", "aspect", "width", "height", "export", "source")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
#: A JPEG segment holds at most 65533 bytes of payload.
_JPEG_SEGMENT_MAX = 65533
#: Sampler settings shown in `parameters` under their Stable Diffusion names.
_SAMPLER_NAMES = (("steps", "Steps"), ("scheduler", "Sampler"), ("CFGScale", "CFG scale"))


class ProvenanceError(ValueError):
    """The bytes are not an image format that provenance can be put into or read from."""


# -- what goes in ---------------------------------------------------------------------------


def job_provenance(job: Job, record: CacheRecord, width: int, height: int) -> dict[str, str]:
    """The fields of a generated output: its prompts, seeds, model, provider and key."""
    fields = job.key_fields
    info = {
        "prompt": str(fields.get("prompt", "")),
        "negative": str(fields.get("negative", "")),
        "seed": str(job.seed),
        "model": job.model,
        "kind": job.kind,
        "provider": job.provider,
        "key": job.key,
        "asset": job.asset,
        "aspect": job.aspect,
        "width": str(width),
        "height": str(height),
    }
    if record.provider_seed is not None:
        info["provider_seed"] = str(record.provider_seed)
    info["parameters"] = sd_parameters(info, fields.get("options") or {})
    return info


def sd_parameters(info: Mapping[str, str], options: Mapping[str, Any] | None = None) -> str:
    """The `parameters` text of Stable Diffusion tools for these fields."""
    lines = [info.get("prompt", "")]
    if info.get("negative"):
        lines.append(f"Negative prompt: {info['negative']}")
    settings = [f"{label}: {options[name]}" for name, label in _SAMPLER_NAMES
                if options and name in options]
    seed = info.get("provider_seed") or info.get("seed")
    settings += [f"Seed: {seed}", f"Size: {info.get('width')}x{info.get('height')}",
                 f"Model: {info.get('model')}",
                 f"Provider: {info.get('provider')} ({info.get('kind')})",
                 f"qwenbuild key: {info.get('key')}"]
    if info.get("export"):
        settings.append(f"Export: {info['export']} of {info.get('source')}")
    lines.append(", ".join(settings))
    return "\n".join(lines)


def write_output(target: Path, data: bytes, job: Job, record: CacheRecord) -> str:
    """Write an output with its provenance (atomically); returns the sha256 of what was
    written, the value the manifest records."""
    from PIL import Image

    try:
        width, height = record.width, record.height
        if width is None or height is None:
            import io

            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
        data = embed(data, job_provenance(job, record, int(width), int(height)))
    except ProvenanceError as exc:
        # The image itself is fine (the cache verified it): write it without provenance
        # rather than fail a job that was paid for.
        log.warning("%s: written without provenance: %s", job.output, exc)
    atomic_write(target, data)
    return hashlib.sha256(data).hexdigest()


# -- embedding ------------------------------------------------------------------------------


def embed(data: bytes, info: Mapping[str, str]) -> bytes:
    """`data` with `info` embedded (replacing any provenance of ours already there)."""
    fmt = image_format(data)
    if fmt == "png":
        return _png_embed(data, info)
    if fmt == "jpg":
        return _jpeg_embed(data, info)
    if fmt == "webp":
        return _webp_embed(data, info)
    raise ProvenanceError("not a PNG, JPEG or WebP image")


def image_format(data: bytes) -> str | None:
    """"png", "jpg" or "webp" from the file's first bytes, else None."""
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _ordered(info: Mapping[str, str]) -> list[tuple[str, str]]:
    rank = {name: i for i, name in enumerate(FIELDS)}
    names = sorted((n for n in info if n != "parameters"), key=lambda n: (rank.get(n, 99), n))
    return [(n, info[n]) for n in names]


def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk, end exclusive, CRC included."""
    chunks = []
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise ProvenanceError("truncated PNG chunk")
        chunks.append((kind, pos, end))
        pos = end
        if kind == b"IEND":
            return chunks
    raise ProvenanceError("PNG without IEND")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_text(keyword: str, text: str) -> bytes:
    # tEXt holds Latin-1 only; anything else (a "•" in the copy, Chinese text) goes in an
    # uncompressed iTXt, which is UTF-8. Tools read both.
    try:
        return _png_chunk(b"tEXt", keyword.encode("latin-1") + b"\0" + text.encode("latin-1"))
    except UnicodeEncodeError:
        return _png_chunk(b"iTXt", keyword.encode("latin-1") + b"\0\0\0\0\0"
                          + text.encode("utf-8"))


def _png_keyword(data: bytes, start: int, end: int) -> bytes:
    body = data[start + 8:end - 4]
    return body.split(b"\0", 1)[0]


def _is_ours(keyword: bytes) -> bool:
    return keyword == b"parameters" or keyword.startswith(PREFIX.encode())


def _png_embed(data: bytes, info: Mapping[str, str]) -> bytes:
    chunks = _png_chunks(data)
    new = b"".join([_png_text("parameters", info["parameters"])] if "parameters" in info else [])
    new += b"".join(_png_text(PREFIX + name, value) for name, value in _ordered(info))
    parts = [data[:len(_PNG_SIGNATURE)]]
    inserted = False
    for kind, start, end in chunks:
        if kind in (b"tEXt", b"iTXt", b"zTXt") and _is_ours(_png_keyword(data, start, end)):
            continue  # ours from an earlier write: replaced, never doubled
        # Before the first image data, where Pillow and the SD tools' "PNG info" read text
        # without decoding the image (the PNG format allows text chunks anywhere).
        if kind in (b"IDAT", b"IEND") and not inserted:
            parts.append(new)
            inserted = True
        parts.append(data[start:end])
    return b"".join(parts)


def _xmp_packet(info: Mapping[str, str]) -> bytes:
    def clean(text: str) -> str:
        # Characters XML 1.0 cannot hold at all (control codes) would make the packet
        # unreadable; prompts practically never have them.
        return escape(re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "\ufffd", text))

    items = _ordered(info)
    if "parameters" in info:
        items.append(("parameters", info["parameters"]))
    body = "".join(f"<qwenbuild:{name}>{clean(value)}</qwenbuild:{name}>"
                   for name, value in items)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'xmlns:qwenbuild="{XMP_NAMESPACE}" xmp:CreatorTool="qwenbuild">'
        f"{body}</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """The APPn/COM segments after SOI as (marker, start, end), and where the rest begins."""
    segments = []
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            break
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise ProvenanceError("damaged JPEG segment")
        segments.append((marker, pos, end))
        pos = end
    return segments, pos


def _jpeg_embed(data: bytes, info: Mapping[str, str]) -> bytes:
    packet = _xmp_packet(info)
    if len(_XMP_JPEG_HEADER) + len(packet) > _JPEG_SEGMENT_MAX:
        # Only prompts of tens of thousands of characters get here: the fields alone still
        # fit (the `parameters` copy of them is dropped first).
        packet = _xmp_packet({k: v for k, v in info.items() if k != "parameters"})
        if len(_XMP_JPEG_HEADER) + len(packet) > _JPEG_SEGMENT_MAX:
            raise ProvenanceError("prompt too long for a JPEG XMP segment")
    segment = (b"\xff\xe1" + struct.pack(">H", 2 + len(_XMP_JPEG_HEADER) + len(packet))
               + _XMP_JPEG_HEADER + packet)
    segments, rest = _jpeg_segments(data)
    parts = [data[:2]]
    inserted = False
    for marker, start, end in segments:
        payload = data[start + 4:end]
        if marker == 0xE1 and payload.startswith(_XMP_JPEG_HEADER):
            continue  # an earlier XMP packet: replaced
        # JFIF (APP0) and Exif (APP1) must come first; XMP follows them.
        if not inserted and not (marker == 0xE0 or (marker == 0xE1 and payload.startswith(
                b"Exif\0"))):
            parts.append(segment)
            inserted = True
        parts.append(data[start:end])
    if not inserted:
        parts.append(segment)
    parts.append(data[rest:])
    return b"".join(parts)


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks = []
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos:pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4:pos + 8])
        if pos + 8 + size > len(data):
            raise ProvenanceError("truncated WebP chunk")
        chunks.append((kind, data[pos + 8:pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return chunks


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")


def _webp_canvas(chunks: list[tuple[bytes, bytes]]) -> tuple[int, int, bool]:
    """Width, height and whether there is alpha, from a simple (VP8 or VP8L) WebP."""
    kind, body = chunks[0]
    if kind == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", body[6:10])
        return width & 0x3FFF, height & 0x3FFF, False
    if kind == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        (bits,) = struct.unpack("<I", body[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    raise ProvenanceError(f"unexpected WebP chunk {kind!r}")


def _webp_embed(data: bytes, info: Mapping[str, str]) -> bytes:
    chunks = [(k, b) for k, b in _riff_chunks(data) if k != b"XMP "]
    if not chunks:
        raise ProvenanceError("empty WebP")
    if chunks[0][0] == b"VP8X":
        header = chunks[0][1]
        chunks[0] = (b"VP8X", bytes([header[0] | 0x04]) + header[1:])  # the XMP flag
    else:
        # A simple WebP holds nothing but the bitstream: metadata needs the extended
        # layout, whose VP8X header repeats the canvas size and says what follows.
        width, height, alpha = _webp_canvas(chunks)
        flags = 0x04 | (0x10 if alpha else 0)
        header = (bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little")
                  + (height - 1).to_bytes(3, "little"))
        chunks.insert(0, (b"VP8X", header))
    chunks.append((b"XMP ", _xmp_packet(info)))  # XMP comes last in the container
    body = b"WEBP" + b"".join(_riff_chunk(k, b) for k, b in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


# -- reading --------------------------------------------------------------------------------


def extract(data: bytes) -> dict[str, str] | None:
    """The provenance fields in an image's bytes (field names without the prefix, plus
    `parameters`), or None when it has none. Raises ProvenanceError for a non-image."""
    fmt = image_format(data)
    if fmt == "png":
        found = _png_extract(data)
    elif fmt == "jpg":
        segments, _ = _jpeg_segments(data)
        found = next((_xmp_extract(data[s + 4 + len(_XMP_JPEG_HEADER):e])
                      for m, s, e in segments
                      if m == 0xE1 and data[s + 4:e].startswith(_XMP_JPEG_HEADER)), {})
    elif fmt == "webp":
        found = next((_xmp_extract(b) for k, b in _riff_chunks(data) if k == b"XMP "), {})
    else:
        raise ProvenanceError("not a PNG, JPEG or WebP image")
    return found or None


def _png_extract(data: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    for kind, start, end in _png_chunks(data):
        body = data[start + 8:end - 4]
        if kind == b"tEXt":
            keyword, _, raw = body.partition(b"\0")
            text = raw.decode("latin-1")
        elif kind == b"iTXt":
            keyword, _, rest = body.partition(b"\0")
            compressed, rest = rest[0], rest[2:]
            _lang, _, rest = rest.partition(b"\0")
            _translated, _, raw = rest.partition(b"\0")
            try:
                text = (zlib.decompress(raw) if compressed else raw).decode("utf-8")
            except (zlib.error, UnicodeDecodeError):
                continue
        else:
            continue
        name = keyword.decode("latin-1")
        if name == "parameters" or name.startswith(PREFIX):
            found[name.removeprefix(PREFIX)] = text
    return found


def _xmp_extract(packet: bytes) -> dict[str, str]:
    import xml.etree.ElementTree as ET

    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        return {}  # never expand entities of a file from elsewhere
    try:
        root = ET.fromstring(packet)
    except ET.ParseError:
        return {}
    prefix = "{" + XMP_NAMESPACE + "}"
    return {el.tag[len(prefix):]: el.text or "" for el in root.iter()
            if isinstance(el.tag, str) and el.tag.startswith(prefix)}


def inspect_file(path: Path) -> dict[str, str] | None:
    """The provenance of an image file (see `extract`)."""
    return extract(path.read_bytes())
