"""Connected components and duplicate clusters as shard tasks: no edge and no row meets on the driver.

Two steps that any distributed dedup scheme chains after it has written its verified pairs:

:func:`connected_components` labels every row that is in an edge with the smallest row of its
component, exactly the labels of :func:`curate.dedup.unionfind.components` (the driver's union-find).
The scheme is the *alternating algorithm* of Kiveris et al. ("Connected Components in MapReduce and
Beyond", SoCC 2014), after a local contraction, every arrow a hash-partitioned Parquet exchange
(:mod:`curate.distributed.shuffle`):

0. **contract** (one task per group of edge partitions): union-find over the task's own edges; every
   node of them gets one edge to the smallest node of its local component (same connectivity, at most
   one edge per node and task). Both directions go to ``hash(node)``.
1. **large-star** (one task per partition of ``hash(u)``): for each node ``u`` and its neighbours
   ``G(u)``, ``m = min(G(u) + u)``; each neighbour ``v > u`` is linked to ``m`` instead, sent to
   ``hash(v)`` as ``(v, m)``.
2. **small-star** (one task per partition of ``hash(larger end)``): for each node ``u`` and its smaller
   neighbours ``N(u)``, ``m = min N(u)``; every ``v`` of ``N(u) + u`` other than ``m`` is linked to ``m``.
   Both directions of each edge go to ``hash(node)`` for the next large-star.

Steps 1-2 repeat until a large-star and the small-star after it change no edge; the graph is then a
forest of stars whose centres are the smallest nodes of their components (Kiveris et al. prove
O(log^2 n) rounds; a path of 5,000 nodes in random order takes 11, duplicate clusters 1-2).
Neither step adds edges, so every round moves at most the contracted edges twice.

3. **labels** (one task per partition): each node's label is ``min(u, G(u))``; ``(row, label)`` goes to
   the map shard of ``row`` (``offsets``).

When the edges fit one task (``partitions=1``; :func:`partitions_for` decides from the edge count) one
task runs the union-find over all of them instead of the rounds.

:func:`clusters` turns the labels into the cluster columns of a dedup stage, as
:func:`curate.dedup.keep.cluster_duplicates` does on the driver:

M. **members** (one task per map shard): each labelled row with its ``id``, keep score and the map
   columns the stage asks for (e.g. its signature) goes to ``hash(label)``: a component meets in one task.
G. **groups** (one task per partition): the representative of each component (highest keep score, ties
   to the earliest row, :func:`curate.dedup.keep.representatives`), its size, and the stage's
   ``describe`` function for the members' details and extra columns (e.g. the Jaccard to the
   representative); one row per clustered row goes to its map shard's file for the stage's assemble step.

The driver holds a few counters per task. A component is resolved in one task, so one task holds a
whole cluster (a dataset that is one giant cluster puts it all in one task, not in the driver).
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import pyarrow as pa

from curate import storage
from curate.dedup.keep import SCORE_COLUMN, representatives
from curate.dedup.unionfind import components as union_find
from curate.distributed.shuffle import ReduceJob, partition_of, read_partition, write_partitions
from curate.rundir import shard_name

log = logging.getLogger(__name__)

#: Edges one task takes (16 bytes each, twice over while sorting): about 100 MB of task memory.
EDGES_PER_TASK = 2_000_000


def partitions_for(n_edges: int, *, most: int) -> int:
    """Partitions for :func:`connected_components` over ``n_edges`` edges: one per
    :data:`EDGES_PER_TASK`, at most ``most``, at least one."""
    return max(1, min(int(most), -(-int(n_edges) // EDGES_PER_TASK)))


def _out_partition(rows: np.ndarray, offsets: list[int]) -> np.ndarray:
    return np.searchsorted(np.asarray(offsets), rows, side="right") - 1


def _grouped(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y)`` sorted by ``x`` then ``y``, duplicates removed, and the start of each ``x`` group."""
    order = np.lexsort((y, x))
    x, y = x[order], y[order]
    keep = np.ones(len(x), dtype=bool)
    keep[1:] = (x[1:] != x[:-1]) | (y[1:] != y[:-1])
    x, y = x[keep], y[keep]
    starts = np.flatnonzero(np.concatenate([[True], x[1:] != x[:-1]])) if len(x) else np.zeros(0, np.int64)
    return x, y, starts


