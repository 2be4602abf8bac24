"""label_noise on the IMDB test set (25,000 reviews) against its 725 human-validated label errors.

    nice -n 10 /work/venv/bin/python benchmarks/label_noise_imdb.py [--features minilm,tfidf] [--params '{"method": "low_self_confidence"}']

``minilm``: all-MiniLM-L6-v2 sentence embeddings (384-d, offline; computed once by
``label_noise_imdb_embed.py`` and cached in benchmarks/.cache) as an embedding column, logistic
regression, 5-fold cross-validation, cleanlab ``prune_by_noise_rate``: the stage's own map and reduce.
``tfidf``: the stage's model-free text features (word 1-2 gram TF-IDF, logistic regression), the obvious
alternative. Each is also compared with flagging every row whose predicted class differs from its label.
"""

from __future__ import annotations

import argparse
import gzip
import json

import numpy as np
import pyarrow as pa

from label_noise_common import CACHE, machine, peak_rss_mb, report, run_stage, shared_data, validated_errors


def load_embeddings() -> np.ndarray:
    single = CACHE / "imdb_minilm.npy"
    if single.exists():
        return np.load(single)
    parts = sorted(CACHE.glob("imdb_minilm.part*.npy"), key=lambda p: int(p.stem.split("part")[1]))
    if not parts:
        raise SystemExit(f"no cached embeddings in {CACHE}: run benchmarks/label_noise_imdb_embed.py first")
    return np.concatenate([np.load(p) for p in parts])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--features", default="minilm,tfidf")
    ap.add_argument("--classifier", default="logistic")
    ap.add_argument("--params", default="{}", help="label_noise parameters changed from the defaults (JSON)")
    args = ap.parse_args()
    extra = json.loads(args.params)
    print(f"machine: {machine()}")
    with gzip.open(shared_data() / "imdb-test" / "imdb_test.jsonl.gz", "rt", encoding="utf-8") as f:
        items = [json.loads(line) for line in f]
    labels = [["negative", "positive"][it["label"]] for it in items]
    candidates, validated = validated_errors("imdb")
    print(f"IMDB test: {len(items)} reviews, {len(candidates)} human-checked candidates, {len(validated)} validated errors")
    ids = [str(it["index"]) for it in items]
    for feat in args.features.split(","):
        if feat == "minilm":
            emb = load_embeddings()
            col = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), emb.shape[1])
            table = pa.table({"id": ids, "label": labels, "emb": col})
            params = {"features": "emb"}
            what = f"all-MiniLM-L6-v2 embeddings ({emb.shape[1]}-d)"
        else:
            table = pa.table({"id": ids, "label": labels, "text": [it["text"] for it in items]})
            params = {"features": "tfidf"}
            what = "TF-IDF word 1-2 grams"
        res, summary, times = run_stage(table, classifier=args.classifier, folds=5, **params, **extra)
        flagged = np.array([f is not None for f in res.column("flag").to_pylist()])
        quality = np.array(res.column("label_quality").to_pylist(), dtype=np.float64)
        given = res.column("given_label").to_pylist()
        suggested = res.column("suggested_label").to_pylist()
        print(f"\n[{feat}] {what}, {args.classifier}: held-out accuracy {summary['heldout_accuracy']:.4f} "
              f"(adjusted {summary['adjusted_accuracy']:.3f}); stage {times['map_s'] + times['reduce_s']:.1f}s "
              f"(cross-validation {summary.get('cv_seconds')}s); estimated noise {summary['estimated_noise_rate']}"
              + (f"; calibrated count {summary['calibrated_count']}" if "calibrated_count" in summary else ""))
        ours = report(f"  cleanlab {extra.get('method', 'prune_by_noise_rate')}", quality, flagged, candidates, validated,
                      ks=(100, 250, 500, 725, 1000, 1450))
        base = report("  baseline argmax != label", quality, np.array([g != s for g, s in zip(given, suggested)]),
                      candidates, validated, ks=())
        print(f"    cleanlab/baseline: flagged x{ours['flagged'] / max(1, base['flagged']):.2f}, validated found "
              f"x{ours['validated_found'] / max(1, base['validated_found']):.2f}, precision among checked "
              f"x{ours['precision_checked'] / base['precision_checked']:.2f}")
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
