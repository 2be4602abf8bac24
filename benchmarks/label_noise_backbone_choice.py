"""Which embed settings to use for label noise on small images: held-out accuracy against the clean labels.

    flock /tmp/team/heavy.lock nice -n 5 python benchmarks/label_noise_backbone_choice.py \
        --configs lite0:160:1,lite0:224,lite0:224:1,lite2:224:1,lite2:260:1,lite2:260:1:flip

A stratified subset of the CIFAR-10N training JPEGs (``--per-class`` images of each clean class) goes
through curate's own ``embed`` stage (``curate run``, backend timm, packaged weights) once per setting
``model:size[:crop_pct][:flip]``, into a shared model cache (``--cache``; embeddings keyed by image bytes,
so a later 50k run reuses them). For each setting, 5-fold cross-validated out-of-sample predictions of
the label_noise classifiers (logistic, kNN, their average), trained on the ``worse`` noisy labels, are
scored against the *clean* labels (the quality that drives label-error detection), plus the same trained
on the clean labels (the features' ceiling), and the label_noise stage's F1 on ``worse`` and ``aggre``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from label_noise_common import REPO, machine, run_stage

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MODELS = {"lite0": "tf_efficientnet_lite0", "lite2": "tf_efficientnet_lite2"}


def parse_config(text: str) -> dict:
    parts = text.split(":")
    cfg = {"backend": "timm", "model": MODELS[parts[0]], "pretrained": "packaged", "image_size": int(parts[1])}
    for p in parts[2:]:
        if p == "flip":
            cfg["flip_average"] = True
        else:
            cfg["crop_pct"] = float(p)
    return cfg


def embed_run(manifest: Path, cfg: dict, run: Path, cache: Path) -> float:
    """``curate run`` of an embed-only pipeline; returns seconds."""
    run.parent.mkdir(parents=True, exist_ok=True)
    yaml = run.with_suffix(".yaml")
    yaml.write_text(f"name: {run.name}\ninput: {{format: parquet, path: {manifest}, columns: {{image: image, label: label}}, "
                    f"shard_size: 5000}}\noutput: {run}\ncache: {cache}\nworkers: 1\nstages:\n  - embed: {json.dumps(cfg)}\n")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "curate", "run", str(yaml), "-q"], cwd=REPO)
    if r.returncode:
        sys.exit(f"curate run {yaml} failed ({r.returncode})")
    return time.perf_counter() - t0


def read_embeddings(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings in dataset-index order, the dataset indices)."""
    from curate.rundir import RunDir
    from curate.shards import read_records, read_stage
    from curate.vectors import list_column_to_matrix

    rd = RunDir(run)
    meta = [json.loads(m) for m in read_records(rd, ["meta"]).column("meta").to_pylist()]
    index = np.array([int(m["index"]) for m in meta])
    emb, ok = list_column_to_matrix(read_stage(rd, rd.stage("embed").dir, ["image_embedding"]).column("image_embedding"),
                                    what="embed")
    assert ok.all()
    return emb, index


def cv_accuracy(x: np.ndarray, y: np.ndarray, truth: np.ndarray) -> dict:
    from curate.label_noise.crossval import cross_val_pred_probs

    cv = cross_val_pred_probs(x, y, n_classes=10, classifier="logistic+knn", progress=False)
    out = {m: round(a, 4) for m, a in cv.member_accuracy.items()}  # against y
    out["ensemble"] = round(cv.accuracy, 4)
    out["ensemble_vs_clean"] = round(float((cv.pred_probs.argmax(1) == truth).mean()), 4)
    out["kappa"] = round(cv.agreement_kappa, 4)
    return out


def f1(flagged: np.ndarray, truth: np.ndarray) -> dict:
    tp = int((flagged & truth).sum())
    p, r = tp / max(1, int(flagged.sum())), tp / max(1, int(truth.sum()))
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(2 * p * r / max(1e-12, p + r), 3),
            "clean_flagged": round(float((flagged & ~truth).sum() / (~truth).sum()), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="lite0:160:1,lite0:224,lite0:224:1,lite2:224:1,lite2:260:1")
    ap.add_argument("--per-class", type=int, default=500)
    ap.add_argument("--train", default=str(REPO / "benchmarks/.cache/eval/cifar10n_worse.parquet"),
                    help="Parquet of the 50k training JPEGs (benchmarks/eval_cifar10n.py writes it)")
    ap.add_argument("--work", default="/work/scratch/cifar")
    ap.add_argument("--cache", default="/work/scratch/cifar/cache")
    ap.add_argument("--out", default="backbone_choice.json", help="results file in --work (the img/s of a rerun are "
                                                                   "cache reads)")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    from label_noise_common import shared_data
    import csv

    rows = list(csv.DictReader(open(shared_data() / "cifar10-jpg" / "train_index.csv")))
    clean_all = np.array([int(r["clean_label"]) for r in rows])
    labels_all = {k: np.array([int(r[f"{k}_label"]) for r in rows]) for k in ("worse", "aggre")}
    work = Path(args.work)
    subset = work / f"subset{args.per_class * 10}.parquet"
    if not subset.exists():
        rng = np.random.default_rng(0)
        pick = np.sort(np.concatenate([rng.choice(np.flatnonzero(clean_all == k), args.per_class, replace=False)
                                       for k in range(10)]))
        t = pq.read_table(args.train)
        assert t.column("index").to_pylist()[:5] == [0, 1, 2, 3, 4]
        work.mkdir(parents=True, exist_ok=True)
        pq.write_table(t.take(pa.array(pick)), subset)
    results = {}
    for text in args.configs.split(","):
        cfg = parse_config(text)
        run = work / "runs" / f"choice-{text.replace(':', '_')}"
        secs = embed_run(subset, cfg, run, Path(args.cache))
        x, index = read_embeddings(run)
        clean = clean_all[index]
        res = {"embed_seconds": round(secs, 1), "img_per_s": round(len(index) / secs, 1),
               "train_on_worse": cv_accuracy(x, labels_all["worse"][index], clean),
               "train_on_clean": cv_accuracy(x, clean, clean)}
        for k in ("worse", "aggre"):
            given = labels_all[k][index]
            table = pa.table({"id": [str(i) for i in index], "label": [NAMES[v] for v in given],
                              "emb": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])})
            out, summary, _ = run_stage(table, classes=NAMES, features="emb")
            flagged = np.array(out.column("flag").is_valid().to_numpy(zero_copy_only=False))
            res[f"stage_{k}"] = {**f1(flagged, given != clean), "abstained": summary["abstained"]}
        results[text] = res
        print(f"{text:22s} {res['img_per_s']:6.1f} img/s (run incl. start-up)  "
              f"worse-trained acc vs clean {res['train_on_worse']['ensemble_vs_clean']:.4f} "
              f"(logistic vs worse {res['train_on_worse']['logistic']:.4f}, knn {res['train_on_worse']['knn']:.4f}); "
              f"clean-trained {res['train_on_clean']['ensemble']:.4f} (logistic {res['train_on_clean']['logistic']:.4f}); "
              f"stage F1 worse {res['stage_worse']['f1']:.3f} ({res['stage_worse']['clean_flagged']:.3f} clean flagged), "
              f"aggre {res['stage_aggre']['f1']:.3f}", flush=True)
        (work / args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
