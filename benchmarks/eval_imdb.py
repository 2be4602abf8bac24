"""``curate eval`` on IMDB: raw vs curated, with TF-IDF and with MiniLM features.

    nice -n 5 .venv/bin/python benchmarks/eval_imdb.py [--seeds 3] [--variants default,tfidf-full] [--minilm]

Only the 25,000 IMDB *test* reviews are here, with cleanlab's 725 human-validated label errors. The
script splits them in two halves (stratified, seed 0): the training half keeps its given labels (label
errors included); the test half is the trusted test set, with the validated errors among it corrected
(binary labels: the corrected label is the other one). The pipeline ``exact_dedup`` (drop) ->
``label_noise`` (TF-IDF, logistic, drop; one run per ``--variants`` entry, each a different label_noise
setting) runs on the training half with ``curate run``; ``curate eval --model tfidf`` trains every arm;
the ceiling arm uses the training half with its validated errors corrected (``--clean-labels
meta.clean_label``: clean as far as the 1,310 human-checked candidates go).

``--minilm`` adds a run with an ``embed`` stage (sentence-transformers all-MiniLM-L6-v2, the packaged
offline weights) before ``label_noise``, which then works on the embeddings; eval trains the linear probe
on the embeddings (the test reviews are embedded by eval with the same stage, through the shared cache)
and TF-IDF beside. The embedding cache (``--cache``, keyed by text) makes an interrupted run resume.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from label_noise_common import validated_errors  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "data"
WORK = HERE / ".cache" / "eval"
NAMES = ["negative", "positive"]
PIPELINE = """name: imdb-eval-{name}
input: {{format: jsonl, path: {train}, columns: {{text: text, label: label}}, shard_size: 2500}}
output: {run}
cache: {cache}
workers: 2
stages:
  - exact_dedup: {{on: [text], action: drop}}
{embed}  - label_noise: {{features: {features}, action: drop{params}}}
"""
MINILM = "  - embed: {backend: sentence-transformers, batch_size: 32}\n"
#: label_noise settings tried on the TF-IDF run: name -> extra params
VARIANTS = {
    "default": "classifier: logistic",                                   # TF-IDF reduced to 64 dimensions (the default)
    "tfidf-full": "classifier: logistic, pca_components: 0",             # the classifier on all TF-IDF features
    "confident": "classifier: logistic, min_confidence: 0.9",            # flag only confident suggestions
    "tfidf-full-confident": "classifier: logistic, pca_components: 0, min_confidence: 0.9",
}


def curate(*args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "curate", *args], stdout=subprocess.PIPE, text=True)
    if r.returncode:
        sys.exit(f"curate {' '.join(args)} failed ({r.returncode}):\n{r.stdout}")
    return time.perf_counter() - t0, r.stdout


def prepare() -> tuple[Path, Path, dict]:
    WORK.mkdir(parents=True, exist_ok=True)
    (HERE / ".cache" / ".gitignore").write_text("*\n")
    rows = [json.loads(line) for line in gzip.open(SHARED / "imdb-test" / "imdb_test.jsonl.gz", "rt")]
    _, validated = validated_errors("imdb")
    labels = np.array([r["label"] for r in rows])
    rng = np.random.default_rng(0)
    test_rows = np.concatenate([rng.choice(np.flatnonzero(labels == k), size=int((labels == k).sum()) // 2, replace=False)
                                for k in (0, 1)])
    is_test = np.zeros(len(rows), dtype=bool)
    is_test[test_rows] = True
    train, test = WORK / "imdb_train_half.jsonl", WORK / "imdb_test_half.jsonl"
    lines: dict[Path, list[str]] = {train: [], test: []}
    for i, r in enumerate(rows):
        given = NAMES[r["label"]]
        clean = NAMES[1 - r["label"]] if i in validated else given
        if is_test[i]:
            lines[test].append(json.dumps({"text": r["text"], "label": clean, "index": i}) + "\n")
        else:
            lines[train].append(json.dumps({"text": r["text"], "label": given, "clean_label": clean, "index": i}) + "\n")
    for path, text in lines.items():
        text = "".join(text)
        if not path.exists() or path.read_text() != text:  # rewriting an unchanged file would make curate run re-ingest
            path.write_text(text)
    stats = {"train": int((~is_test).sum()), "test": int(is_test.sum()),
             "validated_errors_train": int(sum(1 for i in validated if not is_test[i])),
             "validated_errors_test_corrected": int(sum(1 for i in validated if is_test[i]))}
    return train, test, stats


def test_subset(test: Path, n: int) -> Path:
    """A stratified subset of ``n`` reviews of the test half (seed 0), for a slow model's test features."""
    rows = [json.loads(line) for line in open(test)]
    labels = np.array([r["label"] for r in rows])
    rng = np.random.default_rng(0)
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == k), size=min(n // 2, int((labels == k).sum())),
                                              replace=False) for k in NAMES]))
    out = WORK / f"imdb_test_half_{n}.jsonl"
    text = "".join(json.dumps(rows[i]) + "\n" for i in keep)
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    return out


