"""Semantic deduplication (SemDeDup, Abbas et al. 2023).

1. Spherical k-means over the embeddings (``clusters: auto`` = about sqrt(N)).
2. Inside each cluster, items are ranked by the ``keep`` priority; an item is a duplicate when its
   cosine similarity to a higher-ranked item of its cluster exceeds ``1 - eps``. It points to the kept
   representative (following chains of duplicates back to an item that is kept).

Memory: the k-means (faiss: N x D floats) plus one block of ``block x m`` similarities for the largest
cluster of m items: bounded by the largest cluster, never N x N. Time: O(sum of m^2 D) after k-means.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from curate.dedup.hashing import mix64
from curate.embeddings.neighbors import assign, auto_clusters, best_match, exact_dot, fit_centroids, kmeans

log = logging.getLogger(__name__)


@dataclass
class SemDedupResult:
    """Per row: ``cluster`` (-1 = no embedding), ``nn_index``/``nn_similarity`` (the most similar
    higher-ranked item of its cluster; -1 / NaN for the top of a cluster), ``duplicate`` (bool),
    ``representative`` (index of the kept item it stands for; -1 if kept)."""

    cluster: np.ndarray
    nn_index: np.ndarray
    nn_similarity: np.ndarray
    duplicate: np.ndarray
    representative: np.ndarray
    n_clusters: int
    largest_cluster: int


def sample_mask(rows: np.ndarray, n_valid: int, sample: int | None, *, seed: int = 0) -> np.ndarray:
    """Which of the global ``rows`` are in the k-means sample: every row when ``n_valid <= sample``
    (or ``sample`` is ``None``), else each with probability ``sample / n_valid`` decided by a hash of
    its row number and ``seed``, so any process picks the same rows from its own shard."""
    rows = np.asarray(rows, dtype=np.int64)
    if sample is None or n_valid <= sample:
        return np.ones(len(rows), dtype=bool)
    with np.errstate(over="ignore"):
        h = mix64(rows.astype(np.uint64) ^ np.uint64(mix64(np.array([seed], np.uint64))[0]))
    return (h >> np.uint64(11)).astype(np.float64) < (sample / n_valid) * float(1 << 53)


def sample_size(sample: int, k: int) -> int:
    """Rows k-means is fitted on: ``sample``, and at least 40 per centroid (faiss's recommended minimum)."""
    return max(sample, 40 * k)


def cluster_neighbours(e: np.ndarray, block_floats: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """For the ranked members ``e`` ``(m, D)`` of one cluster: the position and cosine of each member's
    most similar higher-ranked member (``-1`` / NaN for the first). Memory: ``block_floats`` floats.
    The cosines are :func:`curate.embeddings.neighbors.exact_dot` values (near ties decided by them
    too), so any batching of the work gives the same answer."""
    m = len(e)
    best_pos = np.full(m, -1, dtype=np.int64)
    best_sim = np.full(m, np.nan, dtype=np.float32)
    step = max(1, min(m, block_floats // max(m, 1)))
    for s in range(1, m, step):
        end = min(m, s + step)
        sims = e[s:end] @ e[:end].T  # rows s..end-1 against every item ranked before them (and themselves)
        pos = np.arange(s, end)[:, None]
        sims[np.arange(end)[None, :] >= pos] = -np.inf
        best = best_match(sims, e[s:end], e[:end])
        best_pos[s:end] = best
        best_sim[s:end] = exact_dot(e[s:end], e[best])
    return best_pos, best_sim


def chain_representatives(best_pos: np.ndarray, dup: np.ndarray) -> np.ndarray:
    """Position of the kept member each duplicate stands for (``-1`` for kept members), following chains
    of duplicates to higher-ranked members (``best_pos[i] < i``, so one pass in rank order does it)."""
    rep = np.full(len(dup), -1, dtype=np.int64)
    for i in np.flatnonzero(dup).tolist():
        r = int(best_pos[i])
        rep[i] = rep[r] if dup[r] else r
    return rep


def rank_order(rows: np.ndarray, prio: np.ndarray, assignment: np.ndarray) -> np.ndarray:
    """Order of ``rows`` by cluster, then priority descending (NaN last), then row."""
    prio = np.where(np.isnan(prio), -np.inf, prio)
    return np.lexsort((rows, -prio, assignment))


def centre_priority(x: np.ndarray, centroids: np.ndarray, assignment: np.ndarray, by_centroid: str) -> np.ndarray:
    """``keep: central`` / ``peripheral``: the cosine to the row's centroid, or its negation."""
    if by_centroid not in ("central", "peripheral"):
        raise ValueError(f"by_centroid: expected 'central' or 'peripheral', got {by_centroid!r}")
    to_centre = np.einsum("ij,ij->i", x, centroids[assignment]).astype(np.float64)
    return to_centre if by_centroid == "central" else -to_centre


def semantic_dedup(x: np.ndarray, *, eps: float, clusters: int | None = None, priority: np.ndarray | None = None,
                   valid: np.ndarray | None = None, by_centroid: str | None = None, seed: int = 0,
                   backend: str = "auto", sample: int | None = None,
                   block_floats: int = 1 << 24) -> SemDedupResult:
    """SemDeDup over unit rows ``x`` ``(N, D)``.

    Parameters
    ----------
    eps : float
        Pairs with cosine similarity above ``1 - eps`` are duplicates.
    clusters : int or None
        Number of k-means clusters (``None`` = :func:`auto_clusters`).
    priority : (N,) array or None
        Higher is kept first (ties: lower row index first). ``None`` = dataset order.
    valid : (N,) bool array or None
        Rows to consider (rows without an embedding are left out: cluster -1).
    by_centroid : {None, 'central', 'peripheral'}
        Instead of ``priority``, keep the item closest to (``central``) or farthest from (``peripheral``,
        the SemDeDup paper's choice) its cluster centroid.
    sample : int or None
        Fit k-means on about this many rows (:func:`sample_mask`, at least :func:`sample_size`), then
        assign every row to its nearest centroid; ``None``: fit on every row.
    block_floats : int
        Similarity block size in floats (memory per block = 4 bytes each).
    """
    n = len(x)
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    cluster = np.full(n, -1, dtype=np.int64)
    nn_index = np.full(n, -1, dtype=np.int64)
    nn_sim = np.full(n, np.nan, dtype=np.float32)
    dup = np.zeros(n, dtype=bool)
    rep = np.full(n, -1, dtype=np.int64)
    rows = np.flatnonzero(valid)
    if len(rows) == 0:
        return SemDedupResult(cluster, nn_index, nn_sim, dup, rep, 0, 0)
    xv = np.ascontiguousarray(x[rows], dtype=np.float32)
    k = clusters or auto_clusters(len(rows))
    if sample is None:
        centroids, assignment = kmeans(xv, k, seed=seed, backend=backend)
    else:
        fit = sample_mask(rows, len(rows), sample_size(sample, k), seed=seed)
        centroids = fit_centroids(xv[fit], k, seed=seed, backend=backend)
        assignment = assign(xv, centroids)
    cluster[rows] = assignment
    prio = np.zeros(n) if priority is None else np.asarray(priority, dtype=np.float64)
    if by_centroid is not None:
        prio = np.zeros(n)
        prio[rows] = centre_priority(xv, centroids, assignment, by_centroid)
    # members of each cluster, ranked: priority descending, then row index
    order = rank_order(rows, prio[rows], assignment)
    sorted_rows = rows[order]
    sorted_cl = assignment[order]
    bounds = np.flatnonzero(np.diff(sorted_cl)) + 1
    groups = np.split(sorted_rows, bounds)
    threshold = 1.0 - eps
    largest = max(len(g) for g in groups)
    log.info("semantic dedup: %d rows in %d clusters (largest %d)", len(rows), len(groups), largest)
    from tqdm import tqdm

    for members in tqdm(groups, desc="semantic dedup (clusters)", unit="cluster", leave=False,
                        disable=len(rows) < 100_000):
        if len(members) < 2:
            continue
        best_pos, best_sim = cluster_neighbours(np.ascontiguousarray(x[members], dtype=np.float32), block_floats)
        is_dup = best_sim > threshold
        chain = chain_representatives(best_pos, is_dup)
        later = members[1:]
        nn_index[later] = members[best_pos[1:]]
        nn_sim[later] = best_sim[1:]
        dup[members] = is_dup
        rep[members[is_dup]] = members[chain[is_dup]]
    return SemDedupResult(cluster, nn_index, nn_sim, dup, rep, int(len(groups)), int(largest))
