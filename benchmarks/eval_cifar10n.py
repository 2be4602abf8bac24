"""``curate eval`` on CIFAR-10N: 50,000 training JPEGs with human noisy labels, scored on the clean test set.

    nice -n 10 .venv/bin/python benchmarks/eval_cifar10n.py --labels worse,aggre --models linear,cnn

For each label set (``worse``: 40.2% wrong, ``aggre``: 9.0% wrong) the script

1. writes Parquet manifests of the JPEG bytes (train: the noisy label, ``clean_label`` in meta; test: the
   10,000 clean test labels) into ``benchmarks/.cache/eval/`` (once);
2. runs the pipeline ``embed`` (EfficientNet-Lite0, packaged offline weights, 64 px (to fit the shared 2-core CPU), timm backend) ->
   ``image_dedup`` (drop) -> ``label_noise`` (logistic on the embeddings, drop) with ``curate run``; the
   ``aggre`` run's embedding cache is seeded from the ``worse`` run's (same images; only the content ids,
   which include the label, differ), so the images are embedded once;
3. runs ``curate eval RUN --test test.parquet --clean-labels meta.clean_label`` with each model (every arm),
   and compares the leakage check with ciFAIR's list of test/train duplicates. On a small CPU the CNN can
   be trained on the same pipeline over the first N items (``--cnn-subset N``; same content ids, so the
   embedding cache is copied), smaller (``--cnn-size``, ``--cnn-width``) and shorter (``--cnn-epochs``).

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
  - embed: {{backend: timm, model: tf_efficientnet_lite0, pretrained: packaged, image_size: 64}}
  - image_dedup: {{action: drop}}
  - label_noise: {{features: embed.image_embedding, classifier: logistic, min_kept_accuracy: 0.0, action: drop}}
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


def seed_cache(src_run: Path, dst_run: Path) -> int:
    """Copy the embeddings of ``src_run`` to ``dst_run``'s cache under ``dst_run``'s item ids (row by row:
    the same image at the same row of both manifests)."""
    from curate.embeddings.cache import EmbeddingCache
    from curate.rundir import RunDir
    from curate.shards import read_records

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
    ap.add_argument("--cnn-epochs", type=int, default=10)
    ap.add_argument("--cnn-size", type=int, default=32, help="CNN input side in pixels")
    ap.add_argument("--cnn-width", type=int, default=32, help="CNN channels of the first block")
    ap.add_argument("--linear-epochs", type=int, default=10, help="linear probe epochs (eval's default: 30)")
    ap.add_argument("--linear-batch", type=int, default=1024, help="linear probe batch size (eval's default: 512)")
    ap.add_argument("--cnn-threads", type=int, default=1, help="torch threads for the CNN (1 was fastest on the busy VM)")
    ap.add_argument("--cnn-subset", type=int, default=0, help="train the CNN on a run over the first N items (0: all)")
    ap.add_argument("--cnn-arms", default=None, help="arms for the CNN (default: all)")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"shared evaluation data not found at {SHARED}")
    print(f"machine: {os.uname().machine}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    for labels in args.labels.split(","):
        train, test = prepare(labels)
        run = WORK / "runs" / f"cifar10n_{labels}"
        pipe = WORK / f"cifar10n_{labels}.yaml"
        pipe.write_text(PIPELINE.format(labels=labels, manifest=train, run=run))
        source = WORK / "runs" / "cifar10n_worse"
        if labels != "worse" and (source / "cache" / "embeddings").exists() and not (run / "cache" / "embeddings").exists():
            # ingest only (no stages), seed the cache, then the full pipeline
            ingest = WORK / f"cifar10n_{labels}_ingest.yaml"
            ingest.write_text(PIPELINE.format(labels=labels, manifest=train, run=run).split("stages:")[0] + "stages: []\n")
            curate("run", str(ingest), "-q")
            n = seed_cache(source, run)
            print(f"[{labels}] seeded {n:,} embeddings from {source.name}", flush=True)
        secs, out = curate("run", str(pipe), "-q")
        print(f"\n[{labels}] curate run: {secs:.0f} s\n{out}", flush=True)
        for model in args.models.split(","):
            eval_run = run
            extra = ["--seeds", str(args.seeds)]
            if model in ("linear", "mlp"):
                extra += ["--epochs", str(args.linear_epochs), "--batch-size", str(args.linear_batch)]
            if model == "cnn":
                eval_run = cnn_subset_run(labels, train, run, args.cnn_subset) if args.cnn_subset else run
                extra = ["--seeds", str(args.cnn_seeds or args.seeds), "--image-size", str(args.cnn_size),
                         "--width", str(args.cnn_width), "--epochs", str(args.cnn_epochs), "--threads", str(args.cnn_threads)]
                if args.cnn_arms:
                    extra += ["--arms", args.cnn_arms]
            secs, out = curate("eval", str(eval_run), "--test", str(test), "--model", model, "--clean-labels",
                               "meta.clean_label", *extra, "-q")
            print(f"[{labels}] curate eval {eval_run.name} --model {model} {' '.join(extra)}: {secs:.0f} s\n{out}")
            result = json.loads((eval_run / "eval" / f"eval-{model}.json").read_text())
            leak = result["leakage"]
            if leak:
                pairs = cifair_pairs()
                ours = {int(s.rsplit("row", 1)[1]) for s in leak["leaked_sources"]}
                theirs = {t for t, _ in pairs}
                print(f"[{labels}] leakage vs ciFAIR: {len(ours & theirs)} of ciFAIR's {len(theirs)} test items with a "
                      f"train duplicate found; {len(ours - theirs)} others flagged", flush=True)
            (WORK / f"results-{labels}-{eval_run.name}-{model}.json").write_text(json.dumps(result, indent=2))


def cnn_subset_run(labels: str, train: Path, full_run: Path, n: int) -> Path:
    """The same pipeline on the first ``n`` training items (``input.limit``): same items, same content ids,
    so the full run's embedding cache is copied and nothing is embedded again."""
    run = WORK / "runs" / f"cifar10n_{labels}_first{n}"
    pipe = WORK / f"cifar10n_{labels}_first{n}.yaml"
    text = PIPELINE.format(labels=f"{labels}-first{n}", manifest=train, run=run)
    pipe.write_text(text.replace("shard_size: 5000}", f"shard_size: 5000, limit: {n}}}"))
    if not (run / "cache").exists() and (full_run / "cache").exists():
        shutil.copytree(full_run / "cache", run / "cache")
    secs, out = curate("run", str(pipe), "-q")
    print(f"\n[{labels}] curate run (first {n:,} items): {secs:.0f} s\n{out}", flush=True)
    return run


if __name__ == "__main__":
    main()
