"""Text-manifest ingest: CPU per row of planning (driver) and of building shards (workers), per format.

The first ``--rows`` rows of the dedup benchmark's 1M IMDB-derived rows (``dedup_speed.py`` builds
them; its ``rows.parquet`` is reused when present) written as Parquet, JSONL and CSV. For each format:
the driver's planning (``reader.tasks()``), then every task built both ways in this process: the
vectorised path (``reader.build``: pyarrow, :mod:`curate.readers.columnar`) and the per-row path
(``build_shard(reader.read(task))``), whose shards must be equal. CPU time (``time.process_time``), so
other jobs on a shared machine change the figures little.

    python benchmarks/ingest_text.py [--rows 100000] [--parquet /tmp/curate-dedup-bench/rows.parquet]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from _common import machine


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--parquet", default="/tmp/curate-dedup-bench/rows.parquet")
    ap.add_argument("--workdir", default="/tmp/curate-ingest-text")
    args = ap.parse_args()
    from curate.config import InputConfig
    from curate.readers import build_shard, make_reader

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = Path(args.parquet)
    if not src.exists():
        raise SystemExit(f"{src} not found: run benchmarks/dedup_speed.py --skip-sample --skip-1m-throughput first")
    table = pq.ParquetFile(src).read_row_groups([0, 1]).slice(0, args.rows)
    pq.write_table(table, work / "rows.parquet", row_group_size=20_000)
    with open(work / "rows.jsonl", "w") as f:
        for row in table.to_pylist():
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    pcsv.write_csv(table, work / "rows.csv")
    n = table.num_rows
    print(f"machine: {machine()}; {n:,} rows ({table.column('text').nbytes / n:.0f} bytes of text each); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'format':8s} {'plan us/row':>12s} {'vectorised us/row':>18s} {'per-row us/row':>15s} "
          f"{'vectorised tasks':>17s} {'same shards':>12s}")
    for fmt in ("parquet", "jsonl", "csv"):
        reader = make_reader(InputConfig(format=fmt, path=str(work / f"rows.{fmt}"), shard_size=20_000))
        c0 = time.process_time()
        tasks = list(reader.tasks())
        plan = time.process_time() - c0
        reader.build(tasks[0]), build_shard(reader.read(tasks[0]), limits=reader.limits)  # warm up (imports, kernels)
        fast_cpu = slow_cpu = 0.0
        same, vectorised = True, 0
        for t in tasks:
            c0 = time.process_time()
            fast = reader.build(t)
            c1 = time.process_time()
            slow = build_shard(reader.read(t), limits=reader.limits)
            c2 = time.process_time()
            fast_cpu, slow_cpu = fast_cpu + c1 - c0, slow_cpu + c2 - c1
            vectorised += reader._columnar(t) is not None
            same &= fast.records.equals(slow.records) and fast.quarantine.equals(slow.quarantine)
        print(f"{fmt:8s} {plan / n * 1e6:12.2f} {fast_cpu / n * 1e6:18.2f} {slow_cpu / n * 1e6:15.2f} "
              f"{vectorised:>8d} of {len(tasks):<6d} {str(same):>12s}")


if __name__ == "__main__":
    pa.set_cpu_count(1)
    main()
