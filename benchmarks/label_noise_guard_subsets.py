"""Where the trust guard lets weak flags through: small subsets of confusable CIFAR-10 classes.

    python benchmarks/label_noise_guard_subsets.py --run /work/scratch/cifar/runs/choice-lite2_260_1

Reads the embeddings of a finished ``embed`` run over CIFAR-10N training JPEGs (e.g. one of
``label_noise_backbone_choice.py``'s runs) and runs the label_noise stage with its defaults on subsets:
a few hundred images of two or four classes with 10% labels flipped at random among them, or with the
human ``aggre``/``worse`` labels. For each: precision/recall/F1 of the flags, the precision of
``argmax != label``, and the figures a guard check could use: held-out accuracy vs the given labels,
cleanlab's estimated noise rate (against the true one), their ratio ``noise / (1 - accuracy)`` (the
share of the classifier's disagreements it believes are label errors), the logistic/kNN kappa and the
accuracy on the labels cleanlab keeps.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pyarrow as pa

from label_noise_backbone_choice import NAMES, f1, read_embeddings
from label_noise_common import run_stage, shared_data

SUBSETS = [((3, 5), 300, "flip"), ((3, 5), 1000, "flip"), ((2, 3, 4, 5), 400, "flip"), ((0, 1, 8, 9), 600, "flip"),
           ((3, 5), 1000, "aggre"), ((3, 5), 1000, "worse"), (tuple(range(10)), 5000, "aggre"),
           (tuple(range(10)), 5000, "worse")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a finished embed run over CIFAR-10N training JPEGs")
    args = ap.parse_args()
    rows = list(csv.DictReader(open(shared_data() / "cifar10-jpg" / "train_index.csv")))
    clean_all = np.array([int(r["clean_label"]) for r in rows])
    x, idx = read_embeddings(args.run)
    clean = clean_all[idx]
    rng = np.random.default_rng(0)
    print(f"{'classes':22s} {'n':>5s} {'labels':6s} {'noise':>6s} {'P':>6s} {'R':>6s} {'F1':>6s} {'argmaxP':>7s} "
          f"{'acc':>6s} {'est.noise':>9s} {'ratio':>6s} {'kappa':>6s} {'kept':>6s} abstained")
    for classes, n, labels in SUBSETS:
        sel = np.flatnonzero(np.isin(clean, classes))
        sel = rng.choice(sel, min(n, len(sel)), replace=False)
        if labels == "flip":
            given = clean[sel].copy()
            flip = rng.random(len(sel)) < 0.1
            given[flip] = [rng.choice([k for k in classes if k != v]) for v in given[flip]]
        else:
            given = np.array([int(r[f"{labels}_label"]) for r in rows])[idx][sel]
            keep = np.isin(given, classes)  # human labels outside the subset's classes are left out
            sel, given = sel[keep], given[keep]
        table = pa.table({"id": [str(i) for i in sel], "label": [NAMES[v] for v in given],
                          "emb": pa.FixedSizeListArray.from_arrays(pa.array(x[sel].reshape(-1)), x.shape[1])})
        out, s, _ = run_stage(table, features="emb")
        flagged = np.array(out.column("flag").is_valid().to_numpy(zero_copy_only=False))
        suggested = np.array([NAMES.index(v) for v in out.column("suggested_label").to_pylist()])
        truth = given != clean[sel]
        m, am = f1(flagged, truth), f1(suggested != given, truth)
        acc, noise = s["heldout_accuracy"], s["estimated_noise_rate"]
        print(f"{','.join(NAMES[k][:4] for k in classes)[:22]:22s} {len(sel):5d} {labels:6s} {truth.mean():6.3f} "
              f"{m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} {am['precision']:7.3f} {acc:6.3f} {noise:9.3f} "
              f"{noise / max(1e-9, 1 - acc):6.3f} {s.get('member_agreement_kappa', float('nan')):6.3f} "
              f"{s['kept_accuracy']:6.3f} {s['abstained']}", flush=True)


if __name__ == "__main__":
    main()
