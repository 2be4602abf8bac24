"""label_noise speed: cleanlab on 1M rows x 100 classes, and the cross-validation on 50k x 512 features.

    nice -n 10 /work/venv/bin/python benchmarks/label_noise_speed.py [--rows 1000000] [--classes 100]

Each measurement runs in its own process so that its peak RSS is its own:

* ``stage``: the label_noise stage (map over 1,000-row shards of a ``list<float32>`` probability column,
  then reduce: validation, confident joint, find_label_issues, quality scores, summary, result table);
* ``direct``: the obvious alternative, cleanlab's ``find_label_issues`` + ``get_label_quality_scores`` on a
  NumPy array (no table, no summary);
* ``cv``: out-of-sample probabilities by 5-fold cross-validation on synthetic 50k x 512 embeddings
  (10 classes), per classifier.

Synthetic data: true class uniform, logits N(0, 1) + 3 for the true class, softmax; 10% of the given
labels are flipped to another class.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from label_noise_common import machine, peak_rss_mb


def synthetic_probs(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    probs = np.empty((n, k), dtype=np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        logits = rng.standard_normal((e - s, k), dtype=np.float32)
        logits[np.arange(e - s), true[s:e]] += 3.0
        logits -= logits.max(1, keepdims=True)
        np.exp(logits, out=logits)
        probs[s:e] = logits / logits.sum(1, keepdims=True)
    given = true.copy()
    flip = rng.random(n) < 0.10
    given[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    return probs, given, flip


def child(mode: str, rows: int, classes: int, classifier: str = "logistic", dim: int = 512) -> dict:
    import pyarrow as pa

    if mode in ("stage", "direct"):
        probs, given, flip = synthetic_probs(rows, classes)
        base_rss = peak_rss_mb()
        t0 = time.perf_counter()
        if mode == "stage":
            from label_noise_common import run_stage

            values = pa.array(probs.reshape(-1), pa.float32())
            offsets = pa.array(np.arange(0, rows * classes + 1, classes, dtype=np.int32))
            col = pa.ListArray.from_arrays(offsets, values)
            table = pa.table({"id": pa.array(np.arange(rows).astype(str)), "label": pa.array(given.astype(str)),
                              "probs": col})
            del probs
            base_rss = peak_rss_mb()
            t0 = time.perf_counter()
            res, summary, times = run_stage(table, features="pred_probs:probs", min_examples_per_class=1)
            flagged = np.array(res.column("flag").is_valid().to_numpy(zero_copy_only=False))
        else:
            from cleanlab.filter import find_label_issues
            from cleanlab.rank import get_label_quality_scores

            flagged = find_label_issues(given, probs, filter_by="prune_by_noise_rate")
            get_label_quality_scores(given, probs)
            times = {}
        secs = time.perf_counter() - t0
        tp = int((flagged & flip).sum())
        return {"mode": mode, "seconds": round(secs, 2), **{k: round(v, 2) for k, v in times.items()},
                "peak_rss_mb": round(peak_rss_mb()), "rss_before_mb": round(base_rss), "flagged": int(flagged.sum()),
                "precision": round(tp / max(1, flagged.sum()), 4), "recall": round(tp / flip.sum(), 4)}
    # cv
    from curate.label_noise import cross_val_pred_probs

    rng = np.random.default_rng(0)
    k = 10
    centers = rng.standard_normal((k, dim)).astype(np.float32) * 0.12
    y = rng.integers(0, k, rows)
    x = centers[y] + rng.standard_normal((rows, dim), dtype=np.float32)
    base_rss = peak_rss_mb()
    t0 = time.perf_counter()
    cv = cross_val_pred_probs(x, y, n_classes=k, classifier=classifier, folds=5, progress=False)
    return {"mode": f"cv-{classifier}", "rows": rows, "dim": dim, "seconds": round(time.perf_counter() - t0, 2),
            "accuracy": round(cv.accuracy, 4), "peak_rss_mb": round(peak_rss_mb()), "rss_before_mb": round(base_rss)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--cv-rows", type=int, default=50_000)
    ap.add_argument("--cv-classifiers", default="logistic,mlp,knn")
    ap.add_argument("--modes", default="stage,direct,cv")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, _, clf = args.child.partition(":")
        rows = args.cv_rows if mode == "cv" else args.rows
        print(json.dumps(child(mode, rows, args.classes, clf or "logistic")))
        return
    print(f"machine: {machine()}")
    modes = args.modes.split(",")
    runs = [m for m in ("stage", "direct") if m in modes]
    runs += [f"cv:{c}" for c in args.cv_classifiers.split(",") if c and "cv" in modes]
    results = {}
    for r in runs:
        cmd = [sys.executable, __file__, "--child", r, "--rows", str(args.rows), "--classes", str(args.classes),
               "--cv-rows", str(args.cv_rows)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(f"{r}: failed\n{out.stderr[-2000:]}")
            continue
        res = json.loads(out.stdout.strip().splitlines()[-1])
        results[r] = res
        print(res, flush=True)
    if "stage" in results and "direct" in results:
        s, d = results["stage"], results["direct"]
        print(f"{args.rows} x {args.classes}: stage {s['seconds']}s (map {s.get('map_s')}s, reduce {s.get('reduce_s')}s), "
              f"peak RSS {s['peak_rss_mb']} MiB; cleanlab direct on a NumPy array {d['seconds']}s, peak RSS "
              f"{d['peak_rss_mb']} MiB; stage/direct time x{s['seconds'] / d['seconds']:.2f}")


if __name__ == "__main__":
    main()
