"""``embedding_dedup``'s reduce as shard tasks: kNN by shards of the index, pairs joined at their shards.

The local rule (:func:`curate.embeddings.neardup.near_duplicate_pairs`) needs, for each candidate pair
``(a, b)`` (one of each row's ``k`` nearest neighbours with cosine >= ``min_similarity``), both rows'
``k``-th neighbour similarity (the margin) and both rows' phash (the verification). No task holds every
row, so each pair travels to the shard of its second row, where that row's values are (``S`` map
shards, ``P`` partitions, ``k`` neighbours, ``D`` dimensions):

A. **count** (one task per map shard): rows with an embedding, rows without a phash.
B. **search** (one task per query shard ``q``): the exact kNN of ``outliers``
   (:func:`curate.distributed.knn.shard_neighbours`: every index shard searched in turn, candidates
   ranked by batch-independent similarities, the ``k + 1`` best merged, the row itself dropped). Each
   row's ``k``-th similarity goes to a file of the shard; each neighbour at or above ``min_similarity``
   goes to the map shard of the neighbour as ``(src, dst, cosine, src's k-th similarity, src's id and
   phash [and mirrored phash])``: at most ``k`` messages per row, 24 bytes plus the id and the hex
   hashes (about 70 bytes with 16-character ids).
C. **verify** (one task per map shard ``s``): the messages whose ``dst`` is in ``s`` meet ``dst``'s
   ``k``-th similarity and phash: the margin (:func:`curate.embeddings.neardup.margins`), the Hamming
   distance (:func:`~curate.embeddings.neardup.pair_distances`, of ``a = min(src, dst)`` against
   ``b``, mirrored as locally) and the decision (:func:`~curate.embeddings.neardup.verified`). Each
   candidate goes to partition ``hash(a, b)`` (the verified ones with their cosine, distance and ids).
D. **pairs** (one task per partition): a pair found from both of its rows is kept once (both copies
   are equal: the similarity is symmetric); the unique candidates and verified pairs are counted; the
   verified pairs are the edges, and go to both rows' shards as links ``(i, j, cosine, distance, id of j)``.
E-F. **components and clusters** (:mod:`curate.distributed.components`): connected components of the
   edges as shard tasks, the representative of each (``keep``), each member's representative row.
G. **assemble** (one task per map shard): each member's link, the pair that explains its membership
   (:func:`curate.stages.embedding_dedup.best_links`: to its representative if it has one, else its most
   similar pair), its detail and the output shard.

Driver memory: shard row counts and a few counters per task; no embedding, hash, pair or edge. Task
memory: two shards' embeddings (B), a shard's incoming candidates (C), a partition's pairs (D). Work:
``S`` reads of the embedding matrix and ``O(N^2 D)`` multiply-adds spread over the ``S`` search tasks,
as ``outliers``. Results equal the driver reduce's (``tests/test_distributed_embedding_dedup.py``: every
output column and the summary).

**Exact search only.** The scheme always searches exactly; it equals the driver's ``search: exact``,
and ``search: auto`` below 200,000 rows (from there the driver's ``auto`` uses faiss's IVF index when
faiss is installed, which may miss true neighbours the scheme finds). ``search: approximate`` is
declined (the driver reduces, logged): an IVF index trained on a random sample of all rows, whose
probed lists decide which neighbours each row sees, cannot be reproduced shard by shard. To distribute
it, both paths would have to train the coarse quantizer on a sample picked by a hash of the row number
(as ``semantic_dedup``'s k-means, trained on the driver), the map tasks would assign rows to lists and
shuffle them by list, and each query would be sent to the partitions of its ``nprobe`` lists (32
copies per row) and its candidates merged as in B.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from curate import storage
from curate.distributed.components import clusters, connected_components, labels_dir, partitions_for
from curate.distributed.knn import shard_neighbours
from curate.distributed.shuffle import ReduceJob, partition_of, read_partition, write_cluster_shard, write_partitions
from curate.distributed.vectors import one_thread, read_embeddings
from curate.embeddings.fields import embedding_matrix
from curate.embeddings.neardup import margins, pair_distances, verified
from curate.embeddings.neighbors import APPROXIMATE_FROM_ROWS, have_faiss
from curate.rundir import shard_name

log = logging.getLogger(__name__)

COLUMN = "embedding"  # the map step's embedding column


def declines(stage) -> str | None:
    if stage.params.search == "approximate":
        return ("search: approximate (a faiss IVF index over every embedding; the scheme's search is exact: "
                "use search: exact or auto for the distributed reduce)")
    return None


def _hash_columns(p) -> list[str]:
    if p.verify != "phash":
        return []
    return ["image_hash", "mirror_hash"] if p.mirror else ["image_hash"]


def _count_task(arg) -> dict:
    job, s, hashed = arg
    columns = [COLUMN, *(["image_hash"] if hashed else [])]
    t = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=columns)
    unhashed = t.column("image_hash").null_count if hashed else 0
    return {"valid": int(embedding_matrix(t, COLUMN)[1].sum()), "unhashed": int(unhashed)}


def _kth(job: ReduceJob, s: int) -> np.ndarray:
    return storage.read_table(storage.join(job.work, "K", f"{s:05d}.parquet")).column("kth").to_numpy()


@one_thread
def _search_task(arg) -> dict:
    job, q, k, min_similarity, hash_columns = arg
    t, xq, rows = read_embeddings(job, q, COLUMN, hash_columns)
    kth = np.full(t.num_rows, np.nan, dtype=np.float32)
    sent = 0
    if len(rows):
        sims, nbr = shard_neighbours(job, q, xq, rows, COLUMN, k)
        kth[rows] = sims[:, -1]
        keep = sims >= min_similarity
        src = np.repeat(rows, sims.shape[1])[keep.ravel()]
        dst = nbr[keep]
        take = pa.array(src)
        msgs = pa.table({"src": src + job.offsets[q], "dst": dst, "cos": sims[keep], "kth": kth[src],
                         "id": t.column("id").take(take), **{c: t.column(c).take(take) for c in hash_columns}})
        write_partitions(msgs, job.shard_of(dst), storage.join(job.work, "B"), q)
        sent = len(src)
    storage.write_table(pa.table({"kth": kth}), storage.join(job.work, "K", f"{q:05d}.parquet"), compression="lz4")
    return {"candidates": int(sent)}


def _verify_task(arg) -> dict:
    from curate.stages.embedding_dedup import _unhex

    job, s, rule, hash_columns = arg
    m = read_partition(storage.join(job.work, "B"), s)
    if m is None:
        return {}
    own = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["id", *hash_columns])
    src, dst = m.column("src").to_numpy(), m.column("dst").to_numpy()
    local = pa.array(dst - job.offsets[s])
    cos = m.column("cos").to_numpy()
    margin = margins(cos, m.column("kth").to_numpy(), _kth(job, s)[dst - job.offsets[s]])
    a, b = np.minimum(src, dst), np.maximum(src, dst)
    src_is_a = src < dst

    def sides(column: str) -> tuple[list, list]:
        theirs, ours = m.column(column).to_pylist(), own.column(column).take(local).to_pylist()
        side_a = [x if f else y for x, y, f in zip(theirs, ours, src_is_a.tolist())]
        side_b = [y if f else x for x, y, f in zip(theirs, ours, src_is_a.tolist())]
        return side_a, side_b

    dist = None
    if hash_columns:
        n = len(a)
        hash_a, hash_b = sides("image_hash")
        both = hash_a + hash_b
        hashed = np.array([h is not None for h in both], dtype=bool)
        mirrored = _unhex(sum(sides("mirror_hash"), [])) if "mirror_hash" in hash_columns else None
        dist = pair_distances(np.arange(n), n + np.arange(n), _unhex(both), hashed, mirrored)
    ok = verified(cos, margin, dist, **rule)
    id_a, id_b = sides("id")
    mask = pa.array(~ok)
    out = pa.table({"a": a, "b": b, "ok": ok, "cos": cos,
                    "ham": dist if dist is not None else np.full(len(a), -1, np.int32),
                    "id_a": pa.array(id_a, pa.string(), mask=mask), "id_b": pa.array(id_b, pa.string(), mask=mask)})
    write_partitions(out, partition_of(a, b, partitions=job.partitions), storage.join(job.work, "C"), s)
    return {}


def _unique(t: pa.Table) -> pa.Table:
    a, b = t.column("a").to_numpy(), t.column("b").to_numpy()
    order = np.lexsort((b, a))
    first = np.ones(len(order), dtype=bool)
    first[1:] = (a[order][1:] != a[order][:-1]) | (b[order][1:] != b[order][:-1])
    return t.take(pa.array(order[first]))


def _pairs_task(arg) -> dict:
    job, p = arg
    t = read_partition(storage.join(job.work, "C"), p)
    if t is None:
        return {"candidates": 0, "verified": 0}
    t = _unique(t)
    v = t.filter(t.column("ok"))
    a, b = v.column("a").to_numpy(), v.column("b").to_numpy()
    if len(a):
        write_partitions(pa.table({"a": a, "b": b}), np.full(len(a), p, dtype=np.int64), storage.join(job.work, "D"), p)
        col = lambda name: v.column(name).combine_chunks()  # noqa: E731
        links = pa.table({"i": np.concatenate([a, b]), "j": np.concatenate([b, a]),
                          "cos": pa.concat_arrays([col("cos")] * 2), "ham": pa.concat_arrays([col("ham")] * 2),
                          "via": pa.concat_arrays([col("id_b"), col("id_a")])})
        write_partitions(links, job.shard_of(links.column("i").to_numpy()), storage.join(job.work, "L"), p)
    return {"candidates": t.num_rows, "verified": len(a)}


def _describe(members: pa.Table, rep: np.ndarray) -> tuple[list, dict]:
    """Each member's representative row (its detail needs its links: written in G)."""
    return [None] * members.num_rows, {"rep_row": members.column("row").take(pa.array(rep))}


