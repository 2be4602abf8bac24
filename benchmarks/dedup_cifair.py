"""Image near-duplicate quality on CIFAR-10: the ciFAIR test/train near-duplicate pairs.

Hashes all 60,000 CIFAR-10 JPEGs (10k test + 50k train) with the ``image_dedup`` stage's map, then
runs its reduce (block index + union-find) at several ``max_distance`` values. Reports recall of the
249 pairs ciFAIR judged near-duplicate (and of the 37 "very similar" ones): a pair counts as found when
both images land in the same cluster; and how many other test/train pairs are put together (ciFAIR
only annotated pairs their CNN search surfaced, so "other" pairs are not all false). Also times the
block index against brute-force all-pairs Hamming distances on the same hashes.

    nice -n 10 /work/venv/bin/python benchmarks/dedup_cifair.py [--hashes phash,dhash]
"""

from __future__ import annotations

import argparse
import csv
import time
import zipfile

import numpy as np
import pyarrow as pa

from _common import machine, shared_data
from curate.dedup.phash import close_pairs
from curate.stages.image_dedup import ImageDedup, ImageDedupParams


def load_images():
    root = shared_data("cifar10-jpg")
    out = []
    for split in ("test", "train"):
        with open(root / f"{split}_index.csv", newline="") as f:
            paths = [r["path"] for r in csv.DictReader(f)]
        with zipfile.ZipFile(root / f"{split}.zip") as z:
            out.append([z.read(p) for p in paths])
    return out[0], out[1]


def load_pairs():
    with open(shared_data("cifair-duplicates") / "duplicates_cifar10.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    near = [(int(r["TestID"]), int(r["TrainID"])) for r in rows if r["Judgment"] in ("0", "1")]
    similar = [(int(r["TestID"]), int(r["TrainID"])) for r in rows if r["Judgment"] == "2"]
    return near, similar


def hash_all(images, method):
    stage = ImageDedup(ImageDedupParams(hash=method, max_distance=0, keep="first"))
    ids = [str(i) for i in range(len(images))]
    t0 = time.perf_counter()
    parts = [stage.map(pa.table({"id": ids[s:s + 2000], "image": pa.array(images[s:s + 2000], pa.binary())}))
             for s in range(0, len(images), 2000)]
    return pa.concat_tables(parts), time.perf_counter() - t0


def evaluate(mapped, n_test, near, similar, method, max_distance):
    stage = ImageDedup(ImageDedupParams(hash=method, max_distance=max_distance, keep="first"))
    t0 = time.perf_counter()
    out = stage.reduce(mapped)
    dt = time.perf_counter() - t0
    cluster = np.array(out.column("cluster_id").to_pylist(), dtype=np.int64)
    rec_near = np.mean([cluster[t] == cluster[n_test + r] for t, r in near])
    rec_sim = np.mean([cluster[t] == cluster[n_test + r] for t, r in similar])
    # test/train pairs put in one cluster
    test_c, train_c = cluster[:n_test], cluster[n_test:]
    tc = np.bincount(test_c, minlength=len(cluster))
    rc = np.bincount(train_c, minlength=len(cluster))
    cross = int(np.sum(tc * rc))
    annotated = len(near) + len(similar)
    found_annotated = int(round(rec_near * len(near) + rec_sim * len(similar)))
    flagged = int(np.sum(np.array(out.column("flag").to_pylist(), dtype=object) != None))  # noqa: E711
    return rec_near, rec_sim, cross, cross - found_annotated, flagged, dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hashes", default="phash,dhash,whash,ahash")
    ap.add_argument("--distances", default="0,2,4,6,8,10,12")
    ap.add_argument("--brute-force", default="phash")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    test, train = load_images()
    near, similar = load_pairs()
    images = test + train
    print(f"{len(test)} test + {len(train)} train images; ciFAIR pairs: {len(near)} near-duplicate (judgment 0/1), "
          f"{len(similar)} very similar (2)")
    for method in args.hashes.split(","):
        mapped, dt = hash_all(images, method)
        print(f"\n{method} (hash_size 8): hashed {len(images)} images in {dt:.1f} s ({len(images) / dt:.0f} images/s, one process)")
        packed = np.frombuffer(b"".join(bytes.fromhex(h) for h in mapped.column("image_hash").to_pylist()), np.uint8).reshape(-1, 8)
        d_near = np.bitwise_count(packed[[t for t, _ in near]] ^ packed[[len(test) + r for _, r in near]]).sum(axis=1)
        print(f"Hamming distance of the {len(near)} near-duplicate pairs: median {np.median(d_near):.0f}, "
              f"<=6: {np.mean(d_near <= 6):.3f}, <=10: {np.mean(d_near <= 10):.3f}")
        print(f"{'max_distance':>12s} {'recall near':>11s} {'recall similar':>14s} {'test-train pairs clustered':>26s} "
              f"{'not annotated':>13s} {'flagged':>8s} {'reduce s':>8s}")
        for d in map(int, args.distances.split(",")):
            rn, rs, cross, other, flagged, rdt = evaluate(mapped, len(test), near, similar, method, d)
            print(f"{d:12d} {rn:11.3f} {rs:14.3f} {cross:26d} {other:13d} {flagged:8d} {rdt:8.2f}")
        if method == args.brute_force:
            valid = np.ones(len(packed), dtype=bool)
            t0 = time.perf_counter()
            a, b, _, cand = close_pairs(packed, valid, 6)
            t_block = time.perf_counter() - t0
            words = packed.copy().view(np.uint64).reshape(-1)
            t0 = time.perf_counter()
            brute = 0
            for s in range(0, len(words), 2000):
                d = np.bitwise_count(words[s:s + 2000, None] ^ words[None, :])
                i, j = np.nonzero(d <= 6)
                brute += int(np.sum(j > i + s))
            t_brute = time.perf_counter() - t0
            print(f"pairs within 6 bits: block index {len(a)} in {t_block:.2f} s ({cand} block collisions checked); "
                  f"brute force all pairs {brute} in {t_brute:.2f} s: {t_brute / t_block:.1f}x slower")


if __name__ == "__main__":
    main()
