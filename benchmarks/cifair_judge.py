"""A blind by-eye judgment of the test-train pairs that ``embedding_dedup`` puts together and ciFAIR does
not list, so the ciFAIR benchmark can say how many of them are false.

ciFAIR lists, for each CIFAR-10 test image its own CNN search surfaced, one training partner; a test image
it did not surface, or a second training copy of a listed one, is "not annotated" whether or not it is the
same photograph. On all 60,000 images most of the unannotated pairs are real duplicates by eye, so the
count alone overstates the false pairs. This script:

``sheets``: puts every unannotated test-train pair of the ``embedding_dedup`` defaults' clusters (direct
links and pairs joined through a chain) on contact sheets, 24 pairs a sheet, each pair side by side at 5x
in random left/right order and shuffled, mixed with **controls** whose answer ciFAIR gives (63 random
Judgment 0/1 near-duplicate pairs, which should be judged "same", and all 37 Judgment 2 "very similar"
pairs, which ciFAIR calls "very similar", not duplicates). Judges see only the sheets and a pair label.

``merge``: reads the judges' CSVs (``pair,label,note``; label S = same photograph, D = different, ? =
cannot tell), prints the agreement between judges and their accuracy on the controls, and writes
``data/cifair_extra_judgments.csv``: ``TestID,TrainID`` (CIFAR-10 indices as in ciFAIR), ``kind``
(direct / chained / control_near / control_similar), ``ciFAIR`` (its judgment for controls), one
column per judge and ``same`` (1 only when every judge said S). ``dedup_cifair_embeddings.py --full``
reads it and reports the unannotated pairs that are not judged the same photograph.

    cd benchmarks && python cifair_judge.py sheets --out /tmp/judge --cache /work/scratch/cifar/cache
    python cifair_judge.py merge --out /tmp/judge --judges 0-10:j1.csv,j2.csv 11-21:j3.csv,j4.csv \
        22-31:j5.csv,j6.csv 32-41:j7.csv,j8.csv

Each pair's judges are given with ``--judges`` as ``first_sheet-last_sheet:a.csv,b.csv`` groups. ``sheets``
also writes the judges' rules (``RULES`` below) to ``RULES.md`` beside the sheets.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np

from _cifair import JUDGMENTS, clustered_test_train_pairs, listed_pairs, load_set
from _embed_cache import DEFAULT_CACHE, embed_images

PER_SHEET = 24
RULES = """# Judging image pairs: same photograph or not

Each contact sheet shows 24 pairs of small images (CIFAR-10, 32x32 shown at 5x), 4 pairs a row, 6 rows;
each pair is two images side by side with a label under it such as `p0123`. For every pair decide:

- **S** (same): both images come from the same camera shot / the same original picture, possibly after
  cropping, zooming, shifting, stretching, resizing, re-encoding, recolouring, a contrast or brightness
  change, grey-scaling, mirroring, adding or removing a border or a small overlay.
- **D** (different): different shots - another moment of the same scene (the subject moved, the pose
  changed), another object of the same kind, another render or drawing, or unrelated images. Two photos
  of the same car model or the same breed from another angle are D.
- **?**: you really cannot tell (use sparingly).

Judge by eye only: you may crop and enlarge a pair to look closer, but compute no pixel correlation, hash,
embedding or other similarity score, and open no file other than your sheets. Decide each pair on its own;
the pairs are shuffled and left/right is random; do not aim for any ratio. Layout: each cell is 350 px
wide (two 160 px images, 4 px apart) and 186 px high; cell (row r, column c) starts at x = 350c, y = 186r.
Write one CSV with the header `pair,label,note`, one row per pair (label S, D or ?; a short note
optional), appending after each sheet.
"""
ZOOM = 5
EMBED = {"num_workers": 1, "image_size": 160, "crop_pct": 1.0}


def unannotated_pairs(s, labels: np.ndarray) -> list[tuple[int, int]]:
    """Test-train pairs ``(test, train)`` sharing a cluster that ciFAIR lists nowhere."""
    return [(t, r) for t, r in clustered_test_train_pairs(labels, s.is_test) if (min(t, r), max(t, r)) not in s.annotated]


def sheets(args):
    from PIL import Image, ImageDraw, ImageFont

    s = load_set(0, 0, full=True)
    labels, direct = default_clusters_with_links(s, args.cache)
    items = [{"i": t, "j": r, "kind": "direct" if (t, r) in direct else "chained"} for t, r in unannotated_pairs(s, labels)]
    rng = np.random.default_rng(args.seed)
    controls = [s.near[k] for k in rng.choice(len(s.near), 63, replace=False)]
    items += [{"i": t, "j": r, "kind": "control_near"} for t, r in controls]
    items += [{"i": t, "j": r, "kind": "control_similar"} for t, r in s.similar]
    items = [items[k] for k in rng.permutation(len(items))]
    for n, it in enumerate(items):
        it["pair"], it["swap"] = f"p{n:04d}", bool(rng.integers(2))
        it["test"], it["train"] = s.ids[it["i"]], s.ids[it["j"]]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "items.json").write_text(json.dumps(items, indent=0))
    (args.out / "RULES.md").write_text(RULES)
    thumbs = [Image.open(io.BytesIO(im)).convert("RGB") for im in s.images]
    side, font = 32 * ZOOM, ImageFont.load_default(size=18)
    cell_w, cell_h = 2 * side + 30, side + 26
    for start in range(0, len(items), PER_SHEET):
        sheet = Image.new("RGB", (cell_w * 4, cell_h * 6), "white")
        draw = ImageDraw.Draw(sheet)
        for n, it in enumerate(items[start:start + PER_SHEET]):
            row, col = divmod(n, 4)
            x0, y0 = col * cell_w, row * cell_h
            left, right = (it["j"], it["i"]) if it["swap"] else (it["i"], it["j"])
            sheet.paste(thumbs[left].resize((side, side), Image.NEAREST), (x0, y0))
            sheet.paste(thumbs[right].resize((side, side), Image.NEAREST), (x0 + side + 4, y0))
            draw.text((x0 + 2, y0 + side + 2), it["pair"], fill="black", font=font)
        sheet.save(args.out / f"sheet{start // PER_SHEET:02d}.png")
    kinds = {k: sum(it["kind"] == k for it in items) for k in ("direct", "chained", "control_near", "control_similar")}
    print(f"{len(items)} pairs on {(len(items) + PER_SHEET - 1) // PER_SHEET} sheets in {args.out}: {kinds}")


def default_clusters_with_links(s, cache: Path) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """The defaults' cluster per image and the directly linked pairs ``(min, max)``."""
    from curate.dedup.unionfind import components
    from curate.embeddings.neardup import near_duplicate_pairs
    from curate.stages.embedding_dedup import EmbeddingDedupParams, _unhex
    from dedup_cifair_embeddings import hashes_for

    p = EmbeddingDedupParams()
    x = embed_images(s.images, s.ids, cache_dir=cache, **EMBED)
    hexes = hashes_for(s.images, s.ids, mirror=False)["image_hash"].to_pylist()
    pairs = near_duplicate_pairs(x, np.ones(len(x), bool), _unhex(hexes), np.array([h is not None for h in hexes]),
                                 k=p.k, min_similarity=p.min_similarity, min_margin=p.min_margin,
                                 accept_similarity=p.accept_similarity, max_distance=p.max_distance, search="exact")
    return components(len(x), pairs.a, pairs.b), set(zip(pairs.a.tolist(), pairs.b.tolist()))


