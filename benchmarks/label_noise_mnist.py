"""label_noise on the MNIST test set (10,000 digits) against its 15 human-validated label errors.

    nice -n 10 /work/venv/bin/python benchmarks/label_noise_mnist.py

Features: ``pixels`` (no model): digits as PNG bytes through the stage's own map (decode, downsample) and
reduce (PCA, 5-fold cross-validation, cleanlab). Each classifier is compared with the obvious
alternative on the same probabilities: flag every row whose predicted class differs from its label.
"""

from __future__ import annotations

import argparse
import gzip
import io
import time

import numpy as np
import pyarrow as pa
from PIL import Image

from label_noise_common import machine, peak_rss_mb, report, run_stage, shared_data, validated_errors


def load_mnist() -> pa.Table:
    src = shared_data() / "mnist-test"
    images = np.frombuffer(gzip.open(src / "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.open(src / "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    pngs = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, "PNG")
        pngs.append(buf.getvalue())
    return pa.table({"id": [str(i) for i in range(len(labels))], "image": pngs, "label": [str(int(v)) for v in labels]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--classifiers", default="logistic,mlp,knn")
    ap.add_argument("--pixel-size", type=int, default=28)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    table = load_mnist()
    candidates, validated = validated_errors("mnist")
    print(f"MNIST test: {table.num_rows} images, {len(candidates)} human-checked candidates, {len(validated)} validated errors")
    for clf in args.classifiers.split(","):
        t0 = time.perf_counter()
        res, summary, times = run_stage(table, features="pixels", pixel_mode="gray", pixel_size=args.pixel_size,
                                        pca_components=64, classifier=clf, folds=5)
        secs = time.perf_counter() - t0
        flagged = np.array([f is not None for f in res.column("flag").to_pylist()])
        quality = np.array(res.column("label_quality").to_pylist(), dtype=np.float64)
        given = res.column("given_label").to_pylist()
        suggested = res.column("suggested_label").to_pylist()
        print(f"\n[{clf}] pixels {args.pixel_size}x{args.pixel_size} gray + PCA 64: held-out accuracy {summary['heldout_accuracy']:.4f}, "
              f"{secs:.1f}s (map {times['map_s']:.1f}s, reduce {times['reduce_s']:.1f}s)")
        ours = report(f"  cleanlab {summary.get('classifier')} prune_by_noise_rate", quality, flagged, candidates, validated,
                      ks=(15, 50, 100, 200))
        base = report("  baseline argmax != label", quality, np.array([g != s for g, s in zip(given, suggested)]),
                      candidates, validated, ks=())
        if base["flagged"]:
            print(f"    cleanlab/baseline: flagged x{ours['flagged'] / base['flagged']:.2f}, validated found "
                  f"x{ours['validated_found'] / max(1, base['validated_found']):.2f}")
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
