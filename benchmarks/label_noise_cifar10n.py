"""label_noise on CIFAR-10N (50,000 training JPEGs, real human noisy labels) against the clean labels.

    nice -n 10 /work/venv/bin/python benchmarks/label_noise_cifar10n.py [--features cnn,pixels]

Ground truth: a row is a label error iff its noisy label (``aggre_label``: 9.0% wrong, ``worse_label``:
40.2% wrong) differs from ``clean_label``. Figures: precision, recall and F1 of the ``label_issue`` flags,
against the obvious alternative (flag every row whose predicted class differs from its label).

Features (no pretrained model exists offline here):

* ``cnn``: out-of-sample probabilities of a 9-layer CNN trained from scratch by 5-fold cross-validation on
  the noisy labels (``label_noise_cifar10n_cnn.py``, minutes on a GPU; cached in benchmarks/.cache), fed
  to the stage as ``pred_probs:``;
* ``pixels``: the stage's model-free features (16x16 RGB, PCA 64) with its own cross-validated
  ``logistic`` and ``knn`` classifiers, run here on the CPU.
"""

from __future__ import annotations

import argparse
import csv
import time
import zipfile

import numpy as np
import pyarrow as pa

from label_noise_common import CACHE, machine, peak_rss_mb, run_stage, shared_data

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def prf(flagged: np.ndarray, truth: np.ndarray) -> str:
    tp = int((flagged & truth).sum())
    p = tp / max(1, flagged.sum())
    r = tp / max(1, truth.sum())
    f1 = 2 * p * r / max(1e-12, p + r)
    return f"flagged {int(flagged.sum())}, precision {p:.3f}, recall {r:.3f}, F1 {f1:.3f}"


def evaluate(title: str, res: pa.Table, summary: dict, given: np.ndarray, clean: np.ndarray, secs: float) -> None:
    flagged = np.array(res.column("flag").is_valid().to_numpy(zero_copy_only=False))
    suggested = np.array([NAMES.index(s) for s in res.column("suggested_label").to_pylist()])
    truth = given != clean
    print(f"  [{title}] accuracy of the out-of-sample predictions vs given {summary['heldout_accuracy']:.4f}, "
          f"vs clean {(suggested == clean).mean():.4f}; estimated noise {summary['estimated_noise_rate']:.4f} "
          f"(true {truth.mean():.4f}); {secs:.1f}s")
    print(f"    cleanlab {summary.get('classifier', 'pred_probs')} prune_by_noise_rate: {prf(flagged, truth)}")
    print(f"    baseline argmax != label:        {prf(suggested != given, truth)}")
    fixed = flagged & (suggested == clean) & truth
    print(f"    flagged true errors whose suggested label is the clean one: {int(fixed.sum())}/{int((flagged & truth).sum())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--features", default="cnn,pixels")
    ap.add_argument("--labels", default="aggre_label,worse_label")
    ap.add_argument("--cnn-file", default="cifar10n_cnn_{labels}.npy", help="cached CNN probabilities in benchmarks/.cache")
    ap.add_argument("--pixel-classifiers", default="logistic,knn")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    data = shared_data() / "cifar10-jpg"
    rows = list(csv.DictReader(open(data / "train_index.csv")))
    clean = np.array([int(r["clean_label"]) for r in rows])
    images = None
    for name in args.labels.split(","):
        given = np.array([int(r[name]) for r in rows])
        print(f"\nCIFAR-10N {name}: {len(rows)} images, {int((given != clean).sum())} wrong labels ({(given != clean).mean():.2%})")
        ids = [r["index"] for r in rows]
        label_names = [NAMES[v] for v in given]
        for feat in args.features.split(","):
            if feat == "cnn":
                path = CACHE / args.cnn_file.format(labels=name)
                if not path.exists():
                    print(f"  [cnn] {path} missing: run benchmarks/label_noise_cifar10n_cnn.py first")
                    continue
                probs = np.load(path)
                table = pa.table({"id": ids, "label": label_names,
                                  "probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), 10)})
                t0 = time.perf_counter()
                res, summary, _ = run_stage(table, features="pred_probs:probs", classes=NAMES)
                evaluate(f"cnn 5-fold ({path.name})", res, summary, given, clean, time.perf_counter() - t0)
            elif feat == "pixels":
                if images is None:
                    with zipfile.ZipFile(data / "train.zip") as z:
                        images = [z.read(r["path"]) for r in rows]
                table = pa.table({"id": ids, "label": label_names, "image": images})
                for clf in args.pixel_classifiers.split(","):
                    t0 = time.perf_counter()
                    res, summary, _ = run_stage(table, features="pixels", pixel_size=16, pixel_mode="rgb",
                                                pca_components=64, classifier=clf, classes=NAMES)
                    evaluate(f"pixels 16x16 rgb + PCA 64, {clf}", res, summary, given, clean, time.perf_counter() - t0)
                    if summary.get("warning"):
                        print(f"    stage warning: {summary['warning']}")
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
