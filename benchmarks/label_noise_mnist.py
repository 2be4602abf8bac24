"""label_noise on the MNIST test set (10,000 digits): planted flips, and the 15 human-validated errors.

    nice -n 10 python benchmarks/label_noise_mnist.py [--svm] [--params '{"rounds": 2}']

1. **Planted flips** (the truth is known): 5% *systematic* flips (each digit to one confusable digit:
   0->6, 1->7, 2->7, 3->5, 4->9, 5->3, 6->0, 7->1, 8->3, 9->4) and 5% *random* flips (to any other digit),
   seed 0. Precision and recall of the stage with its defaults on pixels (``features: auto`` falls back
   to 28x28 gray pixels, PCA 64), against the same cleanlab call on probabilities from a plain PCA +
   RBF-SVM (``SVC(C=10, gamma='scale', probability=True)``, 5-fold, ``--svm``; minutes), and the
   ``argmax != label`` alternative.
2. **The original labels** against the 15 validated errors of cleanlab/label-errors (5 MTurk workers,
   fewer than 3 chose the given label): how many the defaults find, and the rank of each in label quality.
"""

from __future__ import annotations

import argparse
import gzip
import json
import io
import time

import numpy as np
import pyarrow as pa
from PIL import Image

from label_noise_common import machine, peak_rss_mb, report, run_stage, shared_data, validated_errors

CONFUSABLE = np.array([6, 7, 7, 5, 9, 3, 0, 1, 3, 4])


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    src = shared_data() / "mnist-test"
    images = np.frombuffer(gzip.open(src / "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.open(src / "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8).astype(np.int64)
    return images, labels


def plant(labels: np.ndarray, *, systematic: float = 0.05, random: float = 0.05, seed: int = 0):
    """Noisy labels and the kind of each flip (0 none, 1 systematic, 2 random)."""
    rng = np.random.default_rng(seed)
    u = rng.random(len(labels))
    noisy, kind = labels.copy(), np.zeros(len(labels), np.int8)
    sys_rows = u < systematic
    noisy[sys_rows], kind[sys_rows] = CONFUSABLE[labels[sys_rows]], 1
    rnd = (u >= systematic) & (u < systematic + random)
    noisy[rnd], kind[rnd] = (labels[rnd] + rng.integers(1, 10, int(rnd.sum()))) % 10, 2
    return noisy, kind


def pr(flagged: np.ndarray, truth: np.ndarray, kind: np.ndarray | None = None) -> str:
    tp = int((flagged & truth).sum())
    p, r = tp / max(1, int(flagged.sum())), tp / max(1, int(truth.sum()))
    out = f"flagged {int(flagged.sum())}, precision {p:.3f}, recall {r:.3f}, F1 {2 * p * r / max(1e-12, p + r):.3f}"
    if kind is not None:
        out += "; recall systematic {:.3f}, random {:.3f}".format(*(float(flagged[kind == k].mean()) for k in (1, 2)))
    return out


def svm_pred_probs(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import SVC

    z = PCA(64, random_state=0).fit_transform(images.reshape(len(images), -1) / 255.0)
    pp = np.zeros((len(labels), 10))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(z, labels):
        pp[te] = SVC(C=10, gamma="scale", probability=True, random_state=0).fit(z[tr], labels[tr]).predict_proba(z[te])
    return pp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--svm", action="store_true", help="also run the PCA + RBF-SVM baseline (minutes)")
    ap.add_argument("--params", default="{}", help="label_noise parameters changed from the defaults (JSON)")
    args = ap.parse_args()
    params = json.loads(args.params)
    print(f"machine: {machine()}")
    images, labels = load_mnist()
    pngs = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, "PNG")
        pngs.append(buf.getvalue())
    ids = [str(i) for i in range(len(labels))]
    noisy, kind = plant(labels)
    truth = kind > 0
    print(f"MNIST test: {len(labels)} digits; planted {int((kind == 1).sum())} systematic + {int((kind == 2).sum())} random flips")

    def defaults(given: np.ndarray):
        table = pa.table({"id": ids, "image": pngs, "label": [str(int(v)) for v in given]})
        t0 = time.perf_counter()
        res, summary, _ = run_stage(table, pixel_mode="gray", pixel_size=28, **params)
        flagged = np.array(res.column("flag").is_valid().to_numpy(zero_copy_only=False))
        print(f"  defaults: features {summary['features']}, classifier {summary['classifier']}, held-out accuracy "
              f"{summary['heldout_accuracy']:.4f}, kept {summary['kept_accuracy']:.4f}, member kappa "
              f"{summary['member_agreement_kappa']:.3f}, logistic C {summary.get('logistic_c')}, abstained "
              f"{summary['abstained']}; {time.perf_counter() - t0:.0f}s"
              + (f"; calibrated count {summary['calibrated_count']}" if "calibrated_count" in summary else ""))
        return res, flagged

    print("\n1. planted flips")
    res, flagged = defaults(noisy)
    cleanlab = np.array(res.column("cleanlab_issue").to_numpy(zero_copy_only=False))
    suggested = np.array([int(s) for s in res.column("suggested_label").to_pylist()])
    print(f"    curate defaults (guard):        {pr(flagged, truth, kind)}")
    print(f"    cleanlab before the guard:      {pr(cleanlab, truth, kind)}")
    print(f"    argmax != label (same probs):   {pr(suggested != noisy, truth, kind)}")
    print(f"    flagged flips whose suggestion is the true digit: {int((flagged & truth & (suggested == labels)).sum())}"
          f"/{int((flagged & truth).sum())}")
    if args.svm:
        from curate.label_noise import find_issues

        t0 = time.perf_counter()
        pp = svm_pred_probs(images, noisy)
        issues = find_issues(noisy, pp, min_examples_per_class=5)
        print(f"    PCA 64 + RBF-SVM, cleanlab:     {pr(issues.is_issue, truth, kind)} ({time.perf_counter() - t0:.0f}s; "
              f"held-out accuracy {(pp.argmax(1) == noisy).mean():.4f})")
        print(f"    PCA 64 + RBF-SVM, argmax:       {pr(pp.argmax(1) != noisy, truth, kind)}")

    print("\n2. original labels vs the 15 validated errors")
    candidates, validated = validated_errors("mnist")
    res, flagged = defaults(labels)
    quality = np.array(res.column("label_quality").to_pylist(), dtype=np.float64)
    report("  curate defaults", quality, flagged, candidates, validated, ks=(15, 50, 100, 200))
    order = np.argsort(quality, kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    print("    label-quality rank of each validated error: " + ", ".join(str(int(rank[i])) for i in sorted(validated)))
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
