"""Build the bundled example datasets from the shared evaluation data (maintainers only).

Users do not need this script: its output is committed in examples/. It documents exactly how the
examples were made and which problems were planted.

    python examples/make_examples.py --shared ../shared/data
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REDISTRIBUTABLE = {4: "CC BY 2.0", 5: "CC BY-SA 2.0"}  # COCO licence ids that allow sharing with changes
LICENCE_URLS = {4: "https://creativecommons.org/licenses/by/2.0/", 5: "https://creativecommons.org/licenses/by-sa/2.0/"}


def _jpeg(im: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_coco(shared: Path, out: Path, seed: int = 0) -> None:
    rng = random.Random(seed)
    src = shared / "coco-mini"
    images, captions = [], {}
    for split in ("train2017", "val2017"):
        doc = json.loads((src / "annotations" / f"captions_{split}.json").read_text())
        for a in doc["annotations"]:
            captions.setdefault(a["image_id"], []).append((a["id"], a["caption"].strip()))
        for im in doc["images"]:
            if im["license"] in REDISTRIBUTABLE:
                images.append((split, im))
    images.sort(key=lambda x: x[1]["id"])
    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    (out / "annotations").mkdir()
    doc_images, doc_anns, attribution, planted = [], [], [], []
    next_image_id, next_ann_id = 9_000_000, 9_500_000

    def add(file_name: str, data: bytes, caps: list[str], base: dict, note: str | None = None):
        nonlocal next_image_id, next_ann_id
        (out / "images" / file_name).write_bytes(data)
        image_id = base["id"] if note is None else next_image_id
        if note is not None:
            next_image_id += 1
        doc_images.append({"id": image_id, "file_name": file_name, "license": base["license"],
                           "flickr_url": base.get("flickr_url"), "coco_url": base.get("coco_url")})
        for c in caps:
            doc_anns.append({"id": next_ann_id, "image_id": image_id, "caption": c})
            next_ann_id += 1
        return image_id

    originals = {}
    for split, im in images:
        with Image.open(src / split / im["file_name"]) as pil:
            pil = pil.convert("RGB")
            pil.thumbnail((320, 320))
            data = _jpeg(pil)
        caps = [c for _, c in sorted(captions[im["id"]])]
        originals[im["file_name"]] = (data, caps, im)
        attribution.append(f"{im['file_name']}\tCOCO {split} id {im['id']}\t{REDISTRIBUTABLE[im['license']]} "
                           f"({LICENCE_URLS[im['license']]})\tphoto by the Flickr user at {im['flickr_url']}\t"
                           "changed: downscaled to fit 320x320, re-encoded as JPEG q85")
    names = sorted(originals)
    rng.shuffle(names)
    pick = iter(names)
    # captions of clean images are taken as they are; problems are planted on chosen images below.
    broken_caption_kinds = {
        "html": lambda c: c.replace(" and ", " &amp; ", 1) if " and " in c else "<p>" + c + "</p>",
        # UTF-8 text decoded as Windows-1252 (typographic apostrophes and quotes turn into "â€™"/"â€œ")
        "mojibake": lambda c: ("\u201c" + c.rstrip(".").replace("'", "\u2019") + "\u201d.").encode("utf-8").decode("cp1252", "replace"),
        "filename": lambda c: "IMG_2031.JPG",
        "url": lambda c: c + " https://example.com/photo/12345",
        "boilerplate": lambda c: "Stock photo: " + c + " Click here to download.",
        "whitespace_repeats": lambda c: "  " + c.replace(" ", "   ", 2) + " !!!!!!",
        "html_tags": lambda c: c + ' <img src=x onerror=alert(1)>',
    }
    caption_plan = {}
    for kind, fn in broken_caption_kinds.items():
        name = next(pick)
        caption_plan[name] = (kind, fn)
    swap_pairs = [(next(pick), next(pick)) for _ in range(2)]
    swapped = {}
    for a, b in swap_pairs:
        swapped[a] = originals[b][1][0]
        swapped[b] = originals[a][1][0]
    for name in sorted(originals):
        data, caps, im = originals[name]
        caps = list(caps)
        if name in caption_plan:
            kind, fn = caption_plan[name]
            broken = fn(caps[0])
            planted.append({"file_name": name, "problem": "broken_caption", "kind": kind, "caption": broken, "human_caption": caps[0]})
            caps[0] = broken
        if name in swapped:
            planted.append({"file_name": name, "problem": "swapped_caption", "caption": swapped[name], "human_caption": caps[0]})
            caps[0] = swapped[name]
        add(name, data, caps, im)
    # duplicates: exact copies and near copies (re-encoded, resized, cropped) under new names
    for kind in ("exact", "exact", "reencoded", "resized", "cropped"):
        name = next(pick)
        data, caps, im = originals[name]
        if kind == "exact":
            new = data
        else:
            pil = Image.open(io.BytesIO(data)).convert("RGB")
            if kind == "reencoded":
                new = _jpeg(pil, quality=55)
            elif kind == "resized":
                new = _jpeg(pil.resize((int(pil.width * 0.7), int(pil.height * 0.7)), Image.LANCZOS))
            else:
                w, h = pil.size
                new = _jpeg(pil.crop((int(w * 0.04), int(h * 0.04), int(w * 0.96), int(h * 0.96))))
        copy_name = f"copy_{kind}_{name}"
        add(copy_name, new, [caps[1]], im, note=kind)
        planted.append({"file_name": copy_name, "problem": "exact_duplicate" if kind == "exact" else "near_duplicate",
                        "kind": kind, "of": name})
        attribution.append(f"{copy_name}\tderived from {name}\tsame licence as {name}\tchanged: {kind} copy")
    # image quality problems, derived from redistributable images
    name = next(pick)
    pil = Image.open(io.BytesIO(originals[name][0])).convert("RGB")
    dark = Image.eval(pil, lambda v: v // 12)
    add(f"dark_{name}", _jpeg(dark), [originals[name][1][2]], originals[name][2], note="dark")
    planted.append({"file_name": f"dark_{name}", "problem": "too_dark", "of": name})
    attribution.append(f"dark_{name}\tderived from {name}\tsame licence as {name}\tchanged: darkened")
    name = next(pick)
    pil = Image.open(io.BytesIO(originals[name][0])).convert("RGB")
    tiny = pil.resize((24, 16))
    add(f"tiny_{name}", _jpeg(tiny), [originals[name][1][2]], originals[name][2], note="tiny")
    planted.append({"file_name": f"tiny_{name}", "problem": "too_small", "of": name})
    attribution.append(f"tiny_{name}\tderived from {name}\tsame licence as {name}\tchanged: shrunk to 24x16")
    # a corrupt (truncated) file and a caption with HTML that must show literally in the review app
    name = next(pick)
    data = originals[name][0]
    add(f"truncated_{name}", data[: len(data) // 2], [originals[name][1][3]], originals[name][2], note="truncated")
    planted.append({"file_name": f"truncated_{name}", "problem": "corrupt_file", "kind": "truncated JPEG (first half of the bytes)"})
    attribution.append(f"truncated_{name}\tderived from {name}\tsame licence as {name}\tchanged: cut to half its bytes")

    doc = {"info": {"description": "curate demo set: redistributable COCO 2017 images (CC BY / CC BY-SA) with planted problems"},
           "licenses": [{"id": k, "name": v, "url": LICENCE_URLS[k]} for k, v in REDISTRIBUTABLE.items()],
           "images": doc_images, "annotations": doc_anns}
    (out / "annotations" / "captions_images.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    (out / "planted.json").write_text(json.dumps(planted, indent=1, ensure_ascii=False) + "\n")
    (out / "ATTRIBUTION.tsv").write_text("file\tsource\tlicence\tauthor\tchanges\n" + "\n".join(attribution) + "\n")


def make_mnist(shared: Path, out: Path, n: int = 2000, noise: float = 0.05, seed: int = 0) -> None:
    src = shared / "mnist-test"
    images = np.frombuffer(gzip.open(src / "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.open(src / "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    rng = np.random.default_rng(seed)
    if out.exists():
        shutil.rmtree(out)
    noisy = set(rng.choice(n, size=int(n * noise), replace=False).tolist())
    rows = []
    for i in range(n):
        true = int(labels[i])
        given = true
        if i in noisy:
            given = int(rng.choice([c for c in range(10) if c != true]))
        folder = out / str(given)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{i:05d}.png"
        Image.fromarray(images[i]).save(folder / name, optimize=True)
        rows.append((f"{given}/{name}", i, true, given, int(i in noisy)))
    with open(out.parent / "mnist_labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "mnist_test_index", "true_label", "given_label", "planted_noise"])
        w.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared" / "data")
    args = ap.parse_args()
    make_coco(args.shared, HERE / "coco")
    make_mnist(args.shared, HERE / "mnist")


if __name__ == "__main__":
    main()