def read_judge(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        return {r["pair"].strip(): r["label"].strip().upper() for r in csv.DictReader(f)}


def merge(args):
    items = json.loads((args.out / "items.json").read_text())
    judges: dict[str, list[dict[str, str]]] = {}  # pair -> the labels of its judges
    for group in args.judges:
        span, files = group.split(":", 1)
        first, last = (int(v) for v in span.split("-"))
        labels = [read_judge(Path(f)) for f in files.split(",")]
        for it in items[first * PER_SHEET:(last + 1) * PER_SHEET]:
            judges[it["pair"]] = [lab.get(it["pair"], "") for lab in labels]
    missing = [it["pair"] for it in items if it["pair"] not in judges or "" in judges[it["pair"]]]
    if missing:
        raise SystemExit(f"{len(missing)} pairs lack a judgment, e.g. {missing[:5]}")
    n_judges = max(len(v) for v in judges.values())
    agree = sum(len(set(v)) == 1 for v in judges.values())
    print(f"{len(items)} pairs, {n_judges} judges each; the judges agree on {agree} ({agree / len(items):.1%})")
    for kind, want in (("control_near", "S"), ("control_similar", "D")):
        rows = [judges[it["pair"]] for it in items if it["kind"] == kind]
        each = [sum(v[k] == want for v in rows) for k in range(n_judges)]
        every = sum(all(lab == want for lab in v) for v in rows)
        print(f"  {kind}: {len(rows)} pairs (ciFAIR: {'same' if want == 'S' else 'different'}); judged {want} by "
              f"judge 1/2: {each}; by every judge: {every}")
    for kind in ("direct", "chained"):
        rows = [judges[it["pair"]] for it in items if it["kind"] == kind]
        same = sum(all(lab == "S" for lab in v) for v in rows)
        diff = sum(all(lab == "D" for lab in v) for v in rows)
        print(f"  {kind}: {len(rows)} unannotated pairs; same by every judge {same}, different by every judge {diff}, "
              f"split or unsure {len(rows) - same - diff}")
    cifair = {(t, r): j for t, r, j in listed_pairs("duplicates_cifar10.csv")}  # ciFAIR's judgment of the controls
    JUDGMENTS.parent.mkdir(parents=True, exist_ok=True)
    with open(JUDGMENTS, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["TestID", "TrainID", "kind", "ciFAIR", *[f"judge_{k + 1}" for k in range(n_judges)], "same"])
        for it in sorted(items, key=lambda it: (int(it["test"].split("-")[1]), int(it["train"].split("-")[1]))):
            t, r = int(it["test"].split("-")[1]), int(it["train"].split("-")[1])
            v = judges[it["pair"]]
            w.writerow([t, r, it["kind"], cifair.get((t, r), ""), *v, int(all(lab == "S" for lab in v))])
    print(f"wrote {JUDGMENTS}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("sheets")
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    a.add_argument("--seed", type=int, default=2026)
    b = sub.add_parser("merge")
    b.add_argument("--out", type=Path, required=True, help="the sheets folder (its items.json)")
    b.add_argument("--judges", nargs="+", required=True, help="first-last:judge1.csv,judge2.csv per sheet range")
    args = ap.parse_args()
    {"sheets": sheets, "merge": merge}[args.cmd](args)


if __name__ == "__main__":
    main()
