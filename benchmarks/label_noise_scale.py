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


def untimed(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k not in TIMINGS}
    if "rounds" in out:
        out["rounds"] = [{k: v for k, v in r.items() if k != "seconds"} for r in out["rounds"]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--flips", type=float, default=0.1)
    ap.add_argument("--shards", type=int, default=20)
    ap.add_argument("--arms", default="local,distributed")
    ap.add_argument("--work", type=Path, default=Path("/work/scratch/h15/label_noise_scale"))
    ap.add_argument("--keep-data", action="store_true", help="reuse the map shards of an earlier run")
    args = ap.parse_args()
    params = {"features": "emb", "classifier": "logistic"}
    t0 = time.perf_counter()
    flipped = planted_shards(args, lambda folder: make_shards(args.rows, args.dim, args.classes, args.flips,
                                                              args.shards, folder))
    print(f"{args.rows:,} x {args.dim} features, {args.classes} classes, {len(flipped):,} flipped labels, "
          f"{args.shards} shards: {time.perf_counter() - t0:.1f} s; {machine()}", flush=True)
    planted = np.zeros(args.rows, dtype=bool)
    planted[flipped] = True
    results = {}
    for arm in args.arms.split(","):
        load_before = load()
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
              f"recall {r['recall']:.4f}  C {s.get('logistic_c')}  load {r['load'][0]:.1f}-{r['load'][1]:.1f}",
              flush=True)
    for f in sorted(args.work.glob("*.json")):
        results.setdefault(f.stem, json.loads(f.read_text()))
    arms = list(results)
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
