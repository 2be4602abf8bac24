"""kNN outlier scores: the mean cosine distance of each item to its k nearest neighbours.

Exact search (faiss ``IndexFlatIP`` or blocked numpy): O(N^2 D) time and O(N D + block N) memory, fine
to a few hundred thousand rows on one machine. From 200,000 rows (``search: auto``) a faiss IVF index is
used instead: 4 sqrt(N) lists, 32 probed, so about N sqrt(N) D / 30 operations.
"""

from __future__ import annotations

import numpy as np

from curate.embeddings.neighbors import knn


def knn_distance(x: np.ndarray, k: int, *, valid: np.ndarray | None = None, backend: str = "auto",
                 search: str = "auto") -> np.ndarray:
    """Mean cosine distance (1 - similarity) to the ``k`` nearest other valid rows; NaN for invalid rows.
    ``search``: exact, approximate (faiss IVF) or auto (see :func:`curate.embeddings.neighbors.knn`)."""
    n = len(x)
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    out = np.full(n, np.nan, dtype=np.float32)
    rows = np.flatnonzero(valid)
    if len(rows) < 2:
        return out
    sims, _ = knn(x[rows], k, backend=backend, search=search)
    out[rows] = (1.0 - sims).mean(axis=1)
    return out


def flag_outliers(scores: np.ndarray, *, top_fraction: float | None, threshold: float | None) -> np.ndarray:
    """Bool mask of outliers: score above ``threshold``, else the ``top_fraction`` highest scores
    (at least one row when the fraction is positive). NaN scores are never outliers."""
    ok = ~np.isnan(scores)
    if threshold is not None:
        return ok & (np.nan_to_num(scores, nan=-np.inf) > threshold)
    if not top_fraction or not ok.any():
        return np.zeros(len(scores), dtype=bool)
    m = max(1, int(round(top_fraction * ok.sum())))
    valid_idx = np.flatnonzero(ok)
    top = valid_idx[np.argsort(-scores[valid_idx], kind="stable")[:m]]
    mask = np.zeros(len(scores), dtype=bool)
    mask[top] = True
    return mask
