"""``curate eval`` on CIFAR-10N: 50,000 training JPEGs with human noisy labels, scored on the clean test set.

    nice -n 10 .venv/bin/python benchmarks/eval_cifar10n.py --labels worse,aggre --models linear,cnn

For each label set (``worse``: 40.2% wrong, ``aggre``: 9.0% wrong) the script

1. writes Parquet manifests of the JPEG bytes (train: the noisy label, ``clean_label`` in meta; test: the
   10,000 clean test labels) into ``benchmarks/.cache/eval/`` (once);
2. runs the pipeline ``embed`` (EfficientNet-Lite0, packaged offline weights, 160 px, timm backend) ->
   ``image_dedup`` (drop) -> ``label_noise`` (logistic on the embeddings, drop) with ``curate run``; the
   ``aggre`` run's embedding cache is seeded from the ``worse`` run's (same images; only the content ids,
   which include the label, differ), so the images are embedded once;
3. runs ``curate eval RUN --test test.parquet --clean-labels meta.clean_label`` with each model (every arm),
   and compares the leakage check with ciFAIR's list of test/train duplicates.

Figures go to stdout and ``benchmarks/.cache/eval/results-<labels>-<model>.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "data"
WORK = HERE / ".cache" / "eval"
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PIPELINE = """name: cifar10n-{labels}
input: {{format: parquet, path: {manifest}, columns: {{image: image, label: label}}, shard_size: 5000}}
output: {run}
workers: 2
stages:
  - embed: {{backend: timm, model: tf_efficientnet_lite0, pretrained: packaged, image_size: 160}}
  - image_dedup: {{action: drop}}
  - label_noise: {{features: embed.image_embedding, classifier: logistic, action: drop}}
"""


def curate(*args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "curate", *args], stdout=subprocess.PIPE, text=True)
    if r.returncode:
        sys.exit(f"curate {' '.join(args)} failed ({r.returncode}):\n{r.stdout}")
    return time.perf_counter() - t0, r.stdout


def prepare(labels: str) -> tuple[Path, Path]:
    """The train manifest for ``labels`` and the test manifest (JPEG bytes inline)."""
    WORK.mkdir(parents=True, exist_ok=True)
    (HERE / ".cache" / ".gitignore").write_text("*\n")
    data = SHARED / "cifar10-jpg"
    train, test = WORK / f"cifar10n_{labels}.parquet", WORK / "cifar10_test.parquet"
    if not train.exists():
        rows = list(csv.DictReader(open(data / "train_index.csv")))
        with zipfile.ZipFile(data / "train.zip") as z:
            images = [z.read(r["path"]) for r in rows]
        pq.write_table(pa.table({"image": images, "label": [NAMES[int(r[f"{labels}_label"])] for r in rows],
                                 "clean_label": [NAMES[int(r["clean_label"])] for r in rows],
                                 "index": [int(r["index"]) for r in rows]}), train)
    if not test.exists():
        rows = list(csv.DictReader(open(data / "test_index.csv")))
        with zipfile.ZipFile(data / "test.zip") as z:
            images = [z.read(r["path"]) for r in rows]
        pq.write_table(pa.table({"image": images, "label": [NAMES[int(r["label"])] for r in rows],
                                 "index": [int(r["index"]) for r in rows]}), test)
    return train, test


def seed_cache(src_run: Path, dst_run: Path, src_manifest: Path, dst_manifest: Path) -> int:
    """Copy the embeddings of ``src_run`` to ``dst_run``'s cache under ``dst_run``'s item ids (row by row:
    the same image at the same row of both manifests)."""
    from curate.embeddings.cache import EmbeddingCache
    from curate.shards import read_records

    from curate.rundir import RunDir

    src_ids = read_records(RunDir(src_run), ["id"]).column("id").to_pylist()
    dst_ids = read_records(RunDir(dst_run), ["id"]).column("id").to_pylist()
    copied = 0
    for folder in (src_run / "cache" / "embeddings").iterdir():
        meta = json.loads((folder / "identity.json").read_text())
        src = EmbeddingCache(src_run / "cache", meta["identity"], meta["modality"])
        dst = EmbeddingCache(dst_run / "cache", meta["identity"], meta["modality"])
        emb, found = src.get(src_ids)
        if emb is not None:
            idx = [i for i in range(len(src_ids)) if found[i]]
            dst.put([dst_ids[i] for i in idx], emb[idx])
            copied += len(idx)
        for p in folder.glob("part-*.parquet"):  # test-set embeddings: same ids in both runs
            target = dst.dir / p.name
            if not target.exists():
                shutil.copy(p, target)
    return copied


def cifair_pairs() -> set[tuple[int, int]]:
    rows = csv.DictReader(open(SHARED / "cifair-duplicates" / "duplicates_cifar10.csv"))
    return {(int(r["TestID"]), int(r["TrainID"])) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", default="worse,aggre")
    ap.add_argument("--models", default="linear,cnn")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cnn-seeds", type=int, default=None, help="seeds for the CNN (default: --seeds)")
    ap.add_argument("--cnn-epochs", type=int, default=None)
    ap.add_argument("--cnn-arms", default=None, help="arms for the CNN (default: all)")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"shared evaluation data not found at {SHARED}")
    print(f"machine: {os.uname().machine}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    first_run = None
    for labels in args.labels.split(","):
        train, test = prepare(labels)
        run = WORK / "runs" / f"cifar10n_{labels}"
        pipe = WORK / f"cifar10n_{labels}.yaml"
        pipe.write_text(PIPELINE.format(labels=labels, manifest=train, run=run))
        if first_run is not None and not (run / "cache" / "embeddings").exists():
            # ingest only (no stages), seed the cache, then the full pipeline
            ingest = WORK / f"cifar10n_{labels}_ingest.yaml"
            ingest.write_text(PIPELINE.format(labels=labels, manifest=train, run=run).split("stages:")[0] + "stages: []\n")
            curate("run", str(ingest), "-q")
            n = seed_cache(first_run[0], run, first_run[1], train)
            print(f"[{labels}] seeded {n:,} embeddings from {first_run[0].name}")
        secs, out = curate("run", str(pipe), "-q")
        print(f"\n[{labels}] curate run: {secs:.0f} s\n{out}")
        first_run = first_run or (run, train)
        for model in args.models.split(","):
            extra = []
            if model == "cnn":
                extra += ["--seeds", str(args.cnn_seeds or args.seeds)]
                if args.cnn_epochs:
                    extra += ["--epochs", str(args.cnn_epochs)]
                if args.cnn_arms:
                    extra += ["--arms", args.cnn_arms]
            else:
                extra += ["--seeds", str(args.seeds)]
            secs, out = curate("eval", str(run), "--test", str(test), "--model", model, "--clean-labels",
                               "meta.clean_label", *extra, "-q")
            print(f"[{labels}] curate eval --model {model}: {secs:.0f} s\n{out}")
            result = json.loads((run / "eval" / f"eval-{model}.json").read_text())
            leak = result["leakage"]
            if leak:
                pairs = cifair_pairs()
                ours = {int(s.rsplit("row", 1)[1]) for s in leak["leaked_sources"]}
                theirs = {t for t, _ in pairs}
                print(f"[{labels}] leakage vs ciFAIR: {len(ours & theirs)} of ciFAIR's {len(theirs)} test items with a "
                      f"train duplicate found; {len(ours - theirs)} others flagged")
            (WORK / f"results-{labels}-{model}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
