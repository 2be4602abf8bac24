"""``exact_dedup``'s reduce as shard tasks: the content key is the shuffle key.

A. **keys** (one task per map shard): rows that have a key (hash of the image bytes and/or the
   normalised text) go to partition ``hash(key)`` as ``(key, row, keep score, id)``: about 70 bytes
   per row.
B. **groups** (one task per partition): rows with equal keys are a cluster (no edges: an equality
   class needs no connected components); the representative is the highest keep score, ties to the
   earliest row (:func:`curate.distributed.components.resolve_groups`, as for the near-duplicate
   schemes); each member of a cluster of two or more goes to its shard's file with its cluster's
   columns and detail.
C. **assemble** (one task per map shard): the stage's output shard.

The driver holds nothing per row: shard row counts and three counters per partition. Results are
identical to the local reduce (``tests/test_ray_dedup.py``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate import storage
from curate.dedup.keep import SCORE_COLUMN, short_id
from curate.distributed.components import resolve_groups
from curate.distributed.shuffle import ReduceJob, partition_of, read_partition, write_cluster_shard, write_partitions
from curate.rundir import shard_name


def _keys_task(arg) -> dict:
    job, s = arg
    t = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["id", "key", SCORE_COLUMN])
    present = np.flatnonzero(np.asarray(t.column("key").is_valid()))
    t = t.take(pa.array(present)).append_column("row", pa.array(present + job.offsets[s], pa.int64()))
    if t.num_rows:
        head = np.frombuffer(b"".join(t.column("key").to_pylist()), dtype="<u8").reshape(-1, 2)[:, 0]
        write_partitions(t, partition_of(head, partitions=job.partitions), storage.join(job.work, "A"), s)
    return {"rows": len(present)}


def _groups_task(arg) -> dict:
    job, p, what = arg
    t = read_partition(storage.join(job.work, "A"), p)
    if t is None:
        return {"clusters": 0, "duplicates": 0, "largest_cluster": 0}
    rows = t.column("row").to_numpy()
    order = np.argsort(rows, kind="stable")  # labels are the first row of each key, as locally
    t = t.take(pa.array(order))
    rows = rows[order]
    enc = t.column("key").combine_chunks().dictionary_encode()
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    first = np.full(len(enc.dictionary), len(rows), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(rows)))
    labels = first[codes]  # compact: position of the key's first row in this partition

    def describe(members: pa.Table, rep: np.ndarray):
        ids = members.column("id").to_pylist()
        return [None if r == i else f"exact duplicate of {short_id(ids[r])} (same {what})"
                for i, r in enumerate(rep.tolist())], {}

    info, counts = resolve_groups(t, labels, describe)
    write_partitions(info, job.shard_of(info.column("row").to_numpy()), storage.join(job.work, "B"), p)
    return counts


def _assemble_task(arg) -> dict:
    job, s = arg
    ids = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["id"]).column("id")
    return write_cluster_shard(job, s, ids, read_partition(storage.join(job.work, "B"), s), "exact_duplicate", {})


def reduce(stage, job: ReduceJob, executor) -> None:
    """Run phases A-C (module docstring); the summary goes to ``stage.summary``."""
    what = " and ".join({"image": "image bytes", "text": "normalised text"}[o] for o in stage.params.on)
    storage.rmtree(job.work)
    run = executor.map_unordered
    list(run(_keys_task, [(job, s) for s in range(job.n_shards)], desc=f"{stage.name} (keys)",
             total_rows=job.offsets[-1]))
    groups = list(run(_groups_task, [(job, p, what) for p in range(job.partitions)], desc=f"{stage.name} (groups)"))
    list(run(_assemble_task, [(job, s) for s in range(job.n_shards)], desc=f"{stage.name} (write)",
             total_rows=job.offsets[-1]))
    stage.summary.update({"clusters": sum(g["clusters"] for g in groups),
                          "duplicates": sum(g["duplicates"] for g in groups),
                          "largest_cluster": max([1 if job.offsets[-1] else 0, *(g["largest_cluster"] for g in groups)])})