def run_variant(name: str, train: Path, test: Path, cache: Path, seeds: int, minilm: bool, params: str,
                models: list[str]) -> list[dict]:
    run = WORK / "runs" / f"imdb-{name}"
    pipe = WORK / f"imdb-{name}.yaml"
    pipe.write_text(PIPELINE.format(name=name, train=train, run=run, cache=cache, embed=MINILM if minilm else "",
                                    features="embed.text_embedding" if minilm else "tfidf",
                                    params="".join(f", {p.strip()}" for p in params.split(",") if p.strip())))
    secs, out = curate("run", str(pipe), "-q")
    print(f"[{name}] curate run: {secs:.0f} s\n{out}", flush=True)
    # how many of the validated errors in the training half did the curated arm leave out?
    from curate.eval.arms import collect_fates
    from curate.rundir import RunDir
    from curate.shards import read_records

    recs = read_records(RunDir(run), ["label", "meta"])
    meta = [json.loads(m) for m in recs.column("meta").to_pylist()]
    given = recs.column("label").to_pylist()
    fates = collect_fates(RunDir(run), given, pending="drop")
    wrong = np.array([m["clean_label"] != g for m, g in zip(meta, given)])
    removed = int((~fates.kept).sum())
    caught = int((wrong & ~fates.kept).sum())
    print(f"[{name}] validated errors in the training half: {int(wrong.sum())}; curated arm removed {removed} items, "
          f"{caught} of them validated errors", flush=True)
    out_results = []
    for model in models:
        secs, out = curate("eval", str(run), "--test", str(test), "--model", model, "--clean-labels", "meta.clean_label",
                           "--seeds", str(seeds), "--jobs", "2", "--threads", "1", "-q")
        print(f"[{name}] curate eval --model {model}: {secs:.0f} s\n{out}", flush=True)
        result = json.loads((run / "eval" / f"eval-{model}.json").read_text())
        res = {"variant": name, "label_noise": params, "model": model, "removed": removed, "validated_errors_removed": caught,
               "eval_seconds": round(secs, 1), "eval": result}
        (WORK / f"results-imdb-{name}-{model}.json").write_text(json.dumps(res, indent=2))
        out_results.append(res)
    return out_results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"label_noise settings on TF-IDF: {', '.join(VARIANTS)}")
    ap.add_argument("--minilm", action="store_true", help="also the run with MiniLM embeddings (embed stage; label_noise "
                    "and the linear probe on them, TF-IDF beside)")
    ap.add_argument("--minilm-only", action="store_true", help="only the MiniLM run")
    ap.add_argument("--minilm-models", default="linear,tfidf",
                    help="models eval trains on the MiniLM run ('': the run only, e.g. to embed in a first piece)")
    ap.add_argument("--minilm-test", type=int, default=0,
                    help="score the MiniLM run on a stratified subset of this many test reviews (0: all 12,500); "
                         "MiniLM embeds about 12 long reviews/s on 2 cores, so the test features are most of eval's time")
    ap.add_argument("--cache", default=str(WORK / "cache-imdb"), help="model cache the runs share")
    args = ap.parse_args()
    print(f"machine: {os.uname().machine}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    train, test, stats = prepare()
    print(f"split: {stats}")
    cache = Path(args.cache)
    rows = []
    if not args.minilm_only:
        for name in args.variants.split(","):
            rows += run_variant(name, train, test, cache, args.seeds, False, VARIANTS[name], ["tfidf"])
    if args.minilm or args.minilm_only:
        mtest = test_subset(test, args.minilm_test) if args.minilm_test else test
        if args.minilm_test:
            print(f"MiniLM run scored on {mtest.name}: a stratified {args.minilm_test:,} of the test half", flush=True)
        rows += run_variant("minilm", train, mtest, cache, args.seeds, True, "", [m for m in args.minilm_models.split(",") if m])
    print("\nvariant | label_noise | model | removed (validated errors) | raw | curated | random | relabelled | ceiling")
    for r in rows:
        arms = {a["kind"]: a["accuracy"]["mean"] for a in r["eval"]["arms"] if a["accuracy"]}
        print(f"{r['variant']} | {r['label_noise']} | {r['model']} | {r['removed']} ({r['validated_errors_removed']}) | "
              + " | ".join(f"{arms.get(k, float('nan')):.4f}" for k in ("raw", "curated", "random", "relabelled", "ceiling")))


if __name__ == "__main__":
    main()