def _write_both_ways(a: np.ndarray, b: np.ndarray, phase_dir, source: int, partitions: int) -> None:
    x, y = np.concatenate([a, b]), np.concatenate([b, a])
    write_partitions(pa.table({"x": x, "y": y}), partition_of(x, partitions=partitions), phase_dir, source)


def _read_edges(edges_dir, parts) -> tuple[np.ndarray, np.ndarray]:
    tables = [t for t in (read_partition(edges_dir, i, columns=["a", "b"]) for i in parts) if t is not None]
    if not tables:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    t = pa.concat_tables(tables)
    a = t.column("a").to_numpy().astype(np.int64)
    b = t.column("b").to_numpy().astype(np.int64)
    loop = a == b
    return a[~loop], b[~loop]


def _local_components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes of the edges (sorted) and the smallest node of each one's component (union-find)."""
    nodes = np.unique(np.concatenate([a, b]))
    labels = union_find(len(nodes), np.searchsorted(nodes, a), np.searchsorted(nodes, b))
    return nodes, nodes[labels]  # compact labels are the smallest compact index: the smallest row


def _contract_task(arg) -> dict:
    edges_dir, work, p, edge_partitions, partitions, offsets = arg
    a, b = _read_edges(edges_dir, range(p, edge_partitions, partitions))
    if not len(a):
        return {"edges": 0}
    nodes, root = _local_components(a, b)
    if partitions == 1:  # everything is here: these are the labels
        write_partitions(pa.table({"row": nodes, "label": root}), _out_partition(nodes, offsets),
                         storage.join(work, "labels"), p)
        return {"edges": len(a), "nodes": len(nodes)}
    leaf = nodes != root
    _write_both_ways(nodes[leaf], root[leaf], storage.join(work, "L0"), p, partitions)
    return {"edges": len(a), "nodes": len(nodes)}


def _large_star_task(arg) -> dict:
    work, k, p, partitions = arg
    t = read_partition(storage.join(work, f"L{k}"), p)
    if t is None:
        return {"changed": 0, "edges": 0}
    x, y, starts = _grouped(t.column("x").to_numpy(), t.column("y").to_numpy())
    m = np.minimum(x[starts], y[starts])  # y is sorted within each group: its first is the smallest
    m_of = np.repeat(m, np.diff(np.append(starts, len(x))))
    up = y > x
    v, to = y[up], m_of[up]
    write_partitions(pa.table({"x": v, "y": to}), partition_of(v, partitions=partitions), storage.join(work, f"S{k}"), p)
    return {"changed": int(np.sum(to != x[up])), "edges": int(up.sum())}


def _small_star_task(arg) -> dict:
    work, k, p, partitions = arg
    t = read_partition(storage.join(work, f"S{k}"), p)
    if t is None:
        return {"changed": 0, "edges": 0}
    x, y, starts = _grouped(t.column("x").to_numpy(), t.column("y").to_numpy())
    m_of = np.repeat(y[starts], np.diff(np.append(starts, len(x))))  # the smallest smaller neighbour
    others = y != m_of
    a = np.concatenate([y[others], x[starts]])
    b = np.concatenate([m_of[others], y[starts]])
    _write_both_ways(a, b, storage.join(work, f"L{k + 1}"), p, partitions)
    return {"changed": int(len(x) - len(starts)), "edges": int(len(a))}