def _assemble_task(arg) -> dict:
    from curate.stages.embedding_dedup import best_links, link_detail

    job, s = arg
    ids = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["id"]).column("id")
    info = read_partition(storage.join(job.work, "F"), s)
    n = len(ids)
    sim = np.full(n, np.nan, dtype=np.float32)
    ham = np.full(n, -1, dtype=np.int32)
    member = np.zeros(n, dtype=bool)
    if info is not None:
        info = info.take(pa.array(np.argsort(info.column("row").to_numpy(), kind="stable")))
        rows, rep_row = info.column("row").to_numpy(), info.column("rep_row").to_numpy()
        links = read_partition(storage.join(job.work, "L"), s)  # every clustered row has one at least
        i, j = links.column("i").to_numpy(), links.column("j").to_numpy()
        best = best_links(i, j, links.column("cos").to_numpy(), j == rep_row[np.searchsorted(rows, i)])
        assert np.array_equal(i[best], rows), "every clustered row has a verified pair"
        cos, h = links.column("cos").to_numpy()[best], links.column("ham").to_numpy()[best]
        via = links.column("via").take(pa.array(best)).to_pylist()
        rep_ids = info.column("cluster_id").to_pylist()
        is_member = rep_row != rows
        details = [link_detail(r, c, int(d), None if jj == rr else v) if mm else None
                   for r, c, d, v, jj, rr, mm in zip(rep_ids, cos, h.tolist(), via, j[best].tolist(), rep_row.tolist(),
                                                     is_member.tolist())]
        info = info.set_column(info.schema.get_field_index("detail"), "detail", pa.array(details, pa.string()))
        local = rows - job.offsets[s]
        sim[local], ham[local], member[local] = cos, h, is_member
    extra = {"similarity": pa.array(sim, pa.float32(), mask=~member),
             "hamming": pa.array(ham, pa.int32(), mask=~member | (ham < 0))}
    return write_cluster_shard(job, s, ids, info, "near_duplicate", extra)


