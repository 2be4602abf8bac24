"""Cheap image checks at ingest: format, width and height from the header, obvious truncation.

No pixel data is decoded here (the ``image_quality`` stage does the full decode check). Formats with a
hand-written header parser (JPEG, PNG, GIF, WebP, BMP) cost microseconds; anything else falls back to
``PIL.Image.open``, which also reads only the header.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass


class BadImage(ValueError):
    """The bytes are not a readable image; ``reason`` is a short machine reason for quarantine."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(b: bytes) -> tuple[int, int]:
    i, n = 2, len(b)
    unpack_from = struct.unpack_from
    while i + 4 <= n:
        if b[i] != 0xFF:
            raise BadImage("corrupt_image", f"JPEG marker expected at byte {i}")
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in _JPEG_SOF:
            if i + 9 > n:
                break
            h, w = unpack_from(">HH", b, i + 5)
            return w, h
        i += 2 + unpack_from(">H", b, i + 2)[0]
    raise BadImage("truncated_image", "JPEG ends before its frame header")


def _webp_size(b: bytes) -> tuple[int, int]:
    chunk = b[12:16]
    if chunk == b"VP8 " and len(b) >= 30:
        w, h = struct.unpack("<HH", b[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(b) >= 25:
        bits = int.from_bytes(b[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(b) >= 30:
        return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
    raise BadImage("corrupt_image", "WebP header not understood")


def probe_image(data: bytes, *, max_pixels: int = 178_956_970) -> ImageInfo:
    """Format and size of encoded image bytes, without decoding pixels.

    Raises :class:`BadImage` with reason ``empty_file``, ``not_an_image``, ``truncated_image``,
    ``corrupt_image`` or ``decompression_bomb``.
    """
    n = len(data)
    if n == 0:
        raise BadImage("empty_file", "zero bytes")
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        fmt = "JPEG"
        w, h = _jpeg_size(data)
        if not data.endswith(b"\xff\xd9") and not data[-64:].rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
            raise BadImage("truncated_image", "JPEG has no end-of-image marker (file cut short?)")
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        fmt = "PNG"
        if n < 24 or head[12:16] != b"IHDR":
            raise BadImage("truncated_image", "PNG ends before its header")
        w, h = struct.unpack(">II", data[16:24])
        if b"IEND" not in data[-16:]:
            raise BadImage("truncated_image", "PNG has no IEND chunk (file cut short?)")
    elif head[:6] in (b"GIF87a", b"GIF89a"):
        fmt = "GIF"
        if n < 10:
            raise BadImage("truncated_image", "GIF ends before its header")
        w, h = struct.unpack("<HH", data[6:10])
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        fmt = "WEBP"
        w, h = _webp_size(data)
    elif head[:2] == b"BM" and n >= 26:
        fmt = "BMP"
        w, h = struct.unpack("<ii", data[18:26])
        w, h = abs(w), abs(h)
    else:
        fmt, w, h = _pil_probe(data)
    if w <= 0 or h <= 0:
        raise BadImage("corrupt_image", f"{fmt} header says {w}x{h} pixels")
    if w * h > max_pixels:
        raise BadImage("decompression_bomb", f"{w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} (input.max_image_pixels)")
    return ImageInfo(fmt, int(w), int(h))


def _pil_probe(data: bytes) -> tuple[str, int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return str(im.format), im.width, im.height
    except UnidentifiedImageError:
        raise BadImage("not_an_image", f"unrecognised image format (first bytes {data[:8]!r})") from None
    except Image.DecompressionBombError as exc:
        raise BadImage("decompression_bomb", str(exc)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage("corrupt_image", str(exc)) from None


IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