def _labels_task(arg) -> dict:
    work, k, p, offsets = arg
    t = read_partition(storage.join(work, f"L{k}"), p)
    if t is None:
        return {"nodes": 0}
    x, y, starts = _grouped(t.column("x").to_numpy(), t.column("y").to_numpy())
    rows = x[starts]
    labels = np.minimum(rows, y[starts])
    write_partitions(pa.table({"row": rows, "label": labels}), _out_partition(rows, offsets),
                     storage.join(work, "labels"), p)
    return {"nodes": int(len(rows))}


def connected_components(executor, edges_dir, work_dir, *, edge_partitions: int, offsets: list[int],
                         partitions: int, desc: str = "components") -> dict:
    """Label the rows of an edge list with their components, as shard tasks on ``executor``.

    Parameters
    ----------
    edges_dir : folder (local or object storage)
        Edges in the layout of :func:`curate.distributed.shuffle.write_partitions`, partitions
        ``0 .. edge_partitions - 1``, integer columns ``a`` and ``b`` (global rows; any order, repeats
        and self-loops allowed).
    work_dir : folder
        Scratch space for the rounds (emptied first). The result is ``work_dir/labels``
        (:func:`labels_dir`).
    offsets : list of int
        First row of each map shard plus the total (``ReduceJob.offsets``): the labels of the rows of
        shard ``s`` go to partition ``s`` of the result.
    partitions : int
        Tasks per round (:func:`partitions_for`); 1 runs a single union-find task.

    Returns
    -------
    dict
        ``edges`` (read), ``nodes`` (rows labelled), ``rounds`` (large-star/small-star rounds).
        The result holds ``(row, label)`` for every row in an edge, ``label`` the smallest row of its
        component; rows in no edge are not listed (each is its own component).
    """
    storage.rmtree(work_dir)
    run = executor.map_unordered
    partitions = max(1, int(partitions))
    first = list(run(_contract_task, [(str(edges_dir), str(work_dir), p, edge_partitions, partitions, offsets)
                                      for p in range(min(partitions, edge_partitions))], desc=f"{desc} (contract)"))
    stats = {"edges": sum(r["edges"] for r in first), "nodes": sum(r.get("nodes", 0) for r in first), "rounds": 0}
    if partitions == 1 or stats["edges"] == 0:
        return stats
    k = 0
    while True:
        large = list(run(_large_star_task, [(str(work_dir), k, p, partitions) for p in range(partitions)],
                         desc=f"{desc} (large-star {k + 1})"))
        small = list(run(_small_star_task, [(str(work_dir), k, p, partitions) for p in range(partitions)],
                         desc=f"{desc} (small-star {k + 1})"))
        storage.rmtree(storage.join(work_dir, f"L{k}"))
        storage.rmtree(storage.join(work_dir, f"S{k}"))
        k += 1
        changed = sum(r["changed"] for r in large) + sum(r["changed"] for r in small)
        log.info("%s: round %d, %d edges, %d changed", desc, k, sum(r["edges"] for r in small), changed)
        if changed == 0:
            break
    labelled = list(run(_labels_task, [(str(work_dir), k, p, offsets) for p in range(partitions)],
                        desc=f"{desc} (labels)"))
    storage.rmtree(storage.join(work_dir, f"L{k}"))
    stats.update(nodes=sum(r["nodes"] for r in labelled), rounds=k)
    return stats


def labels_dir(work_dir):
    """Where :func:`connected_components` leaves ``(row, label)``, one partition per map shard."""
    return storage.join(work_dir, "labels")


#: ``describe(members, rep) -> (details, extra columns)``: ``members`` is a component table (``row``,
#: ``id``, keep score and the requested map columns, sorted by row), ``rep[i]`` the position of row
#: ``i``'s representative; details are ``None`` for representatives.
Describe = Callable[[pa.Table, np.ndarray], tuple[list, dict]]


