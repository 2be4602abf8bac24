"""``outliers``' reduce as shard tasks: kNN by shards of an index, global cut-offs by radix passes.

The index is sharded as the data is: map shard ``j`` is index shard ``j`` (``S`` shards, ``D``
dimensions, ``k`` neighbours).

A. **count** (one task per map shard): rows with an embedding.
B. **search** (one task per query shard ``q``): the unit embeddings of shard ``q`` are searched in
   every index shard ``j`` in turn (faiss ``IndexFlatIP`` or blocked numpy proposes candidates, which
   are ranked by batch-independent similarities, as the local exact search does:
   :func:`curate.embeddings.neighbors.exact_neighbours`; only the candidates that can reach the
   ``k + 1`` best, by a float32 bound, are ranked: :func:`shard_neighbours`); the ``k + 1`` best
   overall are kept, the row itself dropped as locally
   (:func:`curate.embeddings.neighbors.drop_self`), and the mean cosine distance written per row. Every task reads every shard twice: ``2 S`` reads of the
   whole embedding matrix in all, ``O(N^2 D)`` work spread over the tasks; task memory is two shards.
C. **cut-offs** (:func:`curate.distributed.select.select`, two 16-bit radix passes): the score of the
   ``m``-th highest row for ``flag_top_fraction`` (ties to the earliest rows, as locally), and the median
   and 99th percentile of the summary, exactly. Then how many of the rows tied at the cut each shard
   flags (earliest shards first).
D. **assemble** (one task per map shard): flags and details.

Driver memory: 65,536 counts per rank and pass (five ranks) and ``S`` counts. The scores equal the local ``search:
exact`` ones and the flags and summary follow from them; with ``search: approximate`` (or ``auto``
from 200,000 rows) the local reduce uses an IVF index instead, so the distributed path (always
exact) finds the true neighbours where the local one may miss some.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate import storage
from curate.distributed.select import digit_counts, select, unsortable
from curate.distributed.shuffle import ReduceJob
from curate.distributed.vectors import count_task, one_thread, read_embeddings
from curate.embeddings.neighbors import (CANDIDATE_MARGIN, NEAR_TIE, drop_self, exact_dot, have_faiss,
                                         merge_neighbours, top_k)
from curate.rundir import shard_name


def shard_neighbours(job: ReduceJob, q: int, xq: np.ndarray, rows: np.ndarray, column: str,
                     k: int) -> tuple[np.ndarray, np.ndarray]:
    """Phase B's search for the rows of map shard ``q`` (unit embeddings ``xq`` of its local ``rows``,
    :func:`curate.distributed.vectors.read_embeddings`). Returns ``(similarities (Q, k) float32, global
    rows (Q, k))``, as the local exact :func:`curate.embeddings.neighbors.knn` over all rows. Call it in
    a task with one thread (:func:`curate.distributed.vectors.one_thread`).

    Two passes over the index shards: the float32 search (:func:`~curate.embeddings.neighbors.top_k`)
    proposes ``k + 1 +`` :data:`~curate.embeddings.neighbors.CANDIDATE_MARGIN` candidates per shard
    (as :func:`~curate.embeddings.neighbors.exact_neighbours` does); only those within ``2 NEAR_TIE`` of
    a query's ``(k + 1)``-th best float32 similarity over all shards can be among its ``k + 1`` best
    (float32 errors are far below :data:`~curate.embeddings.neighbors.NEAR_TIE`), so only they are
    scored by :func:`~curate.embeddings.neighbors.exact_dot` in the second pass, merged (ties to the
    lower row) and the row itself dropped: the result of reranking every shard's candidates, at the
    cost of about one shard's reranking."""
    use_faiss = have_faiss()
    proposed = []  # per index shard: (shard, float32 similarities (Q, c), local indices (Q, c))
    for j in range(job.n_shards):
        _, xj, rows_j = read_embeddings(job, j, column) if j != q else (None, xq, rows)
        if len(rows_j):
            proposed.append((j, *top_k(xq, xj, k + 1 + CANDIDATE_MARGIN, use_faiss=use_faiss)))
    everything = np.concatenate([sims for _, sims, _ in proposed], axis=1)
    kk = min(k + 1, everything.shape[1])
    bound = -np.partition(-everything, kk - 1, axis=1)[:, kk - 1] - 2 * NEAR_TIE
    best_s = np.full((len(rows), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(rows), 0), dtype=np.int64)
    for j, sims, idx in proposed:
        _, xj, rows_j = read_embeddings(job, j, column) if j != q else (None, xq, rows)
        qi, ci = np.nonzero(sims >= bound[:, None])
        exact = np.full(sims.shape, -np.inf, dtype=np.float32)
        for s in range(0, len(qi), 4096):
            qs, cs = qi[s:s + 4096], ci[s:s + 4096]
            exact[qs, cs] = exact_dot(xq[qs], xj[idx[qs, cs]])
        best_s, best_i = merge_neighbours(np.concatenate([best_s, exact], axis=1),
                                          np.concatenate([best_i, rows_j[idx] + job.offsets[j]], axis=1), k + 1)
    return drop_self(best_s, best_i, rows + job.offsets[q])


