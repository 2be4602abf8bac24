"""``semantic_dedup``'s reduce as shard tasks: centroids from a sample on the driver, clusters as partitions.

SemDeDup compares items only within their k-means cluster, so the cluster is the shuffle key
(``S`` map shards, ``P`` partitions, ``D`` dimensions):

A. **count** (one task per map shard): rows with an embedding.
B. **sample** (one task per map shard): the rows of the k-means sample, picked by a hash of their row
   number (:func:`curate.embeddings.semantic_dedup.sample_mask`), unit-normalised.
C. **centroids** (driver): k-means over the sample, ``max(kmeans_sample, 40 k)`` rows of ``D`` floats
   (200 MB for 100,000 rows of 512 floats); ``k`` centroids to a file.
D. **assign** (one task per map shard): each row's nearest centroid and its rank priority (``keep``),
   sent to partition ``hash(cluster)`` with its id and unit embedding: ``4 D + 60`` bytes per row (the
   whole embedding matrix crosses the shuffle once).
E. **clusters** (one task per partition): each k-means cluster arrives whole; its members are ranked
   and compared as locally (:func:`curate.embeddings.semantic_dedup.cluster_neighbours`, one block of
   similarities at a time); duplicate chains lead to the kept member; each row goes to its shard's file
   with its cluster columns, similarity and detail. Memory per task: its partition's embeddings.
F. **assemble** (one task per map shard): the stage's output shard.

Driver memory: the sample and the centroids, nothing per row. The local reduce fits its k-means on the
same sample and assigns every row to the same centroids, so the results are identical
(``tests/test_distributed_reduces.py``); what is approximate is SemDeDup itself (a pair split across
two clusters is never compared), on both paths alike.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate import storage
from curate.distributed.shuffle import ReduceJob, partition_of, read_partition, write_cluster_shard, write_partitions
from curate.distributed.vectors import count_task, matrix, one_thread, read_embeddings, vector_array
from curate.embeddings.neighbors import assign, auto_clusters, fit_centroids
from curate.embeddings.semantic_dedup import (centre_priority, chain_representatives, cluster_neighbours, rank_order,
                                              sample_mask, sample_size)
from curate.rundir import shard_name


@one_thread
def _sample_task(arg) -> dict:
    job, s, column, n_valid, sample, seed = arg
    _, x, rows = read_embeddings(job, s, column)
    pick = sample_mask(rows + job.offsets[s], n_valid, sample, seed=seed)
    if pick.any():
        storage.write_table(pa.table({"vector": vector_array(x[pick])}), storage.join(job.work, "B", f"{s:05d}.parquet"),
                            compression="lz4")
    return {"sampled": int(pick.sum())}


@one_thread
def _assign_task(arg) -> dict:
    job, s, column, score_column, by_centroid = arg
    t, x, rows = read_embeddings(job, s, column, [score_column] if score_column else [])
    if not len(rows):
        return {"rows": t.num_rows}
    centroids = matrix(storage.read_table(storage.join(job.work, "C", "centroids.parquet")), "vector")
    cluster = assign(x, centroids)
    if by_centroid:
        prio = centre_priority(x, centroids, cluster, by_centroid)
    elif score_column:
        prio = np.asarray(t.column(score_column).to_numpy(zero_copy_only=False), dtype=np.float64)[rows]
    else:
        prio = np.zeros(len(rows))
    out = pa.table({"cluster": cluster, "row": rows + job.offsets[s], "prio": prio,
                    "id": t.column("id").take(pa.array(rows)), "vector": vector_array(x)})
    write_partitions(out, partition_of(cluster, partitions=job.partitions), storage.join(job.work, "D"), s)
    return {"rows": t.num_rows}


@one_thread
def _clusters_task(arg) -> dict:
    job, p, threshold, block_floats = arg
    from curate.stages.semantic_dedup import duplicate_detail

    empty = {"kmeans_clusters": 0, "largest_kmeans_cluster": 0, "clusters": 0, "duplicates": 0, "largest_cluster": 0}
    t = read_partition(storage.join(job.work, "D"), p)
    if t is None:
        return empty
    rows, cluster = t.column("row").to_numpy(), t.column("cluster").to_numpy()
    order = rank_order(rows, t.column("prio").to_numpy(), cluster)
    t = t.take(pa.array(order))
    rows, cluster = rows[order], cluster[order]
    x = matrix(t, "vector")
    ids = np.asarray(t.column("id").to_pylist(), dtype=object)
    n = len(rows)
    nn = np.full(n, -1, dtype=np.int64)  # positions in this partition
    sim = np.full(n, np.nan, dtype=np.float32)
    dup = np.zeros(n, dtype=bool)
    label = np.arange(n)  # position of the kept member a row stands for (itself when kept)
    bounds = np.flatnonzero(np.diff(cluster)) + 1
    starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [n]])
    for a, b in zip(starts.tolist(), ends.tolist()):
        if b - a < 2:
            continue
        best, best_sim = cluster_neighbours(np.ascontiguousarray(x[a:b]), block_floats)
        is_dup = best_sim > threshold
        chain = chain_representatives(best, is_dup)
        nn[a + 1:b] = a + best[1:]
        sim[a:b] = best_sim
        dup[a:b] = is_dup
        label[a:b][is_dup] = a + chain[is_dup]
    sizes = np.bincount(label, minlength=n)[label]
    detail = [duplicate_detail(ids[label[i]], ids[nn[i]], float(sim[i]), threshold, int(cluster[i])) if dup[i] else None
              for i in range(n)]
    info = pa.table({"row": rows, "cluster_id": pa.array(ids[label].tolist(), pa.string()),
                     "cluster_size": sizes.astype(np.int32), "is_representative": ~dup,
                     "nn_similarity": pa.array(sim, pa.float32(), mask=np.isnan(sim)),
                     "kmeans_cluster": cluster.astype(np.int32), "detail": pa.array(detail, pa.string())})
    write_partitions(info, job.shard_of(rows), storage.join(job.work, "E"), p)
    return {"kmeans_clusters": len(starts), "largest_kmeans_cluster": int((ends - starts).max()),
            "clusters": int(np.sum(~dup & (sizes > 1))), "duplicates": int(dup.sum()), "largest_cluster": int(sizes.max())}


def _assemble_task(arg) -> dict:
    job, s = arg
    ids = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["id"]).column("id")
    info = read_partition(storage.join(job.work, "E"), s)
    n = len(ids)
    sim = np.full(n, np.nan, dtype=np.float32)
    cluster = np.full(n, -1, dtype=np.int32)
    if info is not None:
        local = info.column("row").to_numpy() - job.offsets[s]
        sim[local] = info.column("nn_similarity").to_numpy(zero_copy_only=False)
        cluster[local] = info.column("kmeans_cluster").to_numpy()
    extra = {"nn_similarity": pa.array(sim, pa.float32(), mask=np.isnan(sim)),
             "kmeans_cluster": pa.array(cluster, pa.int32(), mask=cluster < 0)}
    return write_cluster_shard(job, s, ids, info, "semantic_duplicate", extra)


def reduce(stage, job: ReduceJob, executor, *, block_floats: int = 1 << 24) -> None:
    """Run phases A-F (module docstring) on ``executor``; the summary goes to ``stage.summary``."""
    p = stage.params
    column = p.embedding_column()
    score_column = stage._score_column()
    by_centroid = p.keep if p.keep in ("central", "peripheral") else None
    S, P = job.n_shards, job.partitions
    storage.rmtree(job.work)
    run = executor.map_unordered
    n_valid = sum(r["valid"] for r in run(count_task, [(job, s, column) for s in range(S)],
                                          desc=f"{stage.name} (count)", total_rows=job.offsets[-1]))
    threshold = 1 - p.eps
    parts = []
    if n_valid:
        k = p.clusters if p.clusters != "auto" else auto_clusters(n_valid)
        fit = sample_size(p.kmeans_sample, k)
        list(run(_sample_task, [(job, s, column, n_valid, fit, p.seed) for s in range(S)],
                 desc=f"{stage.name} (sample)"))
        folder = storage.join(job.work, "B")
        sample = np.concatenate([matrix(storage.read_table(f), "vector") for f in sorted(folder.glob("*.parquet"))])
        centroids = fit_centroids(sample, k, seed=p.seed)
        del sample
        storage.write_table(pa.table({"vector": vector_array(centroids)}), storage.join(job.work, "C", "centroids.parquet"))
        list(run(_assign_task, [(job, s, column, score_column, by_centroid) for s in range(S)],
                 desc=f"{stage.name} (assign)", total_rows=job.offsets[-1]))
        parts = list(run(_clusters_task, [(job, q, threshold, block_floats) for q in range(P)],
                         desc=f"{stage.name} (clusters)"))
    list(run(_assemble_task, [(job, s) for s in range(S)], desc=f"{stage.name} (write)", total_rows=job.offsets[-1]))
    total = {k: sum(r[k] for r in parts) for k in ("kmeans_clusters", "clusters", "duplicates")}
    stage.summary.update({"kmeans_clusters": total["kmeans_clusters"],
                          "largest_kmeans_cluster": max([0, *(r["largest_kmeans_cluster"] for r in parts)]),
                          "clusters": total["clusters"], "duplicates": total["duplicates"],
                          "largest_cluster": max([1 if job.offsets[-1] else 0, *(r["largest_cluster"] for r in parts)]),
                          "threshold": round(threshold, 4), "cutoff": round(threshold, 4), "embedded": n_valid})
