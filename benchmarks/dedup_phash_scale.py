"""image_dedup's reduce on 500,000 perceptual hashes: driver reduce vs the distributed scheme.

The hashes are synthetic 64-bit phashes (``--rows``, default 500,000): random hashes, plus
``--copies`` (default 10%) planted near copies of random sources with 1 to 6 bits flipped (uniformly;
``max_distance: 6``). Hashing real images is the map step and is not what this measures: the map shards
(``id``, ``image_hash``, keep score) are written directly, in 50 shards, and each arm runs only the
reduce (see ``_reduce_scale.py``): ``local`` (all hashes on the driver) and ``distributed`` (block-key
shuffle, Hamming checks and components as shard tasks on the local executor, 2 workers), optionally
``ray``. Recall: planted copies that end in their source's cluster. The arms' output shards are
compared column by column.

    flock /tmp/team/heavy.lock nice -n 5 python benchmarks/dedup_phash_scale.py [--arms local,distributed] [--rows N]
    flock /tmp/team/heavy.lock nice -n 5 python benchmarks/dedup_phash_scale.py --arms ray --keep-data   # another arm, same data
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


def make_shards(rows: int, copy_share: float, shards: int, out: Path, seed: int = 0) -> np.ndarray:
    """Write the map shards; returns the planted ``(source row, copy row)`` pairs."""
    import pyarrow as pa

    from curate.distributed.compare import write_map_shards

    rng = np.random.default_rng(seed)
    n_copies = int(rows * copy_share)
    n_base = rows - n_copies
    bits = rng.integers(0, 2, size=(rows, 64), dtype=np.uint8)
    src = rng.choice(n_base, size=n_copies, replace=False)
    bits[n_base:] = bits[src]
    for i, flips in zip(range(n_base, rows), rng.integers(1, 7, size=n_copies).tolist()):
        bits[i, rng.choice(64, size=flips, replace=False)] ^= 1
    order = rng.permutation(rows)  # copies anywhere in the dataset
    where = np.empty(rows, dtype=np.int64)
    where[order] = np.arange(rows)
    bits = bits[order]
    flat = np.packbits(bits, axis=1).tobytes().hex()
    hexes = [flat[i:i + 16] for i in range(0, len(flat), 16)]
    area = rng.integers(64, 1024, size=rows).astype(np.float64) ** 2
    table = pa.table({"id": [f"img{i:07d}" for i in range(rows)], "image_hash": pa.array(hexes, pa.string()),
                      "keep_score": area})
    per = -(-rows // shards)
    write_map_shards(out, [table.slice(i * per, per) for i in range(shards)])
    return np.stack([where[src], where[n_base:]], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--copies", type=float, default=0.1)
    ap.add_argument("--shards", type=int, default=50)
    ap.add_argument("--arms", default="local,distributed")
    ap.add_argument("--work", type=Path, default=Path("/work/scratch/h15b/phash_scale"))
    ap.add_argument("--keep-data", action="store_true", help="reuse the map shards (and arms) of an earlier run")
    args = ap.parse_args()
    params = {"hash": "phash", "hash_size": 8, "max_distance": 6, "keep": "largest_image"}
    map_dir = args.work / "map"
    t0 = time.perf_counter()
    planted = planted_shards(args, lambda folder: make_shards(args.rows, args.copies, args.shards, folder))
    print(f"{args.rows:,} hashes ({len(planted):,} planted copies) in {args.shards} shards: "
          f"{time.perf_counter() - t0:.1f} s; {machine()}", flush=True)
    describe = lambda s: (f"candidates {s['block_candidates']:,}  pairs {s['close_pairs']:,}  "  # noqa: E731
                          f"flagged {s['near_duplicates']:,}")
    compare_arms(args, "image_dedup", params, map_dir, planted, describe, "dedup_phash_scale.json")


if __name__ == "__main__":
    main()
