"""``image_dedup``'s reduce as shard tasks: pigeonhole block keys as shuffle keys, Hamming checks in the reducers.

The local reduce (:func:`curate.dedup.phash.close_pairs`) splits the ``B`` hash bits into
``d + 1`` blocks (``d = max_distance``): two hashes at most ``d`` bits apart agree exactly on one block
at least. The same blocks are the shuffle keys here (``S`` map shards, ``P`` partitions):

A. **blocks** (one task per map shard): for each block ``j`` of each hashed row, the row goes to
   partition ``hash(j, block value)`` as ``(block, row, hash)``: ``(d + 1) * (10 + B/8)`` bytes per row
   (126 bytes for 64-bit hashes and ``d = 6``). Every group of equal block values lands whole in one
   partition.
B. **pairs** (one task per partition): within each group all pairs are compared (Hamming distance
   of the packed hashes, the local code's :func:`curate.dedup.phash.block_pairs`); pairs within ``d``
   bits go to partition ``hash(a, b)`` as ``(a, b, distance)``: 24 bytes per pair and block it was
   found in.
C. **edges** (one task per partition): a pair found in several blocks is kept once.
D-E. **components and clusters** (:mod:`curate.distributed.components`): connected components of the
   edges as shard tasks, the representative of each (``keep``), each member's Hamming distance to it.
F. **assemble** (one task per map shard): the stage's output shard.

Driver memory: shard row counts and a few counters per task; no hash, pair or edge. Work per partition: the block collisions that
fall in it (``7 N / 512`` per row for 64-bit hashes, ``d = 6``). Results are identical to the local
reduce: the same groups, candidate counts, pairs, components and representatives
(``tests/test_distributed_reduces.py``).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pyarrow as pa

from curate import storage
from curate.dedup.hashing import mix64
from curate.dedup.keep import short_id
from curate.dedup.phash import block_columns, block_key, block_pairs, hamming, packed_hashes
from curate.distributed.components import clusters, connected_components, labels_dir, partitions_for
from curate.distributed.shuffle import ReduceJob, partition_of, read_partition, write_cluster_shard, write_partitions
from curate.rundir import shard_name


def _hashes(table: pa.Table, column: str, nbytes: int) -> np.ndarray:
    """A fixed-size binary column of packed hashes as an ``(N, nbytes)`` uint8 matrix."""
    col = table.column(column).combine_chunks()
    if not len(col):
        return np.zeros((0, nbytes), np.uint8)
    data = np.frombuffer(col.buffers()[1], dtype=np.uint8)
    return data[col.offset * nbytes:(col.offset + len(col)) * nbytes].reshape(len(col), nbytes)


def _shuffle_key(sub: np.ndarray) -> np.ndarray:
    """A key that is equal for equal blocks in every process: the block's bits (up to 64), else a hash
    of them (a collision only puts two groups in one partition; groups are formed exactly in B)."""
    if sub.shape[1] <= 64:
        return block_key(sub)
    words = np.packbits(sub, axis=1)
    words = np.ascontiguousarray(np.pad(words, ((0, 0), (0, -words.shape[1] % 8)))).view("<u8")
    h = np.zeros(len(sub), dtype=np.uint64)
    for w in words.T:
        with np.errstate(over="ignore"):
            h = mix64(h * np.uint64(0x100000001B3) ^ w, inplace=True)
    return h


def _blocks_task(arg) -> dict:
    job, s, nbits, blocks = arg
    t = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["image_hash"])
    packed, valid = packed_hashes(t.column("image_hash").to_pylist(), (nbits + 7) // 8)
    idx = np.flatnonzero(valid)
    bits = np.unpackbits(packed[idx], axis=1)[:, :nbits]
    parts = []
    for j, cols in enumerate(block_columns(nbits, blocks)):
        parts.append((np.full(len(idx), j, np.int16), _shuffle_key(bits[:, cols])))
    block = np.concatenate([p[0] for p in parts])
    key = np.concatenate([p[1] for p in parts])
    rows = np.tile(idx + job.offsets[s], blocks)
    hashes = pa.FixedSizeBinaryArray.from_buffers(pa.binary(packed.shape[1]), len(rows),
                                                  [None, pa.py_buffer(np.tile(packed[idx], (blocks, 1)).tobytes())])
    table = pa.table({"block": block, "row": rows, "hash": hashes})
    write_partitions(table, partition_of(block, key, partitions=job.partitions), storage.join(job.work, "A"), s)
    return {"rows": t.num_rows, "unhashed": int(t.num_rows - len(idx))}


def _pairs_task(arg) -> dict:
    job, p, nbits, blocks, max_distance = arg
    t = read_partition(storage.join(job.work, "A"), p)
    if t is None:
        return {"candidates": 0}
    block = t.column("block").to_numpy()
    nbytes = (nbits + 7) // 8
    found, candidates = [], 0
    for j, cols in enumerate(block_columns(nbits, blocks)):
        sel = np.flatnonzero(block == j)
        if len(sel) < 2:
            continue
        sub = t.take(pa.array(sel))
        rows = sub.column("row").to_numpy()
        order = np.argsort(rows, kind="stable")  # row order, as the local code groups them
        rows = rows[order]
        packed = _hashes(sub, "hash", nbytes)[order]
        key = block_key(np.unpackbits(packed, axis=1)[:, :nbits][:, cols])
        for a, b in block_pairs(key):
            candidates += len(a)
            d = hamming(packed[a], packed[b])
            ok = d <= max_distance
            found.append((rows[a[ok]], rows[b[ok]], d[ok]))
    if found:
        a = np.concatenate([f[0] for f in found])
        b = np.concatenate([f[1] for f in found])
        d = np.concatenate([f[2] for f in found])
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        write_partitions(pa.table({"a": lo, "b": hi, "distance": d}), partition_of(lo, hi, partitions=job.partitions),
                         storage.join(job.work, "B"), p)
    return {"candidates": candidates}


def _edges_task(arg) -> dict:
    job, q = arg
    t = read_partition(storage.join(job.work, "B"), q, columns=["a", "b"])
    if t is None:
        return {"pairs": 0}
    pairs = np.unique(np.stack([t.column("a").to_numpy(), t.column("b").to_numpy()], axis=1), axis=0)
    write_partitions(pa.table({"a": pairs[:, 0], "b": pairs[:, 1]}), np.full(len(pairs), q, dtype=np.int64),
                     storage.join(job.work, "C"), q)
    return {"pairs": len(pairs)}


def _describe(members: pa.Table, rep: np.ndarray, *, method: str, nbits: int) -> tuple[list, dict]:
    """Each member's Hamming distance to its representative and its detail (for :func:`components.clusters`)."""
    packed, _ = packed_hashes(members.column("image_hash").to_pylist(), (nbits + 7) // 8)
    is_member = rep != np.arange(len(rep))
    dist = hamming(packed, packed[rep]).astype(np.int32)
    ids = members.column("id").to_pylist()
    details = [f"near-duplicate of {short_id(ids[r])} ({method} distance {d}/{nbits} bits)" if m else None
               for r, d, m in zip(rep.tolist(), dist.tolist(), is_member.tolist())]
    return details, {"hamming": pa.array(dist, pa.int32(), mask=~is_member)}


def _assemble_task(arg) -> dict:
    job, s = arg
    t = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["id", "image_hash"])
    info = read_partition(storage.join(job.work, "E"), s)
    dist = np.zeros(t.num_rows, dtype=np.int32)
    member = np.zeros(t.num_rows, dtype=bool)
    if info is not None:
        local = info.column("row").to_numpy() - job.offsets[s]
        h = info.column("hamming")
        dist[local] = h.fill_null(0).to_numpy()
        member[local] = np.asarray(h.is_valid())
    extra = {"image_hash": t.column("image_hash").combine_chunks(), "hamming": pa.array(dist, pa.int32(), mask=~member)}
    return write_cluster_shard(job, s, t.column("id"), info, "near_duplicate", extra)


