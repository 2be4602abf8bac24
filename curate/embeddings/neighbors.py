"""k-means and k-nearest-neighbours over L2-normalised embeddings (cosine similarity = dot product).

Uses faiss where it is installed (``pip install faiss-cpu``) and falls back to scikit-learn / blocked
numpy otherwise; both give the same results up to k-means initialisation. Memory is bounded by
``block`` rows at a time, never N x N.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from curate.errors import CurateError

log = logging.getLogger(__name__)


def have_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def auto_clusters(n: int) -> int:
    """``clusters: auto``: about sqrt(N) clusters (so the largest pairwise block stays small)."""
    return max(1, min(n, int(round(math.sqrt(n)))))


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


#: Similarities computed with float32 BLAS closer than this to a row's best are recomputed exactly
#: (:func:`exact_dot`): float32 matrix products round differently with the matrix shape and the number
#: of threads, and the distributed reduces must pick the same neighbour as the local ones.
NEAR_TIE = 1e-4


def exact_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products ``a[i] . b[i]`` in float64 with a fixed summation order (numpy's
    sum-of-products loop, no BLAS): the same value for the same pair in any process, batch or shape."""
    return np.einsum("ij,ij->i", np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def best_match(sims: np.ndarray, queries: np.ndarray, base: np.ndarray) -> np.ndarray:
    """The column of the most similar ``base`` row of each query, given approximate similarities
    ``sims`` ``(Q, B)`` (``-inf`` = not a candidate): candidates within :data:`NEAR_TIE` of a row's best
    are compared with :func:`exact_dot`; exact ties go to the lowest column."""
    best = np.argmax(sims, axis=1)
    top = sims[np.arange(len(sims)), best]
    near = sims >= (top - NEAR_TIE)[:, None]
    for i in np.flatnonzero(near.sum(axis=1) > 1).tolist():
        cols = np.flatnonzero(near[i])
        exact = exact_dot(np.broadcast_to(queries[i], (len(cols), queries.shape[1])), base[cols])
        best[i] = cols[int(np.argmax(exact))]  # argmax: the first of equal values
    return best


def assign(x: np.ndarray, centroids: np.ndarray, *, block: int = 65536) -> np.ndarray:
    """Index of the most similar centroid of every row (near ties decided exactly: :func:`best_match`)."""
    out = np.empty(len(x), dtype=np.int64)
    for s in range(0, len(x), block):
        out[s:s + block] = best_match(x[s:s + block] @ centroids.T, x[s:s + block], centroids)
    return out


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, niter: int = 20, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means of unit rows ``x`` ``(N, D)``.

    Returns ``(centroids (k, D) unit rows, assignment (N,) int64)``. ``backend`` is ``auto`` (faiss if
    installed, else scikit-learn), ``faiss`` or ``sklearn``. faiss trains on at most 256 points per
    centroid (a sample) and then assigns every row."""
    centroids = fit_centroids(x, k, seed=seed, niter=niter, backend=backend)
    if len(centroids) == 1:
        return centroids, np.zeros(len(x), dtype=np.int64)
    return centroids, assign(x, centroids)


def fit_centroids(x: np.ndarray, k: int, *, seed: int = 0, niter: int = 20, backend: str = "auto") -> np.ndarray:
    """The ``min(k, N)`` unit centroids of spherical k-means over unit rows ``x`` (see :func:`kmeans`)."""
    n, d = x.shape
    k = max(1, min(k, n))
    if k == 1:
        return normalise(x.mean(axis=0, keepdims=True))
    use_faiss = backend == "faiss" or (backend == "auto" and have_faiss())
    if use_faiss:
        import faiss

        km = faiss.Kmeans(d, k, niter=niter, seed=seed, spherical=True, verbose=False, max_points_per_centroid=256,
                          min_points_per_centroid=1)
        km.train(np.ascontiguousarray(x, dtype=np.float32))
        return normalise(km.centroids)
    from curate.errors import require

    cluster = require("sklearn.cluster", "clip", "k-means (scikit-learn; or install faiss-cpu)")
    if n > 20000:
        km = cluster.MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1, batch_size=4096, max_iter=niter)
    else:
        km = cluster.KMeans(n_clusters=k, random_state=seed, n_init=1, max_iter=niter)
    km.fit(x)
    return normalise(km.cluster_centers_)


#: Above this many rows, ``knn(search="auto")`` uses an approximate faiss index (when faiss is installed).
APPROXIMATE_FROM_ROWS = 200_000


def _ivf_search(x: np.ndarray, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Approximate kNN with a faiss inverted-file index (inner product): ``4 sqrt(N)`` lists, trained on
    at most 64 points per list, 32 lists probed per query. O(N sqrt(N) D / 30) time instead of O(N^2 D)."""
    import faiss

    n, d = x.shape
    nlist = max(1, int(4 * np.sqrt(n)))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(n, size=min(n, 64 * nlist), replace=False)] if n > 64 * nlist else x
    index.train(sample)
    index.add(x)
    index.nprobe = min(nlist, 32)
    sims, idx = index.search(x, k + 1)
    missing = idx < 0  # a query whose probed lists hold fewer than k + 1 rows
    if missing.any():
        sims[missing], idx[missing] = -np.inf, 0
    return sims, idx


