"""Gallery thumbnails: small WebP (JPEG where Pillow lacks WebP) images as ``data:`` URIs."""

from __future__ import annotations

import base64
import io
import logging

log = logging.getLogger(__name__)

#: Longest side of a thumbnail, in pixels.
SIZE = 112


def _format() -> tuple[str, str]:
    from PIL import features

    return ("WEBP", "image/webp") if features.check("webp") else ("JPEG", "image/jpeg")


def thumbnail(data: bytes | None, size: int = SIZE, quality: int = 70) -> str | None:
    """A ``data:`` URI of a thumbnail of encoded image ``data`` (None if missing or undecodable).

    Decodes JPEGs at a reduced scale (``draft``), so large photos cost little."""
    if not data:
        return None
    from PIL import Image

    fmt, mime = _format()
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (size, size))
            im.thumbnail((size, size))
            if im.mode not in ("RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.getbands() or im.mode == "P" else "RGB")
            if fmt == "JPEG" and im.mode == "RGBA":
                im = im.convert("RGB")
            buf = io.BytesIO()
            im.save(buf, fmt, quality=quality, **({"method": 1} if fmt == "WEBP" else {}))
    except Exception as exc:  # noqa: BLE001 - any undecodable image becomes a placeholder in the page
        log.debug("thumbnail failed: %s", exc)
        return None
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
