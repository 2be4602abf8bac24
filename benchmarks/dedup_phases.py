"""CPU seconds per row of each step of ``minhash_dedup`` with the distributed scheme, for scaling on paper.

Runs ``curate run`` in-process with one worker (every task inline, so ``time.process_time`` sees all
the work) on ``--rows`` rows built as in the dedup_speed benchmark (10% planted near duplicates), with the distributed
reduce switched on for the local executor, and prints CPU time and the bytes written per step
(the shuffle volume). Also the same run with the driver-side reduce, for comparison.

    nice -n 10 python benchmarks/dedup_phases.py --rows 200000
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pyarrow.parquet as pq

from _common import machine


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--workdir", default="/tmp/curate-dedup-phases")
    args = ap.parse_args()
    from curate import storage
    from curate.config import load_pipeline
    from curate.executors.local import LocalExecutor
    from curate.rundir import RunDir
    from curate.runner import Runner
    from curate.shards import read_stage

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = work / "rows.parquet"
    import numpy as np
    import pyarrow as pa

    from dedup_speed import build_rows, edited_pairs, reviews

    rng = np.random.default_rng(0)
    texts = reviews()
    edited_pairs(texts[:1000], rng)  # dedup_speed's draws, so the rows are its rows at this size
    rows, _, _ = build_rows(texts, args.rows, rng)
    pq.write_table(pa.table({"text": rows, "key": list(range(len(rows)))}), data, row_group_size=50_000)
    print(f"machine: {machine()}; {args.rows:,} rows; load average {os.getloadavg()[0]:.1f}")
    steps: list[tuple[str, float, float, int]] = []
    real_map = LocalExecutor.map_unordered
    dist_dir = {}

    def timed(self, fn, tasks, *, desc, **kw):
        c0, t0 = time.process_time(), time.perf_counter()
        before = folder_bytes(dist_dir["path"]) if "path" in dist_dir else 0
        out = list(real_map(self, fn, tasks, desc=desc, **kw))
        after = folder_bytes(dist_dir["path"]) if "path" in dist_dir else 0
        steps.append((desc, time.process_time() - c0, time.perf_counter() - t0, after - before))
        return iter(out)

    LocalExecutor.map_unordered = timed
    outputs = {}
    for mode in ("driver reduce", "distributed reduce"):
        LocalExecutor.distributed_reduce = mode == "distributed reduce"
        out = work / mode.replace(" ", "-")
        dist_dir["path"] = out / "stages" / "00-minhash_dedup" / "_map" / "_dist"
        pipe = work / "pipeline.yaml"
        pipe.write_text(f"name: phases\ninput: {{format: parquet, path: {data}, shard_size: 20000}}\n"
                        f"output: {out}\nworkers: 1\nstages:\n  - minhash_dedup: {{field: text}}\n")
        steps.clear()
        c0, t0 = time.process_time(), time.perf_counter()
        m = Runner(load_pipeline(pipe), force=True, quiet=True).execute()
        total_cpu, total_wall = time.process_time() - c0, time.perf_counter() - t0
        stage_cpu = sum(c for d, c, _, _ in steps if not d.startswith("ingest"))
        print(f"\n{mode}: whole run {total_wall:.1f} s wall, {total_cpu:.1f} s CPU; ingest {m.input.seconds:.1f} s; "
              f"stage {m.stages[0].seconds:.1f} s wall; summary {m.stages[0].summary}")
        print(f"  {'step':32s} {'CPU s':>7s} {'us/row':>7s} {'wall s':>7s} {'written MB':>10s}")
        for desc, cpu, wall, written in steps:
            print(f"  {desc:32s} {cpu:7.2f} {cpu / args.rows * 1e6:7.1f} {wall:7.2f} {written / 1e6:10.1f}")
        print(f"  {'driver (reduce / clusters)':32s} {total_cpu - sum(c for _, c, _, _ in steps):7.2f} "
              f"{(total_cpu - sum(c for _, c, _, _ in steps)) / args.rows * 1e6:7.1f}")
        print(f"  stage CPU in tasks: {stage_cpu / args.rows * 1e6:.1f} us/row")
        outputs[mode] = (read_stage(RunDir(out), m.stages[0].dir), m.stages[0].summary)
        storage.rmtree(out)
    same = outputs["driver reduce"][0].equals(outputs["distributed reduce"][0])
    print(f"\ndistributed reduce gives the driver reduce's output shards: {same}; same summary: "
          f"{outputs['driver reduce'][1] == outputs['distributed reduce'][1]}")


if __name__ == "__main__":
    main()