def reduce(stage, job: ReduceJob, executor) -> None:
    """Run phases A-G (module docstring) on ``executor``; the summary goes to ``stage.summary``."""
    p = stage.params
    S, P = job.n_shards, job.partitions
    hash_columns = _hash_columns(p)
    storage.rmtree(job.work)
    run = executor.map_unordered
    counts = list(run(_count_task, [(job, s, bool(hash_columns)) for s in range(S)], desc=f"{stage.name} (count)",
                      total_rows=job.offsets[-1]))
    n_valid = sum(r["valid"] for r in counts)
    candidates = verified_pairs = 0
    if p.search == "auto" and n_valid >= APPROXIMATE_FROM_ROWS and have_faiss():
        log.info("%s: search: auto over %d rows is exact here (the driver reduce would use faiss's IVF index)",
                 stage.name, n_valid)
    if n_valid >= 2:
        k = max(1, min(p.k, n_valid - 1))
        list(run(_search_task, [(job, q, k, p.min_similarity, hash_columns) for q in range(S)],
                 desc=f"{stage.name} (search)", total_rows=job.offsets[-1]))
        rule = {"min_margin": p.min_margin, "accept_similarity": p.accept_similarity, "max_distance": p.max_distance}
        list(run(_verify_task, [(job, s, rule, hash_columns) for s in range(S)], desc=f"{stage.name} (verify)"))
        found = list(run(_pairs_task, [(job, q) for q in range(P)], desc=f"{stage.name} (pairs)"))
        candidates, verified_pairs = sum(r["candidates"] for r in found), sum(r["verified"] for r in found)
    cc_work = storage.join(job.work, "cc")
    connected_components(executor, storage.join(job.work, "D"), cc_work, edge_partitions=P, offsets=job.offsets,
                         partitions=partitions_for(verified_pairs, most=P), desc=f"{stage.name} (components)")
    grouped = clusters(executor, job, labels_dir(cc_work), storage.join(job.work, "F"), describe=_describe,
                       desc=f"{stage.name} (clusters)")
    list(run(_assemble_task, [(job, s) for s in range(S)], desc=f"{stage.name} (write)", total_rows=job.offsets[-1]))
    if not job.offsets[-1]:
        return  # no rows: the driver reduce does not run either
    stage.summary.update({"candidate_pairs": candidates, "verified_pairs": verified_pairs,
                          "clusters": grouped["clusters"], "near_duplicates": grouped["duplicates"],
                          "largest_cluster": grouped["largest_cluster"], "embedded": n_valid,
                          "cutoff": p.min_similarity,
                          **({"unhashed": sum(r["unhashed"] for r in counts)} if hash_columns else {})})
