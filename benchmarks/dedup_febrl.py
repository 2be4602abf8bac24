"""Text near-duplicate quality on FEBRL (synthetic person records with known duplicates).

Each record becomes one text (its fields joined by spaces); true duplicate pairs are the records that
share ``rec-<k>``. The ``minhash_dedup`` stage runs (map per 1,000 rows, then reduce) and its clusters
give the predicted pairs (every pair inside a cluster). Prints pairwise precision, recall and F1 for
the stage defaults (word 5-grams: too long for ten-word records, shown for honesty), for character
3-grams across thresholds, and an exact all-pairs Jaccard baseline on the same shingles.

    nice -n 10 /work/venv/bin/python benchmarks/dedup_febrl.py [--datasets 1,2,3]
"""

from __future__ import annotations

import argparse
import csv
import time
from itertools import combinations

import pyarrow as pa

from _common import machine, shared_data
from curate.stages.minhash_dedup import MinhashDedup, MinhashDedupParams


def load(name: str):
    path = shared_data("febrl") / f"dataset{name}.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f, skipinitialspace=True))
    header, rows = rows[0], rows[1:]
    ids = [r[0] for r in rows]
    texts = [" ".join(v for v in r[1:] if v) for r in rows]
    groups: dict[str, list[int]] = {}
    for i, rid in enumerate(ids):
        groups.setdefault(rid.split("-")[1], []).append(i)
    truth = {(a, b) for g in groups.values() for a, b in combinations(sorted(g), 2)}
    return ids, texts, truth


def run_stage(ids, texts, **params):
    stage = MinhashDedup(MinhashDedupParams(**params))
    maps = []
    for s in range(0, len(texts), 1000):
        batch = pa.table({"id": ids[s:s + 1000], "text": texts[s:s + 1000]})
        maps.append(stage.map(batch))
    out = stage.reduce(pa.concat_tables(maps))
    clusters: dict[str, list[int]] = {}
    for i, c in enumerate(out.column("cluster_id").to_pylist()):
        clusters.setdefault(c, []).append(i)
    return {(a, b) for g in clusters.values() for a, b in combinations(sorted(g), 2)}


def prf(pred, truth):
    tp = len(pred & truth)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def exact_pairs(texts, threshold, tokens, ngram):
    """All-pairs exact Jaccard on the same shingles (the slow baseline LSH approximates)."""
    from curate.dedup.shingles import shingle_sets

    sets = shingle_sets(texts, tokens=tokens, ngram=ngram)
    n = len(sets)
    out = set()
    for i in range(n):
        si = sets[i]
        for j in range(i + 1, n):
            sj = sets[j]
            inter = len(si & sj)
            if inter and inter / (len(si) + len(sj) - inter) >= threshold:
                out.add((i, j))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="1,2,3")
    ap.add_argument("--exact-baseline", default="1", help="datasets to run the all-pairs baseline on")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    settings = [("defaults (word 5-grams, t=0.8)", dict())]
    settings.append(("word 1-grams, t=0.5", dict(ngram=1, threshold=0.5)))
    for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        settings.append((f"char 3-grams, t={t}", dict(tokens="char", ngram=3, threshold=t)))
    settings.append(("char 3-grams, t=0.5, no verify", dict(tokens="char", ngram=3, threshold=0.5, verify=False)))
    for name in args.datasets.split(","):
        ids, texts, truth = load(name)
        print(f"\nFEBRL dataset{name}: {len(texts)} records, {len(truth)} true duplicate pairs")
        print(f"{'setting':34s} {'pairs':>6s} {'precision':>9s} {'recall':>7s} {'F1':>6s} {'seconds':>8s}")
        for label, params in settings:
            t0 = time.perf_counter()
            pred = run_stage(ids, texts, **params)
            dt = time.perf_counter() - t0
            p, r, f = prf(pred, truth)
            print(f"{label:34s} {len(pred):6d} {p:9.3f} {r:7.3f} {f:6.3f} {dt:8.2f}")
        if name in args.exact_baseline.split(","):
            t0 = time.perf_counter()
            pred = exact_pairs(texts, 0.5, "char", 3)
            dt = time.perf_counter() - t0
            p, r, f = prf(pred, truth)
            print(f"{'exact Jaccard all pairs, t=0.5':34s} {len(pred):6d} {p:9.3f} {r:7.3f} {f:6.3f} {dt:8.2f}"
                  "  (verified pairs, not clusters)")


if __name__ == "__main__":
    main()
