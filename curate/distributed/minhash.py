"""``minhash_dedup``'s reduce as shard tasks: band keys as shuffle keys, verification in the reducers.

Phases (``S`` map shards, ``P`` partitions; every arrow is a hash-partitioned file exchange,
:mod:`curate.distributed.shuffle`):

A. **bands** (one task per map shard): the 64-bit key of every band of every row
   (:func:`curate.dedup.lsh.band_key`), sent to partition ``hash(key)`` as ``(band, key, row)``:
   24 bytes per row and band.
B. **buckets** (one task per partition): rows with equal ``(band, key)`` form a bucket; buckets of up
   to 64 rows give all their pairs, larger ones sorted-neighbourhood pairs
   (:func:`curate.dedup.lsh.bucket_pairs`, reading the few signatures it needs from the map shards).
   Each candidate pair asks both its rows' shards for their signatures: ``(row, a, b)`` to the shard
   of ``row``.
C. **fetch** (one task per map shard): answers the requests from its own signatures, sending
   ``(a, b, side, signature)`` to partition ``hash(a, b)``: 0.5 KB per candidate pair end.
D. **verify** (one task per partition): both signatures of each candidate pair meet here; the
   estimated Jaccard decides (``verify``). Writes the verified edges ``(a, b)``.
E. **components and clusters** (:mod:`curate.distributed.components`): connected components of the
   verified edges in large-star/small-star rounds (one union-find task when the edges fit one task),
   then each component meets in one task with its rows' ids, keep scores and signatures: the
   representative (``keep``), the Jaccard of each member to it, one small file per map shard.
F. **assemble** (one task per map shard): the stage's output shard, rows outside clusters filled in.

Driver memory: the shard row counts and a few counters per task; no edge, signature or id. The
results are identical to the local reduce (same buckets, pairs, estimates, components and
representatives; ``tests/test_ray_dedup.py``).
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from curate import storage
from curate.dedup.keep import short_id
from curate.dedup.lsh import band_key, banding, bucket_pairs
from curate.distributed.components import clusters, connected_components, labels_dir, partitions_for
from curate.distributed.shuffle import ReduceJob, partition_of, read_partition, write_cluster_shard, write_partitions
from curate.rundir import shard_name

log = logging.getLogger(__name__)


def _signatures(table: pa.Table, k: int) -> np.ndarray:
    col = table.column("signature").combine_chunks()
    return col.flatten().to_numpy().reshape(len(col), k) if len(col) else np.zeros((0, k), np.uint32)


def _map_shard(job: ReduceJob, s: int, columns: list[str]) -> pa.Table:
    return storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=columns)


class _ShardSignatures:
    """``sig[rows]`` for global rows, read from the map shards on demand (large buckets only)."""

    def __init__(self, job: ReduceJob, k: int):
        self.job, self.k, self.cache = job, k, {}

    def __getitem__(self, rows):
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.k), dtype=np.uint32)
        shards = self.job.shard_of(rows)
        for s in np.unique(shards).tolist():
            if s not in self.cache:
                self.cache[s] = _signatures(_map_shard(self.job, s, ["signature"]), self.k)
            sel = shards == s
            out[sel] = self.cache[s][rows[sel] - self.job.offsets[s]]
        return out


def _bands_task(arg) -> dict:
    job, s, bands, rows, k = arg
    t = _map_shard(job, s, ["signature", "shingles"])
    n = t.num_rows
    valid = np.flatnonzero(t.column("shingles").to_numpy(zero_copy_only=False) > 0)
    sig = _signatures(t, k)
    keys = np.concatenate([band_key(sig, valid, b, rows) for b in range(bands)]) if len(valid) else np.zeros(0, np.uint64)
    band = np.repeat(np.arange(bands, dtype=np.int16), len(valid))
    row = np.tile(valid + job.offsets[s], bands)
    table = pa.table({"band": band, "key": keys, "row": row})
    write_partitions(table, partition_of(keys, partitions=job.partitions), storage.join(job.work, "A"), s)
    return {"rows": n, "empty": int(n - len(valid))}


def _buckets_task(arg) -> dict:
    job, p, bands, k = arg
    t = read_partition(storage.join(job.work, "A"), p)
    if t is None:
        return {"large": 0}
    band = t.column("band").to_numpy()
    keys = t.column("key").to_numpy()
    rows = t.column("row").to_numpy()
    sig = _ShardSignatures(job, k)
    parts, large = [], 0
    for b in range(bands):
        sel = band == b
        pairs, lg = bucket_pairs(keys[sel], rows[sel], sig)
        parts.append(pairs)
        large += lg
    pairs = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    a, b = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    uniq = np.unique(np.stack([a, b], axis=1), axis=0) if len(a) else np.zeros((0, 2), np.int64)
    a, b = uniq[:, 0], uniq[:, 1]
    x = np.concatenate([a, b])
    requests = pa.table({"x": x, "a": np.concatenate([a, a]), "b": np.concatenate([b, b])})
    write_partitions(requests, job.shard_of(x), storage.join(job.work, "B"), p)
    return {"large": large}


def _fetch_task(arg) -> dict:
    job, s, k = arg
    req = read_partition(storage.join(job.work, "B"), s)
    if req is None:
        return {"indexed": 0}
    x = req.column("x").to_numpy()
    a, b = req.column("a").to_numpy(), req.column("b").to_numpy()
    sig = _signatures(_map_shard(job, s, ["signature"]), k)
    mine = sig[x - job.offsets[s]]
    out = pa.table({"a": a, "b": b, "side": x == b,
                    "signature": pa.FixedSizeListArray.from_arrays(pa.array(mine.reshape(-1), pa.uint32()), k)})
    write_partitions(out, partition_of(a, b, partitions=job.partitions), storage.join(job.work, "C"), s)
    return {"indexed": int(len(np.unique(x)))}


def _verify_task(arg) -> dict:
    job, q, k, threshold, verify = arg
    t = read_partition(storage.join(job.work, "C"), q)
    if t is None:
        return {"candidates": 0, "verified": 0}
    a, b = t.column("a").to_numpy(), t.column("b").to_numpy()
    side = t.column("side").to_numpy(zero_copy_only=False).astype(np.int64)
    sig = _signatures(t, k)
    key = np.stack([a, b, side], axis=1)
    _, first = np.unique(key, axis=0, return_index=True)  # the same pair may come from several bands
    first = first[np.lexsort((side[first], b[first], a[first]))]
    a, b, side, sig = a[first], b[first], side[first], sig[first]
    left, right = side == 0, side == 1  # sorted by (a, b, side): each pair's two ends are adjacent
    sim = np.mean(sig[left] == sig[right], axis=1).astype(np.float32)
    pa_, pb = a[left], b[left]
    ok = sim >= threshold if verify else np.ones(len(sim), dtype=bool)
    edges = pa.table({"a": pa_[ok], "b": pb[ok]})
    write_partitions(edges, np.full(edges.num_rows, q, dtype=np.int64), storage.join(job.work, "D"), q)
    return {"candidates": int(len(sim)), "verified": int(ok.sum())}


def _describe(t: pa.Table, rep: np.ndarray) -> tuple[list, dict]:
    """Members' details and Jaccard estimates to their representatives (for :func:`components.clusters`)."""
    sig = _signatures(t, t.schema.field("signature").type.list_size)
    ids = t.column("id").to_pylist()
    members = np.flatnonzero(rep != np.arange(len(rep)))
    jac = np.full(len(rep), np.nan, dtype=np.float32)
    jac[members] = np.mean(sig[members] == sig[rep[members]], axis=1)
    detail: list = [None] * len(rep)
    for i in members.tolist():
        detail[i] = f"near-duplicate of {short_id(ids[rep[i]])} (Jaccard {jac[i]:.2f})"
    return detail, {"jaccard": pa.array(jac, pa.float32(), mask=np.isnan(jac))}


