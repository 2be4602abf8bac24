import io
import struct
import zlib

import pytest
from PIL import Image

from curate.imageinfo import BadImage, probe_image
from tests.conftest import image_bytes


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_size_from_header_matches_pil(fmt):
    data = image_bytes(37, 21, fmt=fmt)
    info = probe_image(data)
    with Image.open(io.BytesIO(data)) as im:
        assert (info.width, info.height) == im.size
    assert info.format in (fmt, "TIFF")


def test_progressive_jpeg_size():
    im = Image.new("RGB", (123, 45), "red")
    buf = io.BytesIO()
    im.save(buf, "JPEG", progressive=True)
    assert (probe_image(buf.getvalue()).width, probe_image(buf.getvalue()).height) == (123, 45)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty_file"),
        (b"hello, this is not an image at all", "not_an_image"),
        (image_bytes(fmt="JPEG")[:300], "truncated_image"),
        (image_bytes(fmt="PNG")[:-20], "truncated_image"),
    ],
)
def test_bad_bytes_are_named(data, reason):
    with pytest.raises(BadImage) as exc:
        probe_image(data)
    assert exc.value.reason == reason


def test_decompression_bomb_from_header_only():
    # A PNG header claiming 100000 x 100000 pixels: refused without decoding anything.
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
    with pytest.raises(BadImage) as exc:
        probe_image(data)
    assert exc.value.reason == "decompression_bomb"
    assert probe_image(data, max_pixels=10**11).width == 100_000
