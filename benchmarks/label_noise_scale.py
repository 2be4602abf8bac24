"""label_noise's reduce on 200,000 rows of random-projection features with planted label flips:
driver vs distributed.

Each row's true class (``--classes``, default 10) has a centre in a 32-d latent space; a row is its
centre plus unit Gaussian noise, projected to ``--dim`` (default 256) dimensions by one fixed random
matrix, plus a little noise. ``--flips`` (default 10%) of the rows get another class as their given
label. Map shards of 10,000 rows (``id``, ``label``, ``f0``: the map step's output) are written once;
each arm runs only the reduce (``_reduce_scale.py``), classifier ``logistic`` with ``C`` chosen per
dataset (kNN's exact search over 160,000 rows per fold would dominate both arms alike): ``local``
(every feature on the driver) and ``distributed`` (the scheme as shard tasks on the local executor, 2
workers), optionally ``ray``. Reported: wall, peak memory of the driver and of the workers, precision
and recall of the flags against the planted flips, and whether the arms' output shards and summaries
(but timings) are identical.

    flock /tmp/team/heavy.lock nice -n 5 python benchmarks/label_noise_scale.py [--arms local,distributed]

``--data imdb``: the 25,000 IMDB test reviews of ``../shared/data/imdb-test`` (``--rows`` of them) as
text, ``--flips`` of the labels flipped, ``features: tfidf`` (sparse logistic, ``C`` chosen per dataset).
The arm ``sklearn`` runs the driver reduce in this process with the TF-IDF matrix of scikit-learn's own
``TfidfVectorizer.fit_transform`` (the rule before the vocabulary rule of
:mod:`curate.label_noise.features`: terms tied at the ``max_features`` cut split by numpy's unstable
sort, rows in first-seen term order) and counts the rows whose outputs differ from the ``local`` arm's.

    flock /tmp/team/heavy.lock nice -n 5 python benchmarks/label_noise_scale.py --data imdb --shards 10 \
        --arms local,distributed,sklearn

``--params JSON`` adds label_noise params to either data set, e.g. ``'{"rounds": 2, "round_count":
"first"}'`` or, on IMDB, ``'{"classifier": "knn"}'`` (tfidf through the truncated SVD).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402
from _reduce_scale import load, planted_shards, read_column, run_arm, same_outputs  # noqa: E402

TIMINGS = ("cv_seconds", "cleanlab_seconds")


def make_shards(rows: int, dim: int, classes: int, flips: float, shards: int, out: Path, seed: int = 0) -> np.ndarray:
    """Write the map shards one at a time; returns the rows whose label was flipped."""
    import pyarrow as pa

    from curate.rundir import shard_name
    from curate.storage import write_table

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.2, size=(classes, 32))
    projection = rng.normal(0, 1 / np.sqrt(32), size=(32, dim))
    per = rows // shards
    flipped = []
    for s in range(shards):
        r = np.random.default_rng([seed, s])
        true = r.integers(0, classes, per)
        x = (centres[true] + r.normal(size=(per, 32))) @ projection + 0.05 * r.normal(size=(per, dim))
        given = true.copy()
        f = np.flatnonzero(r.random(per) < flips)
        given[f] = (true[f] + r.integers(1, classes, len(f))) % classes
        feats = pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).reshape(-1)), dim)
        write_table(pa.table({"id": [f"r{s:03d}-{i:05d}" for i in range(per)], "label": [f"c{c}" for c in given],
                              "f0": feats}), out / shard_name(s))
        flipped.append(f + s * per)
    return np.concatenate(flipped)


def imdb_shards(rows: int, flips: float, shards: int, out: Path, seed: int = 0) -> np.ndarray:
    """The first ``rows`` IMDB test reviews as map shards (``id``, ``label`` neg/pos, ``f0`` text); returns
    the rows whose label was flipped."""
    import gzip

    import pyarrow as pa

    from curate.rundir import shard_name
    from curate.storage import write_table

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb-test" / "imdb_test.jsonl.gz"
    if not path.exists():
        sys.exit(f"{path} is missing (the IMDB test reviews, see ../shared/data/imdb-test/SOURCE.txt)")
    with gzip.open(path, "rt") as f:
        records = [json.loads(line) for _, line in zip(range(rows), f)]
    rng = np.random.default_rng(seed)
    given = np.array([r["label"] for r in records])
    flipped = np.flatnonzero(rng.random(len(records)) < flips)
    given[flipped] = 1 - given[flipped]
    out.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(records), shards + 1).astype(int)
    for s in range(shards):
        a, b = bounds[s], bounds[s + 1]
        write_table(pa.table({"id": [f"imdb{i:05d}" for i in range(a, b)],
                              "label": [("neg", "pos")[g] for g in given[a:b]],
                              "f0": [r["text"] for r in records[a:b]]}), out / shard_name(s))
    return flipped


def term_figures(map_dir: Path, shards: int) -> str:
    """What the tfidf scheme moves and holds: distinct terms (1-2 grams) of the whole set and per shard,
    candidates within the document-frequency bounds, non-zeros per row of the vocabulary's matrix."""
    from curate.label_noise import features
    from curate.rundir import shard_name
    from curate.storage import read_table

    texts, per_shard = [], []
    for s in range(shards):
        part = read_table(map_dir / shard_name(s), columns=["f0"]).column("f0").to_pylist()
        per_shard.append(len(features.count_terms(part)[0]))
        texts += part
    terms, df, tf, _ = features.count_terms(texts)
    kept, _, counts = features.tfidf_vocabulary(texts)
    return (f"terms: {len(terms):,} distinct 1-2 grams ({len(texts):,} texts), {sum(per_shard):,} shuffled from the shards "
            f"({max(per_shard):,} at most per shard), {int(features.df_keep(df, len(texts)).sum()):,} within the df bounds, "
            f"vocabulary {len(kept):,}, {counts.nnz / len(texts):.0f} non-zeros per row")


