"""embedding_dedup's reduce on random 512-d embeddings with planted copies: driver vs distributed.

The embeddings are random unit vectors (``--rows``, default 100,000, ``--dim`` 512), stored as float16
in the map shards, generated shard by shard (``--shards`` 20), each with a random 64-bit phash. In each
shard the last 12% of the rows are planted rows made from random rows of the previous shard plus
Gaussian noise: ``close`` copies (5%: cosine 0.98-0.995, above ``accept_similarity`` 0.9, whatever
their hash), ``edited`` copies (5%: cosine 0.75-0.88 with the source's hash and 0-12 of its bits
flipped: the phash check accepts them) and ``look-alikes`` (2%: cosine 0.75-0.88 with 28-36 bits
flipped: the phash check must reject them). Each arm runs only the reduce (``_reduce_scale.py``) with
the stage's defaults (``k`` 10, ``min_similarity`` 0.6, ``min_margin`` 0.05, ``max_distance`` 18) and
``search: exact`` (what ``auto`` is below 200,000 rows): ``local`` (every embedding on the driver) and
``distributed`` (kNN by index shards, verification, components and clusters as shard tasks on the
local executor, 2 workers), optionally ``ray``. Recall: close and edited copies in their source's
cluster; merged look-alikes: look-alikes in their source's cluster. The arms' output shards are
compared column by column.

    flock /tmp/team/heavy.lock nice -n 5 python benchmarks/embedding_dedup_scale.py [--arms local,distributed]
        [--rows N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402
from _reduce_scale import compare_arms, planted_shards, read_column  # noqa: E402
from semantic_scale import _base  # noqa: E402

KINDS = (("close", 0.05, (0.98, 0.995), (0, 64)), ("edited", 0.05, (0.75, 0.88), (0, 12)),
         ("look-alike", 0.02, (0.75, 0.88), (28, 36)))  # (kind, share of a shard, cosine, bits flipped)


def _hashes(shard: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 7, shard]).integers(0, 2, size=(n, 64), dtype=np.uint8)


def make_shards(rows: int, dim: int, shards: int, out: Path, seed: int = 0) -> np.ndarray:
    """Write the map shards one at a time; returns the planted ``(source row, copy row, kind)`` triples."""
    import pyarrow as pa

    from curate.rundir import shard_name
    from curate.storage import write_table

    out.mkdir(parents=True, exist_ok=True)
    per = rows // shards
    sizes = [int(per * share) for _, share, _, _ in KINDS]
    n_base = per - sum(sizes)
    planted = []
    for s in range(shards):
        prev = (s - 1) % shards
        rng = np.random.default_rng([seed, shards + s])
        src_x, src_h = _base(prev, n_base, dim, seed), _hashes(prev, n_base, seed)
        xs, hs, at = [_base(s, n_base, dim, seed)], [_hashes(s, n_base, seed)], n_base
        for kind, (name, _, (lo, hi), (flip_lo, flip_hi)) in enumerate(KINDS):
            m = sizes[kind]
            src = rng.choice(n_base, size=m, replace=False)
            cos = rng.uniform(lo, hi, size=(m, 1))
            sigma = np.sqrt((1 / cos ** 2 - 1) / dim).astype(np.float32)  # cosine = 1 / sqrt(1 + dim sigma^2)
            xs.append(src_x[src] + sigma * rng.standard_normal((m, dim), dtype=np.float32))
            h = src_h[src].copy()
            if name == "close":
                h = rng.integers(0, 2, size=h.shape, dtype=np.uint8)  # any hash: the cosine accepts them
            else:
                for r in h:
                    r[rng.choice(64, size=int(rng.integers(flip_lo, flip_hi + 1)), replace=False)] ^= 1
            hs.append(h)
            planted.append(np.stack([prev * per + src, s * per + at + np.arange(m), np.full(m, kind)], axis=1))
            at += m
        x = np.concatenate(xs).astype(np.float16)
        hexes = [b.tobytes().hex() for b in np.packbits(np.concatenate(hs), axis=1)]
        emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dim)
        write_table(pa.table({"id": [f"v{s:03d}-{i:06d}" for i in range(per)], "embedding": emb,
                              "image_hash": pa.array(hexes, pa.string()), "keep_score": np.zeros(per)}),
                    out / shard_name(s))
    return np.concatenate(planted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--shards", type=int, default=20)
    ap.add_argument("--arms", default="local,distributed")
    ap.add_argument("--work", type=Path, default=Path("/work/scratch/h15b/embedding_dedup_scale"))
    ap.add_argument("--keep-data", action="store_true", help="reuse the map shards of an earlier run")
    args = ap.parse_args()
    params = {"search": "exact"}
    t0 = time.perf_counter()
    planted = planted_shards(args, lambda folder: make_shards(args.rows, args.dim, args.shards, folder))
    found = planted[planted[:, 2] < 2]
    print(f"{args.rows:,} x {args.dim} embeddings ({len(found):,} planted copies, {len(planted) - len(found):,} "
          f"look-alikes) in {args.shards} shards: {time.perf_counter() - t0:.1f} s; {machine()}", flush=True)
    describe = lambda s: (f"flagged {s['near_duplicates']:,}  candidates {s['candidate_pairs']:,}  "  # noqa: E731
                          f"verified {s['verified_pairs']:,}")
    results = compare_arms(args, "embedding_dedup", params, args.work / "map", found, describe,
                           "embedding_dedup_scale.json")
    alike = planted[planted[:, 2] == 2]
    for arm in results:
        cluster = np.asarray(read_column(args.work / arm, args.shards, "cluster_id"), dtype=object)
        merged = np.mean(cluster[alike[:, 0]] == cluster[alike[:, 1]])
        print(f"{arm}: look-alikes merged with their source {merged:.4f}")


if __name__ == "__main__":
    main()
