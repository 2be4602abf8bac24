"""``curate eval`` on IMDB: raw vs curated with TF-IDF + logistic regression.

    nice -n 10 .venv/bin/python benchmarks/eval_imdb.py [--seeds 3]

Only the 25,000 IMDB *test* reviews are here, with cleanlab's 725 human-validated label errors. The
script splits them in two halves (stratified, seed 0): the training half keeps its given labels (label
errors included); the test half is the trusted test set, with the validated errors among it corrected
(binary labels: the corrected label is the other one). The pipeline ``exact_dedup`` (drop) ->
``label_noise`` (TF-IDF, logistic, drop) runs on the training half with ``curate run``; ``curate eval
--model tfidf`` trains every arm; the ceiling arm uses the training half with its validated errors
corrected (``--clean-labels meta.clean_label``: clean as far as the 1,310 human-checked candidates go).
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
PIPELINE = """name: imdb-eval
input: {{format: jsonl, path: {train}, columns: {{text: text, label: label}}, shard_size: 2500}}
output: {run}
workers: 2
stages:
  - exact_dedup: {{on: [text], action: drop}}
  - label_noise: {{features: tfidf, classifier: logistic, action: drop}}
"""


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
    with open(train, "w") as ft, open(test, "w") as fe:
        for i, r in enumerate(rows):
            given = NAMES[r["label"]]
            clean = NAMES[1 - r["label"]] if i in validated else given
            if is_test[i]:
                fe.write(json.dumps({"text": r["text"], "label": clean, "index": i}) + "\n")
            else:
                ft.write(json.dumps({"text": r["text"], "label": given, "clean_label": clean, "index": i}) + "\n")
    stats = {"train": int((~is_test).sum()), "test": int(is_test.sum()),
             "validated_errors_train": int(sum(1 for i in validated if not is_test[i])),
             "validated_errors_test_corrected": int(sum(1 for i in validated if is_test[i]))}
    return train, test, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {os.uname().machine}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    train, test, stats = prepare()
    print(f"split: {stats}")
    run = WORK / "runs" / "imdb"
    pipe = WORK / "imdb.yaml"
    pipe.write_text(PIPELINE.format(train=train, run=run))
    secs, out = curate("run", str(pipe), "-q")
    print(f"curate run: {secs:.0f} s\n{out}")
    secs, out = curate("eval", str(run), "--test", str(test), "--model", "tfidf", "--clean-labels", "meta.clean_label",
                       "--seeds", str(args.seeds), "-q")
    print(f"curate eval --model tfidf: {secs:.0f} s\n{out}")
    result = json.loads((run / "eval" / "eval-tfidf.json").read_text())
    # how many of the validated errors in the training half did the curated arm leave out?
    from curate.eval.arms import collect_fates
    from curate.rundir import RunDir
    from curate.shards import read_records

    recs = read_records(RunDir(run), ["label", "meta"])
    meta = [json.loads(m) for m in recs.column("meta").to_pylist()]
    given = recs.column("label").to_pylist()
    fates = collect_fates(RunDir(run), given, pending="drop")
    wrong = np.array([m["clean_label"] != g for m, g in zip(meta, given)])
    print(f"validated errors in the training half: {int(wrong.sum())}; left out of the curated arm: "
          f"{int((wrong & ~fates.kept).sum())}; curated arm removed {int((~fates.kept).sum())} items in all")
    (WORK / "results-imdb-tfidf.json").write_text(json.dumps({"split": stats, "eval": result}, indent=2))


if __name__ == "__main__":
    main()
