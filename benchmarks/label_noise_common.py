"""Shared helpers of the label_noise benchmarks: data paths, validated errors, running the stage, metrics.

Not a benchmark itself. The benchmarks read ../shared/data (beside the repository) and exit with a
message where it is absent.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CACHE = Path(__file__).resolve().parent / ".cache"


def shared_data() -> Path:
    if not SHARED.is_dir():
        sys.exit(f"shared evaluation data not found at {SHARED}; these benchmarks need it")
    return SHARED


def cache_dir() -> Path:
    """benchmarks/.cache, ignored by git (it carries its own .gitignore)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    return CACHE


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{os.getloadavg()[0]:.1f} load average at start")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def validated_errors(name: str) -> tuple[set, set]:
    """(human-checked candidate indices, validated error indices) of a label-errors test set.

    An index is a validated error iff fewer than 3 of 5 workers chose the given label (the paper's rule).
    ``name`` is mnist, cifar10 or imdb; IMDB ids are mapped to test-set indices.
    """
    le = shared_data() / "label-errors"
    items = json.loads((le / "mturk" / f"{name}_mturk.json").read_text())
    if name == "imdb":
        files = json.loads((le / "dataset_indexing" / "imdb_test_set_index_to_filename.json").read_text())
        index = {"test/" + f[:-4]: i for i, f in enumerate(files)}
        key = lambda it: index[it["id"]]  # noqa: E731
    else:
        key = lambda it: int(it["id"])  # noqa: E731
    candidates = {key(it) for it in items}
    validated = {key(it) for it in items if it["mturk"]["given"] < 3}
    return candidates, validated


def run_stage(table: pa.Table, shard_size: int = 1000, **params) -> tuple[pa.Table, dict, dict]:
    """Run the label_noise stage (its map per shard, then its reduce) on an in-memory table.

    ``table`` has ``id`` and the columns the stage reads. Returns the result table (row-aligned), the
    stage's summary and timings. This is the stage's own code path without the run directory.
    """
    from curate.stages.base import StageContext
    from curate.stages.label_noise import LabelNoise

    stage = LabelNoise(LabelNoise.Params.model_validate(params), StageContext(stage_index=0, cache_dir=CACHE))
    t0 = time.perf_counter()
    cols = ["id", *stage.input_columns()]
    for name, typ in (("image", pa.binary()), ("text", pa.string())):  # record columns a dataset may leave empty
        if name in cols and name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, typ))
    maps = [stage.map(table.slice(i, shard_size).select(cols)) for i in range(0, table.num_rows, shard_size)]
    mapped = pa.concat_tables(maps)
    t1 = time.perf_counter()
    result = stage.reduce(mapped)
    t2 = time.perf_counter()
    return result, stage.summary, {"map_s": t1 - t0, "reduce_s": t2 - t1}


def report(title: str, quality: np.ndarray, flagged: np.ndarray, candidates: set, validated: set,
           ks=(100, 250, 500, 1000)) -> dict:
    """Print and return the validated-error figures for one method."""
    flagged_idx = set(np.flatnonzero(flagged).tolist())
    hit = flagged_idx & validated
    checked = flagged_idx & candidates
    prec_checked = len(hit) / len(checked) if checked else float("nan")
    order = np.argsort(quality, kind="stable")
    out = {"flagged": len(flagged_idx), "validated_found": len(hit), "validated_total": len(validated),
           "recall": len(hit) / len(validated), "flagged_checked": len(checked), "precision_checked": prec_checked,
           "precision_lower_bound": len(hit) / max(1, len(flagged_idx))}
    line = (f"{title}: flagged {len(flagged_idx)}, validated errors among them {len(hit)}/{len(validated)} "
            f"(recall {out['recall']:.3f}); human-checked among flagged {len(checked)}, of which validated "
            f"{len(hit)} (precision {prec_checked:.3f}); precision counting unchecked as clean {out['precision_lower_bound']:.3f}")
    print(line)
    tops = []
    for k in ks:
        found = len(set(order[:k].tolist()) & validated)
        out[f"recall_at_{k}"] = found / len(validated)
        tops.append(f"top-{k}: {found} ({found / len(validated):.3f})")
    if tops:
        print("    ranked by label quality, validated errors in " + ", ".join(tops))
    return out
