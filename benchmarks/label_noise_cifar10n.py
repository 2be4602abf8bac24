"""label_noise on CIFAR-10N (50,000 training JPEGs, real human noisy labels) against the clean labels.

    nice -n 10 python benchmarks/label_noise_backbone.py --model lite0 --size 160     # once: the features
    nice -n 10 python benchmarks/label_noise_cifar10n.py [--methods curate,datalab,pixels] [--labels worse_label,aggre_label]

Ground truth: a row is a label error iff its noisy label (``aggre_label``: 9.0% wrong, ``worse_label``:
40.2% wrong) differs from ``clean_label``. For each method: precision, recall, F1 and the share of the
correctly labelled images flagged ("clean flagged"), in one run:

* ``curate``: the stage with its defaults (``classifier: auto``, the trust guard) on frozen
  EfficientNet-Lite features (the column an image ``embed`` stage would write; here read from
  ``benchmarks/.cache``), plus on the *same* out-of-sample probabilities: cleanlab's own flags before
  the guard, and the obvious alternative ``argmax(pred_probs) != label``;
* ``datalab``: cleanlab's ``Datalab(...).find_issues(features=X)`` (its own kNN model) on the same features;
* ``pixels``: the stage with its defaults on the images (``features: auto`` with no embedding stage
  falls back to 16x16 pixels).

Results are also written to ``benchmarks/.cache/label_noise_cifar10n.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
import zipfile

import numpy as np
import pyarrow as pa

from label_noise_common import CACHE, machine, peak_rss_mb, run_stage, shared_data

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def scores(flagged: np.ndarray, truth: np.ndarray) -> dict:
    tp = int((flagged & truth).sum())
    p = tp / max(1, int(flagged.sum()))
    r = tp / max(1, int(truth.sum()))
    return {"flagged": int(flagged.sum()), "precision": round(p, 4), "recall": round(r, 4),
            "f1": round(2 * p * r / max(1e-12, p + r), 4), "clean_flagged": round(float((flagged & ~truth).sum() / (~truth).sum()), 4)}


def line(title: str, s: dict) -> str:
    return (f"    {title:44s} flagged {s['flagged']:6d}  P {s['precision']:.3f}  R {s['recall']:.3f}  "
            f"F1 {s['f1']:.3f}  clean flagged {s['clean_flagged']:.3f}")


def load_features(name: str) -> np.ndarray:
    path = CACHE / f"cifar10_train_{name}.npy"
    if not path.exists():
        raise SystemExit(f"{path} missing: run benchmarks/label_noise_backbone.py first")
    x = np.load(path).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)  # as the embed stage writes them: L2-normalised


def stage_run(title: str, table: pa.Table, given: np.ndarray, clean: np.ndarray, out: dict, **params) -> None:
    truth = given != clean
    t0 = time.perf_counter()
    res, summary, _ = run_stage(table, classes=NAMES, **params)
    secs = time.perf_counter() - t0
    flagged = np.array(res.column("flag").is_valid().to_numpy(zero_copy_only=False))
    cleanlab = np.array(res.column("cleanlab_issue").fill_null(False).to_numpy(zero_copy_only=False))
    suggested = np.array([NAMES.index(s) for s in res.column("suggested_label").to_pylist()])
    print(f"  [{title}] classifier {summary.get('classifier')}, held-out accuracy vs given {summary['heldout_accuracy']:.4f}, "
          f"vs clean {(suggested == clean).mean():.4f}; on the labels cleanlab keeps {summary['kept_accuracy']:.4f}; "
          f"member kappa {summary.get('member_agreement_kappa')}; estimated noise {summary['estimated_noise_rate']:.4f} "
          f"(true {truth.mean():.4f}); abstained {summary['abstained']}; {secs:.0f}s")
    rows = {"curate defaults (guard)": scores(flagged, truth), "cleanlab flags before the guard": scores(cleanlab, truth),
            "argmax(pred_probs) != label": scores(suggested != given, truth)}
    for k, v in rows.items():
        print(line(k, v))
    fixed = int((flagged & truth & (suggested == clean)).sum())
    print(f"    flagged true errors whose suggested label is the clean one: {fixed}/{int((flagged & truth).sum())}")
    if summary.get("warning"):
        print(f"    stage warning: {summary['warning']}")
    out[title] = {"rows": rows, "seconds": round(secs, 1), "suggested_is_clean": fixed,
                  "summary": {k: summary.get(k) for k in ("classifier", "heldout_accuracy", "kept_accuracy",
                                                          "member_agreement_kappa", "estimated_noise_rate", "abstained",
                                                          "guard_removed", "features")}}


def datalab_run(title: str, x: np.ndarray, given: np.ndarray, clean: np.ndarray, out: dict) -> None:
    from cleanlab import Datalab

    truth = given != clean
    t0 = time.perf_counter()
    lab = Datalab(data={"label": given}, label_name="label", verbosity=0)
    lab.find_issues(features=x, issue_types={"label": {}})
    flagged = lab.get_issues("label")["is_label_issue"].to_numpy()
    secs = time.perf_counter() - t0
    s = scores(flagged, truth)
    print(f"  [{title}] {secs:.0f}s")
    print(line("Datalab find_issues(features=X)", s))
    out[title] = {"rows": {"Datalab": s}, "seconds": round(secs, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--methods", default="curate,datalab,pixels")
    ap.add_argument("--labels", default="worse_label,aggre_label")
    ap.add_argument("--features", default="lite0_160", help="cached backbone features (label_noise_backbone.py)")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    data = shared_data() / "cifar10-jpg"
    rows = list(csv.DictReader(open(data / "train_index.csv")))
    clean = np.array([int(r["clean_label"]) for r in rows])
    ids = [r["index"] for r in rows]
    methods = args.methods.split(",")
    x = load_features(args.features) if {"curate", "datalab"} & set(methods) else None
    images = None
    results: dict = {}
    for name in args.labels.split(","):
        given = np.array([int(r[name]) for r in rows])
        label_names = [NAMES[v] for v in given]
        print(f"\nCIFAR-10N {name}: {len(rows)} images, {int((given != clean).sum())} wrong labels ({(given != clean).mean():.2%})")
        out = results.setdefault(name, {})
        if "curate" in methods:
            emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
            table = pa.table({"id": ids, "label": label_names, "emb": emb})
            stage_run(f"curate, {args.features} features", table, given, clean, out, features="emb")
        if "datalab" in methods:
            datalab_run(f"Datalab, {args.features} features", x, given, clean, out)
        if "pixels" in methods:
            if images is None:
                with zipfile.ZipFile(data / "train.zip") as z:
                    images = [z.read(r["path"]) for r in rows]
            table = pa.table({"id": ids, "label": label_names, "image": images})
            stage_run("curate, pixels (features: auto, no embedding)", table, given, clean, out)
        (CACHE / "label_noise_cifar10n.json").write_text(json.dumps(results, indent=1))
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