def sklearn_tfidf_matrix(texts, *, components, sparse_ok, seed=0, fit_rows=None):
    """The TF-IDF matrix as scikit-learn's own fit gives it (for the ``sklearn`` arm)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from curate.label_noise import features

    vec = TfidfVectorizer(ngram_range=features.TFIDF_NGRAMS, min_df=features.TFIDF_MIN_DF, max_df=features.TFIDF_MAX_DF,
                          sublinear_tf=True, max_features=features.TFIDF_MAX_FEATURES, dtype=np.float32)
    x = vec.fit_transform(texts)
    ours, _, _ = features.tfidf_vocabulary(texts)
    sklearn_tfidf_matrix.vocabulary_difference = len(set(vec.vocabulary_) ^ set(ours.tolist())) // 2
    return x, {"vocabulary": len(vec.vocabulary_)}


def sklearn_arm(params: dict, map_dir: Path, out_dir: Path, shards: int) -> dict:
    """The driver reduce with :func:`sklearn_tfidf_matrix`, in this process."""
    import shutil
    from unittest import mock

    from curate.distributed.compare import reduce_map_shards

    shutil.rmtree(out_dir, ignore_errors=True)
    t0 = time.perf_counter()
    with mock.patch("curate.label_noise.features.tfidf_matrix", sklearn_tfidf_matrix):
        summary = reduce_map_shards("label_noise", params, map_dir, out_dir, shards)
    return {"arm": "sklearn", "seconds": time.perf_counter() - t0, "summary": summary, "driver_peak_gib": float("nan"),
            "workers_peak_gib": 0.0, "vocabulary_difference": sklearn_tfidf_matrix.vocabulary_difference}


def differing_rows(a: Path, b: Path, shards: int, column: str) -> int:
    x, y = read_column(a, shards, column), read_column(b, shards, column)
    return sum(u != v for u, v in zip(x, y))


def untimed(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k not in TIMINGS}
    if "rounds" in out:
        out["rounds"] = [{k: v for k, v in r.items() if k != "seconds"} for r in out["rounds"]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=("synthetic", "imdb"), default="synthetic")
    ap.add_argument("--rows", type=int, default=None, help="default 200,000 synthetic, 25,000 imdb")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--flips", type=float, default=0.1)
    ap.add_argument("--shards", type=int, default=20)
    ap.add_argument("--arms", default="local,distributed")
    ap.add_argument("--work", type=Path, default=Path("/work/scratch/h15/label_noise_scale"))
    ap.add_argument("--keep-data", action="store_true", help="reuse the map shards of an earlier run")
    ap.add_argument("--params", type=json.loads, default={},
                    help='more label_noise params as JSON, e.g. \'{"rounds": 2, "round_count": "first"}\'')
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.data == "imdb":
        args.rows = args.rows or 25_000
        if args.work == Path("/work/scratch/h15/label_noise_scale"):
            args.work = Path("/work/scratch/h15/label_noise_scale_imdb")
        params = {"features": "tfidf"}
        flipped = planted_shards(args, lambda folder: imdb_shards(args.rows, args.flips, args.shards, folder))
        print(f"{args.rows:,} IMDB reviews, {len(flipped):,} flipped labels, {args.shards} shards: "
              f"{time.perf_counter() - t0:.1f} s; {machine()}", flush=True)
        print(term_figures(args.work / "map", args.shards), flush=True)
    else:
        args.rows = args.rows or 200_000
        params = {"features": "emb", "classifier": "logistic"}
        flipped = planted_shards(args, lambda folder: make_shards(args.rows, args.dim, args.classes, args.flips,
                                                                  args.shards, folder))
        print(f"{args.rows:,} x {args.dim} features, {args.classes} classes, {len(flipped):,} flipped labels, "
              f"{args.shards} shards: {time.perf_counter() - t0:.1f} s; {machine()}", flush=True)
    params.update(args.params)
    print(f"label_noise params: {params}", flush=True)
    planted = np.zeros(args.rows, dtype=bool)
    planted[flipped] = True
    results = {}
    for arm in args.arms.split(","):
        load_before = load()
        if arm == "sklearn":
            r = sklearn_arm(params, args.work / "map", args.work / arm, args.shards)
        else:
            r = run_arm(arm, "label_noise", params, args.work / "map", args.work / arm, args.shards)
        flags = np.array([f is not None for f in read_column(args.work / arm, args.shards, "flag")])
        r["precision"] = float(planted[flags].mean()) if flags.any() else 0.0
        r["recall"] = float(flags[planted].mean())
        r["load"] = (load_before, load())
        results[arm] = r
        (args.work / f"{arm}.json").write_text(json.dumps(r))
        s = r["summary"]
        print(f"{arm:12s} wall {r['seconds']:7.1f} s  driver {r['driver_peak_gib']:.2f} GiB  workers "
              f"{r['workers_peak_gib']:.2f} GiB  flagged {s['label_issues']:,}  precision {r['precision']:.4f}  "
              f"recall {r['recall']:.4f}  C {s.get('logistic_c')}  vocabulary "
              f"{s.get('feature_info', {}).get('vocabulary')}  load {r['load'][0]:.1f}-{r['load'][1]:.1f}", flush=True)
    for f in sorted(args.work.glob("*.json")):
        results.setdefault(f.stem, json.loads(f.read_text()))
    arms = [a for a in results if a != "sklearn"]
    if "sklearn" in results and "local" in results:
        r = results["sklearn"]
        print(f"sklearn's own TF-IDF vs the rule (local): {r.get('vocabulary_difference')} vocabulary terms swapped; rows "
              f"that differ: flag {differing_rows(args.work / 'local', args.work / 'sklearn', args.shards, 'flag')}, "
              f"label_quality {differing_rows(args.work / 'local', args.work / 'sklearn', args.shards, 'label_quality')}"
              f", suggested_label {differing_rows(args.work / 'local', args.work / 'sklearn', args.shards, 'suggested_label')}")
    for other in arms[1:]:
        same = same_outputs(args.work / arms[0], args.work / other, args.shards)
        equal = untimed(results[arms[0]]["summary"]) == untimed(results[other]["summary"])
        print(f"{arms[0]} and {other}: output shards {'identical' if same else 'DIFFERENT'}, summaries (but timings) "
              f"{'equal' if equal else 'DIFFERENT'}")
    out = Path(__file__).resolve().parent / ".cache" / "label_noise_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
