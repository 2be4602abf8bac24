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
   estimated Jaccard decides (``verify``). Writes the verified edges and their rows' signatures.
E. **clusters** (driver): union-find over the verified edges only, the representative of each
   cluster (``keep``) from the keep scores of the rows in clusters, the Jaccard of each member to its
   representative; one small file per shard with the rows of that shard that are in a cluster.
F. **assemble** (one task per map shard): the stage's output shard, rows outside clusters filled in.

Driver memory: the shard row counts, and for the rows that have a verified near duplicate (not the
others) their edges, ids, keep scores and signatures: about 0.6 KB per such row at ``num_perm=128``.
On the 1M-row benchmark (10% planted copies) that is 180k rows; datasets where every row has a near
duplicate still hold them all, and a distributed connected-components step (label propagation over
the edge partitions) would be the next step for those. The results are identical to the local
reduce (same buckets, pairs, estimates, components and representatives; ``tests/test_ray_dedup.py``).
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from curate import storage
from curate.dedup.keep import SCORE_COLUMN, representatives, short_id
from curate.dedup.lsh import band_key, banding, bucket_pairs
from curate.dedup.unionfind import components
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
    storage.write_table(pa.table({"a": pa_[ok], "b": pb[ok], "sim": sim[ok]}),
                        storage.join(job.work, "D", f"{q:05d}.parquet"), compression="lz4")
    nodes = np.concatenate([pa_[ok], pb[ok]])
    node_sig = np.concatenate([sig[left][ok], sig[right][ok]])
    nodes, at = np.unique(nodes, return_index=True)
    storage.write_table(pa.table({"row": nodes, "signature": pa.FixedSizeListArray.from_arrays(
        pa.array(node_sig[at].reshape(-1), pa.uint32()), k)}), storage.join(job.work, "Dn", f"{q:05d}.parquet"),
        compression="lz4")
    return {"candidates": int(len(sim)), "verified": int(ok.sum())}


def _read_all(job: ReduceJob, phase: str) -> pa.Table | None:
    folder = storage.join(job.work, phase)
    tables = [storage.read_table(f) for f in sorted(folder.glob("*.parquet"))] if folder.is_dir() else []
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else None


def _clusters(job: ReduceJob, k: int) -> dict:
    """Phase E on the driver: components of the verified edges, representatives, per-shard files."""
    edges = _read_all(job, "D")
    if edges is None:
        return {"clusters": 0, "near_duplicates": 0, "largest_cluster": 1 if job.offsets[-1] else 0}
    a, b = edges.column("a").to_numpy(), edges.column("b").to_numpy()
    nodes = np.unique(np.concatenate([a, b]))  # sorted: the smallest compact index is the smallest row
    labels = components(len(nodes), np.searchsorted(nodes, a), np.searchsorted(nodes, b))
    shard = job.shard_of(nodes)
    scores = np.empty(len(nodes), dtype=np.float64)
    ids = np.empty(len(nodes), dtype=object)
    for s in np.unique(shard).tolist():
        t = _map_shard(job, s, ["id", SCORE_COLUMN])
        local = nodes[shard == s] - job.offsets[s]
        scores[shard == s] = t.column(SCORE_COLUMN).to_numpy(zero_copy_only=False).astype(np.float64)[local]
        ids[shard == s] = np.asarray(t.column("id").to_pylist(), dtype=object)[local]
    rep = representatives(labels, scores)
    sizes = np.bincount(labels, minlength=len(nodes))[labels]
    sigs = _read_all(job, "Dn")
    srow = sigs.column("row").to_numpy()
    ssig = _signatures(sigs, k)
    order = np.argsort(srow, kind="stable")
    srow, ssig = srow[order], ssig[order]
    first = np.ones(len(srow), dtype=bool)
    first[1:] = srow[1:] != srow[:-1]
    srow, ssig = srow[first], ssig[first]
    node_sig = ssig[np.searchsorted(srow, nodes)]
    members = np.flatnonzero(rep != np.arange(len(nodes)))
    jac = np.full(len(nodes), np.nan, dtype=np.float32)
    jac[members] = np.mean(node_sig[members] == node_sig[rep[members]], axis=1)
    detail = np.full(len(nodes), None, dtype=object)
    for i in members.tolist():
        detail[i] = f"near-duplicate of {short_id(ids[rep[i]])} (Jaccard {jac[i]:.2f})"
    info = pa.table({"row": nodes, "cluster_id": pa.array(ids[rep].tolist(), pa.string()),
                     "cluster_size": sizes.astype(np.int32), "is_representative": rep == np.arange(len(nodes)),
                     "jaccard": pa.array(jac, pa.float32(), mask=np.isnan(jac)),
                     "detail": pa.array(detail.tolist(), pa.string())})
    write_partitions(info, shard, storage.join(job.work, "E"), 0)
    multi = (rep == np.arange(len(nodes))) & (sizes > 1)
    return {"clusters": int(multi.sum()), "near_duplicates": int(len(members)), "largest_cluster": int(sizes.max())}


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
    clusters = _clusters(job, k)
    list(run(_assemble_task, [(job, s) for s in range(S)], desc=f"{stage.name} (write)", total_rows=job.offsets[-1]))
    stage.summary.update({"bands": bands, "rows": rows, "lsh_indexed_rows": indexed,
                          "candidate_pairs": sum(r["candidates"] for r in verified),
                          "verified_pairs": sum(r["verified"] for r in verified),
                          **clusters, "empty_texts": empty})
    log.info("%s: %d large buckets, %d candidate pairs, %d verified", stage.name, large,
             stage.summary["candidate_pairs"], stage.summary["verified_pairs"])