def reduce(stage, job: ReduceJob, executor) -> None:
    """Run phases A-F (module docstring) on ``executor``; the summary goes to ``stage.summary``."""
    p = stage.params
    nbits = (p.hash_size ** 2 + 7) // 8 * 8  # the packed bits, as the local reduce splits them
    blocks = min(p.max_distance + 1, nbits)
    storage.rmtree(job.work)
    run = executor.map_unordered
    S, P = job.n_shards, job.partitions
    unhashed = sum(r["unhashed"] for r in run(_blocks_task, [(job, s, nbits, blocks) for s in range(S)],
                                              desc=f"{stage.name} (blocks)", total_rows=job.offsets[-1]))
    hashed = job.offsets[-1] - unhashed
    candidates = sum(r["candidates"] for r in run(_pairs_task, [(job, q, nbits, blocks, p.max_distance)
                                                                for q in range(P)], desc=f"{stage.name} (pairs)"))
    pairs = sum(r["pairs"] for r in run(_edges_task, [(job, q) for q in range(P)], desc=f"{stage.name} (edges)"))
    cc_work = storage.join(job.work, "cc")
    connected_components(executor, storage.join(job.work, "C"), cc_work, edge_partitions=P, offsets=job.offsets,
                         partitions=partitions_for(pairs, most=P), desc=f"{stage.name} (components)")
    found = clusters(executor, job, labels_dir(cc_work), storage.join(job.work, "E"),
                     describe=partial(_describe, method=p.hash, nbits=p.hash_size ** 2), columns=("image_hash",),
                     desc=f"{stage.name} (clusters)")
    list(run(_assemble_task, [(job, s) for s in range(S)], desc=f"{stage.name} (write)", total_rows=job.offsets[-1]))
    stage.summary.update({"block_candidates": candidates if hashed >= 2 else 0, "close_pairs": pairs,
                          "clusters": found["clusters"], "near_duplicates": found["duplicates"],
                          "largest_cluster": found["largest_cluster"], "unhashed": unhashed})
