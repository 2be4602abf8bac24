"""Duplicate clusters from verified edges, as shard tasks: components, representatives, per-shard rows.

The last steps of a dedup scheme whose reduce ends in connected components over verified pairs
(``image_dedup``, :mod:`curate.distributed.phash`). Input: a phase folder of edge files (``a``, ``b``:
global rows; any partitioning; a pair may appear more than once).

L. **components**: the component label of every row that has an edge, the smallest row of its
   component (the label :func:`curate.dedup.unionfind.components` gives locally), sent to the shard of
   the row as ``(row, label)`` (:func:`label_components`).
M. **members** (one task per map shard): the rows of its shard that are in a component, with their id,
   keep score and the scheme's payload columns (e.g. the hash), sent to partition ``hash(label)``.
N. **clusters** (one task per partition): each component arrives whole in one partition. Its
   representative is the highest keep score, ties to the smallest row, as locally
   (:func:`curate.dedup.keep.representatives`); the scheme's ``describe`` function gives each member
   its score column and detail. The rows go to their shard's file (``row``, ``cluster_id``,
   ``cluster_size``, ``is_representative``, ``detail`` and the scheme's columns) for the scheme's
   assemble task (:func:`curate.distributed.shuffle.write_cluster_shard`).

The driver holds per-partition counters only, plus whatever :func:`label_components` needs (below).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa

from curate import storage
from curate.dedup.keep import SCORE_COLUMN, representatives
from curate.distributed.shuffle import ReduceJob, partition_of, read_partition, write_partitions
from curate.rundir import shard_name

#: ``describe(members, rep, args) -> (columns, details)``: ``members`` is one partition's component rows
#: (sorted by row; ``id``, ``keep_score`` and the payload), ``rep[i]`` the position of row ``i``'s
#: representative. Returns the scheme's extra columns and one detail per row (``None`` for representatives).
Describe = Callable[[pa.Table, np.ndarray, tuple], tuple[dict[str, pa.Array], list]]


def read_phase_files(job: ReduceJob, phase: str, columns: list[str] | None = None) -> pa.Table | None:
    """Every ``<phase>/*.parquet`` file of the job, concatenated (``None`` if there are none)."""
    folder = storage.join(job.work, phase)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    tables = [t for t in (storage.read_table(f, columns=columns) for f in files) if t.num_rows]
    return pa.concat_tables(tables) if tables else None


def label_components(job: ReduceJob, executor, edges_phase: str, out_phase: str) -> int:
    """Phase L: ``(row, label)`` of every row with an edge, to ``out_phase/<shard>/``; returns the rows
    labelled. Runs union-find on the driver over the verified edges only (12 bytes per edge and row
    in a cluster; rows without a verified pair cost nothing)."""
    from curate.dedup.unionfind import components

    edges = read_phase_files(job, edges_phase, ["a", "b"])
    if edges is None:
        return 0
    a, b = edges.column("a").to_numpy(), edges.column("b").to_numpy()
    del edges
    nodes = np.unique(np.concatenate([a, b]))  # sorted: the smallest compact index is the smallest row
    labels = nodes[components(len(nodes), np.searchsorted(nodes, a), np.searchsorted(nodes, b))]
    write_partitions(pa.table({"row": nodes, "label": labels}), job.shard_of(nodes), storage.join(job.work, out_phase), 0)
    return len(nodes)


def _members_task(arg) -> dict:
    job, s, labels_phase, payload = arg
    t = read_partition(storage.join(job.work, labels_phase), s)
    if t is None:
        return {}
    rows = t.column("row").to_numpy()
    shard = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["id", SCORE_COLUMN, *payload])
    picked = shard.take(pa.array(rows - job.offsets[s]))
    out = pa.table({"row": rows, "label": t.column("label"), **{c: picked.column(c) for c in picked.column_names}})
    write_partitions(out, partition_of(t.column("label").to_numpy(), partitions=job.partitions),
                     storage.join(job.work, "cc-M"), s)
    return {}


def _clusters_task(arg) -> dict:
    job, p, describe, args = arg
    t = read_partition(storage.join(job.work, "cc-M"), p)
    if t is None:
        return {"clusters": 0, "duplicates": 0, "largest_cluster": 0}
    rows = t.column("row").to_numpy()
    t = t.take(pa.array(np.argsort(rows, kind="stable")))
    rows = t.column("row").to_numpy()
    _, first, codes = np.unique(t.column("label").to_numpy(), return_index=True, return_inverse=True)
    labels = first[codes.reshape(-1)]  # compact: position of the component's smallest row
    rep = representatives(labels, t.column(SCORE_COLUMN).to_numpy(zero_copy_only=False).astype(np.float64))
    sizes = np.bincount(labels, minlength=len(rows))[labels]
    columns, details = describe(t, rep, args)
    ids = t.column("id")
    info = pa.table({"row": rows, "cluster_id": ids.take(pa.array(rep)), "cluster_size": sizes.astype(np.int32),
                     "is_representative": rep == np.arange(len(rows)), **columns,
                     "detail": pa.array(details, pa.string())})
    write_partitions(info, job.shard_of(rows), storage.join(job.work, "cc-N"), p)
    is_rep = rep == np.arange(len(rows))
    return {"clusters": int(is_rep.sum()), "duplicates": int((~is_rep).sum()), "largest_cluster": int(sizes.max())}


def cluster_members(job: ReduceJob, executor, edges_phase: str, *, payload: list[str], describe: Describe,
                    args: tuple = (), name: str = "") -> dict:
    """Phases L-N (module docstring). Afterwards ``read_partition(join(job.work, CLUSTER_PHASE), s)``
    holds shard ``s``'s rows that are in a cluster. Returns ``clusters``, ``duplicates`` and
    ``largest_cluster`` (1 when there is no cluster, 0 for an empty dataset), as
    :meth:`curate.dedup.keep.Clusters.summary` counts them."""
    run = executor.map_unordered
    label_components(job, executor, edges_phase, "cc-L")
    list(run(_members_task, [(job, s, "cc-L", payload) for s in range(job.n_shards)], desc=f"{name} (members)"))
    parts = list(run(_clusters_task, [(job, p, describe, args) for p in range(job.partitions)],
                     desc=f"{name} (clusters)"))
    return {"clusters": sum(r["clusters"] for r in parts), "duplicates": sum(r["duplicates"] for r in parts),
            "largest_cluster": max([1 if job.offsets[-1] else 0, *(r["largest_cluster"] for r in parts)])}


#: The phase that holds each shard's clustered rows after :func:`cluster_members`.
CLUSTER_PHASE = "cc-N"
