import io

import numpy as np
import pyarrow as pa
from PIL import Image, ImageFilter

from curate.stages.image_quality import ImageQuality, ImageQualityParams
from curate.stages.text_quality import TextQuality, TextQualityParams, measure_text
from tests.conftest import image_bytes


def _img(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def run_image_quality(images: list[bytes], **params):
    sizes = []
    for b in images:
        try:
            sizes.append(Image.open(io.BytesIO(b)).size)
        except Exception:  # the broken one: ingest read its size from the header
            sizes.append((96, 96))
    batch = pa.table({"id": [str(i) for i in range(len(images))], "image": images,
                      "width": [w for w, _ in sizes], "height": [h for _, h in sizes]})
    stage = ImageQuality(ImageQualityParams(**params))
    return stage.process(batch).to_pylist()


def test_image_checks_flag_the_right_images():
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 255, (6, 6, 3))
    texture = np.kron(tiles, np.ones((16, 16, 1)))  # 96x96 of flat 16px tiles: strong edges
    sharp = _img(texture)
    blurred = Image.open(io.BytesIO(sharp)).filter(ImageFilter.GaussianBlur(4))
    buf = io.BytesIO()
    blurred.save(buf, "PNG")
    images = {
        "ok": sharp,
        "small": image_bytes(20, 20, fmt="PNG"),
        "wide": _img(rng.integers(0, 255, (40, 200, 3))),
        "constant": _img(np.full((80, 80, 3), 128)),
        "dark": _img(rng.integers(0, 20, (80, 80, 3))),
        "bright": _img(rng.integers(240, 256, (80, 80, 3))),
        "blurry": buf.getvalue(),
        "broken": sharp[:40] + b"\x00" * 200,
    }
    rows = run_image_quality(list(images.values()), min_side=32, max_aspect=3.0, min_sharpness=50)
    got = dict(zip(images, (r["flag"] for r in rows)))
    assert got == {"ok": None, "small": "too_small", "wide": "extreme_aspect", "constant": "near_constant",
                   "dark": "too_dark", "bright": "too_bright", "blurry": "blurry", "broken": "undecodable"}
    by = dict(zip(images, rows))
    assert by["ok"]["decodable"] and not by["broken"]["decodable"]
    assert by["wide"]["aspect"] == 5.0 and by["small"]["min_side"] == 20
    assert by["blurry"]["sharpness"] < 50 < by["ok"]["sharpness"]
    assert "shorter side 20 < 32" in by["small"]["detail"]


def test_blur_check_is_off_by_default():
    img = Image.new("RGB", (100, 100))
    for x in range(100):
        img.putpixel((x, 50), (255, 255, 255))
    smooth = img.filter(ImageFilter.GaussianBlur(8))
    buf = io.BytesIO()
    smooth.save(buf, "PNG")
    rows = run_image_quality([buf.getvalue()], dark_below=0)
    assert rows[0]["flag"] is None and rows[0]["sharpness"] is not None


def test_text_measures():
    assert measure_text("Hello, world!") == (2, 13, 2 / 12, 2)
    assert measure_text("soooooo good")[3] == 6


def test_text_checks_flag_the_right_texts():
    texts = [None, "   ", "one", "a dog runs on the beach", "$$$ ### 123 456 !!", "wowwwwwwww a cat", "x " * 50]
    batch = pa.table({"id": [str(i) for i in range(len(texts))], "text": pa.array(texts, pa.string())})
    rows = TextQuality(TextQualityParams(min_words=2, max_words=40)).process(batch).to_pylist()
    assert [r["flag"] for r in rows] == ["empty_text", "empty_text", "too_short", None, "mostly_symbols",
                                         "repeated_chars", "too_long"]
    assert rows[2]["detail"] == "1 word < 2"
    assert rows[3]["n_words"] == 6