def resolve_groups(t: pa.Table, labels: np.ndarray, describe: Describe) -> tuple[pa.Table, dict]:
    """The cluster rows of one partition: ``t`` sorted by ``row`` with ``id`` and the keep score,
    ``labels[i]`` the position of the first row of row ``i``'s group. Returns the clustered rows
    (groups of two or more: ``row``, ``cluster_id``, ``cluster_size``, ``is_representative``,
    ``detail`` and ``describe``'s columns) and the partition's counts."""
    scores = t.column(SCORE_COLUMN).to_numpy(zero_copy_only=False).astype(np.float64)
    rep = representatives(labels, scores)
    sizes = np.bincount(labels, minlength=len(labels))[labels]
    multi = np.flatnonzero(sizes > 1)
    t, rep_m = t.take(pa.array(multi)), np.searchsorted(multi, rep[multi])
    details, extra = describe(t, rep_m)
    ids = np.asarray(t.column("id").to_pylist(), dtype=object)
    is_rep = rep_m == np.arange(len(multi))
    info = pa.table({"row": t.column("row"), "cluster_id": pa.array(ids[rep_m].tolist(), pa.string()),
                     "cluster_size": sizes[multi].astype(np.int32), "is_representative": is_rep,
                     "detail": pa.array(details, pa.string()), **extra})
    counts = {"clusters": int(is_rep.sum()), "duplicates": int(len(multi) - is_rep.sum()),
              "largest_cluster": int(sizes.max()) if len(sizes) else 0}
    return info, counts


def _members_task(arg) -> dict:
    job, labels, work, s, columns, partitions = arg
    lab = read_partition(labels, s)
    if lab is None:
        return {"rows": 0}
    rows = lab.column("row").to_numpy()
    t = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["id", SCORE_COLUMN, *columns])
    t = t.take(pa.array(rows - job.offsets[s])).append_column("row", pa.array(rows, pa.int64()))
    t = t.append_column("label", lab.column("label"))
    write_partitions(t, partition_of(lab.column("label").to_numpy(), partitions=partitions), work, s)
    return {"rows": len(rows)}


def _groups_task(arg) -> dict:
    job, work, out_dir, q, describe = arg
    t = read_partition(work, q)
    if t is None:
        return {"clusters": 0, "duplicates": 0, "largest_cluster": 0}
    rows = t.column("row").to_numpy()
    t = t.take(pa.array(np.argsort(rows, kind="stable")))
    label = t.column("label").to_numpy()
    uniq, first = np.unique(label, return_index=True)  # rows are sorted: a label's first row is itself
    info, counts = resolve_groups(t, first[np.searchsorted(uniq, label)], describe)
    write_partitions(info, job.shard_of(info.column("row").to_numpy()), out_dir, q)
    return counts


def clusters(executor, job: ReduceJob, labels, out_dir, *, describe: Describe, columns: tuple[str, ...] = (),
             desc: str = "clusters") -> dict:
    """Phases M and G (module docstring): the cluster rows of every component in ``labels``
    (:func:`labels_dir`), written to ``out_dir`` with one partition per map shard (for
    :func:`curate.distributed.shuffle.write_cluster_shard`).

    ``describe`` must be a module-level function (tasks pickle it by name); ``columns`` are the map
    shards' columns it needs (besides ``id`` and the keep score). Returns ``clusters``,
    ``duplicates`` and ``largest_cluster`` (1 when there are rows but no cluster, as locally).
    """
    work = storage.join(job.work, "members")
    storage.rmtree(work)
    storage.rmtree(out_dir)
    run = executor.map_unordered
    list(run(_members_task, [(job, str(labels), str(work), s, list(columns), job.partitions)
                             for s in range(job.n_shards)], desc=f"{desc} (members)"))
    parts = list(run(_groups_task, [(job, str(work), str(out_dir), q, describe) for q in range(job.partitions)],
                     desc=f"{desc} (groups)"))
    storage.rmtree(work)
    return {"clusters": sum(r["clusters"] for r in parts), "duplicates": sum(r["duplicates"] for r in parts),
            "largest_cluster": max([1 if job.offsets[-1] else 0, *(r["largest_cluster"] for r in parts)])}
