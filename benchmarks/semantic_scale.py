"""semantic_dedup's reduce on 1,000,000 random 512-d embeddings with planted copies: driver vs distributed.

The embeddings are random unit vectors (``--rows``, default 1,000,000, ``--dim`` 512), stored as
float16 in the map shards (1 GB instead of 2; the reduce works in float32), generated shard by shard
(50 shards of 20,000). In each shard the last ``--copies`` (default 10%) rows are planted copies of
rows of the previous shard plus Gaussian noise (cosine 0.984-0.999 to their source, all above the
default ``1 - eps = 0.95``). Each arm runs only the reduce (``_reduce_scale.py``) with the stage's
defaults (``clusters: auto`` = 1,000, ``kmeans_sample`` 100,000, ``keep: first``): ``local`` (every
embedding on the driver) and ``distributed`` (k-means on the sample on the driver, assignment and the
per-cluster comparisons as shard tasks on the local executor, 2 workers), optionally ``ray``. Recall:
planted copies in their source's duplicate cluster. The arms' output shards are compared column by column.

    flock /tmp/team/heavy.lock nice -n 5 python benchmarks/semantic_scale.py [--arms local,distributed] [--rows N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402
from _reduce_scale import compare_arms, planted_shards  # noqa: E402


def _base(shard: int, n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng([seed, shard]).standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_shards(rows: int, dim: int, copy_share: float, shards: int, out: Path, seed: int = 0) -> np.ndarray:
    """Write the map shards one at a time; returns the planted ``(source row, copy row)`` pairs."""
    import pyarrow as pa

    from curate.rundir import shard_name
    from curate.storage import write_table

    out.mkdir(parents=True, exist_ok=True)
    per = rows // shards
    n_copies = int(per * copy_share)
    n_base = per - n_copies
    pairs = []
    for s in range(shards):
        prev = (s - 1) % shards
        rng = np.random.default_rng([seed, shards + s])
        src = rng.choice(n_base, size=n_copies, replace=False)
        sigma = rng.uniform(0.002, 0.008, size=(n_copies, 1)).astype(np.float32)
        copies = _base(prev, n_base, dim, seed)[src] + sigma * rng.standard_normal((n_copies, dim), dtype=np.float32)
        x = np.concatenate([_base(s, n_base, dim, seed), copies]).astype(np.float16)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dim)
        write_table(pa.table({"id": [f"v{s:03d}-{i:06d}" for i in range(per)], "embedding": emb}), out / shard_name(s))
        pairs.append(np.stack([prev * per + src, s * per + n_base + np.arange(n_copies)], axis=1))
    return np.concatenate(pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--copies", type=float, default=0.1)
    ap.add_argument("--shards", type=int, default=50)
    ap.add_argument("--arms", default="local,distributed")
    ap.add_argument("--work", type=Path, default=Path("/work/scratch/h15b/semantic_scale"))
    ap.add_argument("--keep-data", action="store_true", help="reuse the map shards of an earlier run")
    args = ap.parse_args()
    params = {"column": "embedding"}
    map_dir = args.work / "map"
    t0 = time.perf_counter()
    planted = planted_shards(args, lambda folder: make_shards(args.rows, args.dim, args.copies, args.shards, folder))
    print(f"{args.rows:,} x {args.dim} embeddings ({len(planted):,} planted copies) in {args.shards} shards: "
          f"{time.perf_counter() - t0:.1f} s; {machine()}", flush=True)
    describe = lambda s: (f"flagged {s['duplicates']:,}  k-means clusters {s['kmeans_clusters']:,} "  # noqa: E731
                          f"(largest {s['largest_kmeans_cluster']:,})")
    compare_arms(args, "semantic_dedup", params, map_dir, planted, describe, "semantic_scale.json")


if __name__ == "__main__":
    main()
