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

from curate.embeddings.neighbors import auto_clusters, kmeans

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


def semantic_dedup(x: np.ndarray, *, eps: float, clusters: int | None = None, priority: np.ndarray | None = None,
                   valid: np.ndarray | None = None, by_centroid: str | None = None, seed: int = 0,
                   backend: str = "auto",
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
    centroids, assignment = kmeans(xv, k, seed=seed, backend=backend)
    cluster[rows] = assignment
    prio = np.zeros(n) if priority is None else np.asarray(priority, dtype=np.float64)
    if by_centroid is not None:
        if by_centroid not in ("central", "peripheral"):
            raise ValueError(f"by_centroid: expected 'central' or 'peripheral', got {by_centroid!r}")
        to_centre = np.einsum("ij,ij->i", xv, centroids[assignment])
        prio = np.zeros(n)
        prio[rows] = to_centre if by_centroid == "central" else -to_centre
    prio = np.where(np.isnan(prio), -np.inf, prio)
    # members of each cluster, ranked: priority descending, then row index
    order = np.lexsort((rows, -prio[rows], assignment))
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
        m = len(members)
        if m < 2:
            continue
        e = np.ascontiguousarray(x[members], dtype=np.float32)
        step = max(1, min(m, block_floats // m))
        for s in range(1, m, step):
            end = min(m, s + step)
            sims = e[s:end] @ e[:end].T  # rows s..end-1 against every item ranked before them (and themselves)
            pos = np.arange(s, end)[:, None]
            sims[np.arange(end)[None, :] >= pos] = -np.inf
            best = np.argmax(sims, axis=1)
            best_sim = sims[np.arange(end - s), best]
            nn_index[members[s:end]] = members[best]
            nn_sim[members[s:end]] = best_sim
            dup[members[s:end]] = best_sim > threshold
    # representatives: follow duplicate chains to a kept item (chains go to higher-ranked items, so they end)
    for i in np.flatnonzero(dup):
        r = nn_index[i]
        while dup[r]:
            r = nn_index[r]
        rep[i] = r
    return SemDedupResult(cluster, nn_index, nn_sim, dup, rep, int(len(groups)), int(largest))
