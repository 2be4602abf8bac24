"""label_noise with the shipped CIFAR-10 test pred_probs against the 54 human-validated label errors.

    nice -n 10 /work/venv/bin/python benchmarks/label_noise_cifar10_pred_probs.py

A check that the stage's cleanlab integration matches cleanlab's own numbers: the stage reads the
published out-of-sample probabilities (cleanlab/label-errors ``cifar10_test_set_pyx.npy``) through
``features: pred_probs:<column>``, and its flags are compared with ``cleanlab.filter.find_label_issues``
called directly on the same arrays, and both with the validated errors. Also runs the whole pipeline from
YAML on a Parquet manifest (images from the CIFAR-10 JPEGs, probabilities in a list column).
"""

from __future__ import annotations

import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from label_noise_common import machine, peak_rss_mb, report, run_stage, shared_data, validated_errors

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def main() -> None:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    print(f"machine: {machine()}")
    data = shared_data()
    le = data / "label-errors"
    pyx = np.load(le / "cross_validated_predicted_probabilities" / "cifar10_test_set_pyx.npy")
    labels = np.load(le / "original_test_labels" / "cifar10_test_set_original_labels.npy").astype(np.int64)
    candidates, validated = validated_errors("cifar10")
    print(f"CIFAR-10 test: {len(labels)} rows, pred_probs {pyx.shape}, {len(candidates)} checked, {len(validated)} validated errors")

    # 1. the stage on an in-memory table, string class names, probabilities as a list column
    table = pa.table({"id": [str(i) for i in range(len(labels))], "label": [NAMES[v] for v in labels],
                      "probs": pa.array(pyx.astype(np.float32).tolist(), pa.list_(pa.float32()))})
    t0 = time.perf_counter()
    res, summary, _ = run_stage(table, features="pred_probs:probs", classes=NAMES, min_examples_per_class=1)
    secs = time.perf_counter() - t0
    flagged = np.array([f is not None for f in res.column("flag").to_pylist()])
    quality = np.array(res.column("label_quality").to_pylist(), dtype=np.float64)
    ours = report("stage (pred_probs:)", quality, flagged, candidates, validated, ks=(54, 100, 200, 500))
    print(f"    stage {secs:.2f}s; summary: accuracy of the given probabilities {summary['heldout_accuracy']}, "
          f"estimated noise {summary['estimated_noise_rate']}, top confused {summary['confused_pairs'][:3]}")

    # 2. cleanlab called directly on the same probabilities (renormalised in float64)
    p = np.clip(pyx, 0, 1)
    p = p / p.sum(1, keepdims=True)
    t0 = time.perf_counter()
    direct = find_label_issues(labels, p, filter_by="prune_by_noise_rate")
    q_direct = get_label_quality_scores(labels, p)
    secs_direct = time.perf_counter() - t0
    theirs = report("cleanlab direct", q_direct, direct, candidates, validated, ks=(54, 100, 200, 500))
    same = int((direct == flagged).sum())
    print(f"    agreement: {same}/{len(labels)} rows get the same flag; identical sets: {bool((direct == flagged).all())}; "
          f"max |quality difference| {np.abs(q_direct - quality).max():.2e}; cleanlab direct {secs_direct:.2f}s")
    print(f"    ratio stage/direct: flagged x{ours['flagged'] / theirs['flagged']:.3f}, validated found "
          f"x{ours['validated_found'] / theirs['validated_found']:.3f}")

    # 3. the whole pipeline from YAML: Parquet manifest with image bytes, label and probability list
    index = [line.split(",") for line in (data / "cifar10-jpg" / "test_index.csv").read_text().splitlines()[1:]]
    with zipfile.ZipFile(data / "cifar10-jpg" / "test.zip") as z, tempfile.TemporaryDirectory() as tmp:
        paths = {int(r[0]): r[1] for r in index}
        images = [z.read(paths[i]) for i in range(len(labels))]
        manifest = Path(tmp) / "cifar10_test.parquet"
        pq.write_table(pa.table({"image": images, "label": [NAMES[v] for v in labels],
                                 "pyx": pa.array(pyx.tolist(), pa.list_(pa.float64()))}), manifest)
        doc = {"name": "cifar10_pyx", "input": {"format": "parquet", "path": str(manifest)}, "output": f"{tmp}/run",
               "workers": 2, "stages": [{"label_noise": {"features": "pred_probs:meta.pyx", "classes": NAMES,
                                                         "min_examples_per_class": 1}}]}
        (Path(tmp) / "p.yaml").write_text(yaml.safe_dump(doc))
        from curate.config import load_pipeline
        from curate.runner import Runner
        from curate.shards import read_records, read_stage

        t0 = time.perf_counter()
        runner = Runner(load_pipeline(Path(tmp) / "p.yaml"), quiet=True)
        m = runner.execute()
        secs_run = time.perf_counter() - t0
        rec = read_records(runner.run, ["id", "source"])
        ann = read_stage(runner.run, m.stages[0].dir, ["id", "flag"])
        row_of = {i: int(s.split(":row")[1]) for i, s in zip(rec["id"].to_pylist(), rec["source"].to_pylist())}
        run_flagged = np.zeros(len(labels), bool)
        for i, f in zip(ann["id"].to_pylist(), ann["flag"].to_pylist()):
            run_flagged[row_of[i]] = f is not None
        print(f"curate run (YAML, parquet manifest, 2 workers): {secs_run:.1f}s end to end incl. ingest of "
              f"{len(labels)} JPEGs; flags identical to cleanlab direct: {bool((run_flagged == direct).all())}")
    print(f"peak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