def knn(x: np.ndarray, k: int, *, backend: str = "auto", block: int = 4096,
        search: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of every row of unit rows ``x`` (cosine).

    Returns ``(similarities (N, k) float32, indices (N, k) int64)``, most similar first; a row is never
    its own neighbour (duplicates of it are). ``search``: ``exact`` costs O(N^2 D) time, O(block * N)
    memory; ``approximate`` uses a faiss IVF index (needs faiss); ``auto`` is approximate from
    ``APPROXIMATE_FROM_ROWS`` rows when faiss is installed, else exact."""
    n = len(x)
    k = max(1, min(k, n - 1))
    x = np.ascontiguousarray(x, dtype=np.float32)
    use_faiss = backend == "faiss" or (backend == "auto" and have_faiss())
    approximate = search == "approximate" or (search == "auto" and use_faiss and n >= APPROXIMATE_FROM_ROWS)
    if approximate:
        if not have_faiss():
            raise CurateError("search: approximate nearest neighbours need faiss; pip install faiss-cpu (or search: exact)")
        sims, idx = _ivf_search(x, k)
    else:
        sims, idx = exact_neighbours(x, x, np.arange(n), k + 1, use_faiss=use_faiss, block=block)
    return drop_self(sims, idx, np.arange(n))


#: Extra candidates :func:`exact_neighbours` takes from the float32 search before ranking them exactly.
CANDIDATE_MARGIN = 4


def exact_neighbours(queries: np.ndarray, base: np.ndarray, base_ids: np.ndarray, k: int, *, use_faiss: bool,
                     block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``base`` most similar to each query, by similarities that do not depend on how
    the rows are batched: :func:`top_k` (float32) proposes ``k +`` :data:`CANDIDATE_MARGIN` candidates,
    :func:`exact_dot` scores them, ties go to the lower id. Returns ``(similarities (Q, k') float32,
    base_ids of the neighbours (Q, k'))``, ``k' = min(k, len(base))``; the same as searching the union
    of several bases and merging with :func:`merge_neighbours`."""
    sims, idx = top_k(queries, base, k + CANDIDATE_MARGIN, use_faiss=use_faiss, block=block)
    exact = np.empty(idx.shape, dtype=np.float32)
    step = max(1, 4096 // max(1, idx.shape[1]))  # queries per exact_dot batch: 4,096 pairs
    for s in range(0, len(queries), step):
        part = idx[s:s + step]
        q = np.repeat(np.arange(s, s + len(part)), part.shape[1])
        exact[s:s + step] = exact_dot(queries[q], base[part.reshape(-1)]).reshape(part.shape)
    return merge_neighbours(exact, np.asarray(base_ids)[idx], k)


def merge_neighbours(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of candidate columns ``(Q, C)``: highest similarity first, ties to the lower id."""
    order = np.lexsort((ids, -sims), axis=1)[:, :k] if sims.size else np.zeros((len(sims), 0), np.int64)
    return np.take_along_axis(sims, order, axis=1), np.take_along_axis(ids, order, axis=1)


def top_k(queries: np.ndarray, base: np.ndarray, k: int, *, use_faiss: bool, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``base`` most similar to each query (inner product, exact), most similar first:
    ``(similarities (Q, k') float32, indices (Q, k') int64)`` with ``k' = min(k, len(base))``. faiss
    ``IndexFlatIP`` or blocked numpy."""
    k = min(k, len(base))
    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if use_faiss:
        import faiss

        index = faiss.IndexFlatIP(base.shape[1])
        index.add(base)
        return index.search(queries, k)
    sims = np.empty((len(queries), k), dtype=np.float32)
    idx = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), block):
        block_sims = queries[s:s + block] @ base.T
        part = np.argpartition(-block_sims, k - 1, axis=1)[:, :k]
        ps = np.take_along_axis(block_sims, part, axis=1)
        order = np.argsort(-ps, axis=1)
        idx[s:s + block] = np.take_along_axis(part, order, axis=1)
        sims[s:s + block] = np.take_along_axis(ps, order, axis=1)
    return sims, idx


def drop_self(sims: np.ndarray, idx: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``k + 1`` neighbours per query to ``k``: drop the query's own row ``rows[i]`` (or, if duplicates of it
    hid it, the last neighbour)."""
    n, k = len(idx), idx.shape[1] - 1
    is_self = idx == np.asarray(rows)[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones_like(is_self)
    keep[np.arange(n), drop] = False
    return sims[keep].reshape(n, k), idx[keep].reshape(n, k)