@one_thread
def _search_task(arg) -> dict:
    job, q, column, k = arg
    t, xq, rows = read_embeddings(job, q, column)
    scores = np.full(t.num_rows, np.nan, dtype=np.float32)
    if len(rows):
        sims, _ = shard_neighbours(job, q, xq, rows, column, k)
        scores[rows] = (1.0 - sims).mean(axis=1)
    storage.write_table(pa.table({"score": scores}), storage.join(job.work, "B", f"{q:05d}.parquet"), compression="lz4")
    return {"rows": t.num_rows}


def _scores(job: ReduceJob, s: int) -> np.ndarray:
    return storage.read_table(storage.join(job.work, "B", f"{s:05d}.parquet")).column("score").to_numpy()


def _counts_task(arg) -> dict:
    job, s, queries, shift = arg
    return {"counts": digit_counts([_scores(job, s)], queries, shift)}


def _ties_task(arg) -> dict:
    job, s, cut = arg
    return {"shard": s, "ties": int(np.sum(_scores(job, s) == cut))}


def _assemble_task(arg) -> dict:
    job, s, cut, take_ties, rule, k_eff = arg
    from curate.runner import _instantiate, finalize
    from curate.stages.base import flag_table

    stage = _instantiate(job.stage_name, job.stage_module, job.params, job.ctx, job.key)
    ids = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["id"]).column("id")
    scores = _scores(job, s)
    if cut is None:
        out = np.zeros(len(scores), dtype=bool)
    elif stage.params.threshold is not None:
        out = np.nan_to_num(scores, nan=-np.inf) > cut
    else:
        out = np.nan_to_num(scores, nan=-np.inf) > cut
        out[np.flatnonzero(scores == cut)[:take_ties]] = True
    flags = ["outlier" if f else None for f in out.tolist()]
    details = [f"mean cosine distance to its {k_eff} nearest neighbours {v:.3f}, {rule}" if f else None
               for v, f in zip(scores.tolist(), out.tolist())]
    table = flag_table({"knn_distance": pa.array(scores, mask=np.isnan(scores))}, flags, details, stage.output_schema())
    storage.write_table(finalize(stage, ids, table), storage.join(job.stage_dir, shard_name(s)))
    return {"rows": len(ids), "flagged": int(out.sum())}


def reduce(stage, job: ReduceJob, executor) -> None:
    """Run phases A-D (module docstring) on ``executor``; the summary goes to ``stage.summary``."""
    p = stage.params
    column = p.embedding_column()
    S = job.n_shards
    storage.rmtree(job.work)
    run = executor.map_unordered
    n_valid = sum(r["valid"] for r in run(count_task, [(job, s, column) for s in range(S)],
                                          desc=f"{stage.name} (count)", total_rows=job.offsets[-1]))
    k_eff = max(1, min(p.k, n_valid - 1))
    if n_valid >= 2:
        list(run(_search_task, [(job, q, column, k_eff) for q in range(S)], desc=f"{stage.name} (search)",
                 total_rows=job.offsets[-1]))
    else:
        for s in range(S):  # fewer than two embeddings: no neighbours, every score missing
            n = job.offsets[s + 1] - job.offsets[s]
            storage.write_table(pa.table({"score": np.full(n, np.nan, np.float32)}),
                                storage.join(job.work, "B", f"{s:05d}.parquet"))
    cut, take_ties, rule = None, [0] * S, ""
    summary = {}
    if n_valid >= 2:
        def passes(queries, shift):
            return (r["counts"] for r in run(_counts_task, [(job, s, queries, shift) for s in range(S)],
                                             desc=f"{stage.name} (cut-offs)"))

        top = p.flag_top_fraction if p.threshold is None else None
        m = max(1, int(round(top * n_valid))) if top else 0
        q99 = 0.99 * (n_valid - 1)
        ranks = [(n_valid - 1) // 2, n_valid // 2, int(np.floor(q99)), min(n_valid - 1, int(np.floor(q99)) + 1)]
        if m:
            ranks.append(n_valid - m)
        found = select(passes, ranks, [0] * len(ranks))  # every valid row has a score
        values = unsortable(np.array([key for key, _, _ in found], np.uint32))
        above = np.array([n_valid - below - equal for _, below, equal in found], dtype=np.int64)
        median = float(np.median(values[:2] if n_valid % 2 == 0 else values[:1]))
        p99 = float(np.quantile(values[2:4], q99 - np.floor(q99)))
        if p.threshold is not None:
            cut, rule = p.threshold, f"> threshold {p.threshold:.3f}"
        elif m:
            cut = float(values[4])
            rule = f"top {p.flag_top_fraction:.1%} (>= {cut:.3f})"
            remaining = m - int(above[4])  # rows tied at the cut that are flagged, earliest first
            ties = sorted(run(_ties_task, [(job, s, np.float32(cut)) for s in range(S)], desc=f"{stage.name} (ties)"),
                          key=lambda r: r["shard"])
            for r in ties:
                take_ties[r["shard"]] = min(remaining, r["ties"])
                remaining -= take_ties[r["shard"]]
        summary = {"k": k_eff, "distance_median": round(median, 4), "distance_p99": round(p99, 4)}
    flagged = sum(r["flagged"] for r in run(_assemble_task, [(job, s, cut, take_ties[s], rule, k_eff) for s in range(S)],
                                            desc=f"{stage.name} (write)", total_rows=job.offsets[-1]))
    if summary:
        stage.summary.update({"k": summary["k"], "flagged": flagged, "distance_median": summary["distance_median"],
                              "distance_p99": summary["distance_p99"]})