def _assemble_task(arg) -> dict:
    job, s = arg
    t = _map_shard(job, s, ["id", "shingles"])
    info = read_partition(storage.join(job.work, "E"), s)
    jac = np.full(t.num_rows, np.nan, dtype=np.float32)
    if info is not None:
        jac[info.column("row").to_numpy() - job.offsets[s]] = info.column("jaccard").to_numpy(zero_copy_only=False)
    extra = {"jaccard": pa.array(jac, pa.float32(), mask=np.isnan(jac)), "shingles": t.column("shingles").cast(pa.int32())}
    return write_cluster_shard(job, s, t.column("id"), info, "near_duplicate", extra)


def reduce(stage, job: ReduceJob, executor) -> None:
    """Run phases A-F (module docstring) on ``executor`` and put the summary in ``stage.summary``."""
    p = stage.params
    k = p.num_perm
    bands, rows = banding(p.threshold, k, p.bands, p.rows, p.false_negative_weight)
    S, P = job.n_shards, job.partitions
    storage.rmtree(job.work)  # a half-finished earlier attempt: its partitions are rebuilt from the map shards
    run = executor.map_unordered
    empty = sum(r["empty"] for r in run(_bands_task, [(job, s, bands, rows, k) for s in range(S)],
                                        desc=f"{stage.name} (bands)", total_rows=job.offsets[-1]))
    large = sum(r["large"] for r in run(_buckets_task, [(job, q, bands, k) for q in range(P)],
                                        desc=f"{stage.name} (buckets)"))
    indexed = sum(r["indexed"] for r in run(_fetch_task, [(job, s, k) for s in range(S)],
                                            desc=f"{stage.name} (fetch)"))
    verified = list(run(_verify_task, [(job, q, k, p.threshold, p.verify) for q in range(P)],
                        desc=f"{stage.name} (verify)"))
    n_edges = sum(r["verified"] for r in verified)
    cc_work = storage.join(job.work, "cc")
    connected_components(executor, storage.join(job.work, "D"), cc_work, edge_partitions=P, offsets=job.offsets,
                         partitions=partitions_for(n_edges, most=P), desc=f"{stage.name} (components)")
    found = clusters(executor, job, labels_dir(cc_work), storage.join(job.work, "E"), describe=_describe,
                     columns=("signature",), desc=f"{stage.name} (clusters)")
    found["near_duplicates"] = found.pop("duplicates")
    list(run(_assemble_task, [(job, s) for s in range(S)], desc=f"{stage.name} (write)", total_rows=job.offsets[-1]))
    stage.summary.update({"bands": bands, "rows": rows, "lsh_indexed_rows": indexed,
                          "candidate_pairs": sum(r["candidates"] for r in verified),
                          "verified_pairs": sum(r["verified"] for r in verified),
                          **found, "empty_texts": empty})
    log.info("%s: %d large buckets, %d candidate pairs, %d verified", stage.name, large,
             stage.summary["candidate_pairs"], stage.summary["verified_pairs"])
