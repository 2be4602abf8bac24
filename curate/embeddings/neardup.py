"""Near-duplicate image pairs from embeddings: nearest-neighbour candidates, then a verification step.

An image embedding puts a crop, a re-encode or a recolouring of a photo next to the original, but it
also puts different photos of the same kind of thing close together (two red cars, two handwritten
sevens), so cosine alone either misses edited copies or merges look-alikes. A candidate pair is one of
each image's ``k`` nearest neighbours (exact search for small sets, a faiss IVF index beyond, see
:func:`curate.embeddings.neighbors.knn`) with cosine >= ``min_similarity``. It is a duplicate when

* it stands out from the neighbourhood: its cosine exceeds the ``k``-th neighbour's similarity (of the
  less crowded of the two images) by ``min_margin``, so that in a dense region of look-alikes (digits,
  icons, tiny images) only pairs far closer than the crowd are taken (a ratio test, as in matching local
  features), and
* the pixels agree: the perceptual-hash (phash) distance is within ``max_distance`` bits (optionally also
  against the mirrored image), or the cosine is at least ``accept_similarity``.

``benchmarks/dedup_cifair_embeddings.py`` measures each choice on ciFAIR's human-judged CIFAR-10 pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class NearPairs:
    """Verified pairs ``(a[i], b[i])`` (row indices, ``a < b``) with their cosine, margin over the
    neighbourhood and hash distance (-1 without hashes)."""

    a: np.ndarray
    b: np.ndarray
    cosine: np.ndarray
    margin: np.ndarray
    hamming: np.ndarray
    candidates: int  # candidate pairs before verification


def candidate_pairs(x: np.ndarray, valid: np.ndarray, *, k: int, min_similarity: float,
                    search: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unique pairs ``a < b`` among each valid row's ``k`` nearest neighbours with cosine >= ``min_similarity``.

    ``x`` holds unit rows ``(N, D)``; rows where ``valid`` is false take no part. Returns ``(a, b, cosine,
    margin)``, margin = cosine - the smaller of the two rows' ``k``-th neighbour similarities."""
    from curate.embeddings.neighbors import knn

    rows = np.flatnonzero(valid)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))
    if len(rows) < 2:
        return empty
    sims, idx = knn(x[rows], min(k, len(rows) - 1), search=search)
    kth = sims[:, -1]
    keep = (sims >= min_similarity).ravel()
    src = np.repeat(np.arange(len(rows)), idx.shape[1])[keep]
    dst = idx.ravel()[keep]
    cos = sims.ravel()[keep]
    if not len(src):
        return empty
    margin = margins(cos, kth[src], kth[dst])
    a, b = rows[np.minimum(src, dst)], rows[np.maximum(src, dst)]
    order = np.lexsort((b, a))
    a, b, cos, margin = a[order], b[order], cos[order], margin[order]
    first = np.ones(len(a), dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[first], b[first], cos[first].astype(np.float32), margin[first].astype(np.float32)


def margins(cos: np.ndarray, kth_a: np.ndarray, kth_b: np.ndarray) -> np.ndarray:
    """How far each pair's cosine stands out from its neighbourhood: ``cos`` minus the smaller of the two
    rows' ``k``-th neighbour similarities (float32, as the kNN search returns them)."""
    return np.asarray(cos, np.float32) - np.minimum(np.asarray(kth_a, np.float32), np.asarray(kth_b, np.float32))


def near_duplicate_pairs(x: np.ndarray, valid: np.ndarray, hashes: np.ndarray | None, hashed: np.ndarray | None, *,
                         k: int, min_similarity: float, min_margin: float, accept_similarity: float,
                         max_distance: int | None, mirrored: np.ndarray | None = None,
                         search: str = "auto") -> NearPairs:
    """Candidates (:func:`candidate_pairs`) with margin >= ``min_margin`` that the pixels confirm
    (:func:`verify_pairs`).

    ``hashes``: packed phash bits ``(N, bytes)``, ``hashed`` marks rows that have one; ``mirrored``
    (optional) the hashes of the mirrored images, so a mirrored copy verifies too. A pair is kept when
    its Hamming distance is <= ``max_distance`` or its cosine >= ``accept_similarity``. Without
    hashes the margin and cosine decide alone."""
    a, b, cos, margin = candidate_pairs(x, valid, k=k, min_similarity=min_similarity, search=search)
    dist = pair_distances(a, b, hashes, hashed, mirrored)
    return verify_pairs(a, b, cos, margin, dist, min_margin=min_margin, accept_similarity=accept_similarity,
                        max_distance=max_distance)


def pair_distances(a: np.ndarray, b: np.ndarray, hashes: np.ndarray | None, hashed: np.ndarray | None,
                   mirrored: np.ndarray | None = None) -> np.ndarray | None:
    """phash Hamming distance of each pair (the smaller of plain and mirrored with ``mirrored``), -1 where
    a row has no hash; ``None`` without hashes."""
    from curate.dedup.phash import hamming

    if hashes is None:
        return None
    dist = np.full(len(a), -1, dtype=np.int32)
    both = hashed[a] & hashed[b]
    dist[both] = hamming(hashes[a[both]], hashes[b[both]])
    if mirrored is not None:
        dist[both] = np.minimum(dist[both], hamming(mirrored[a[both]], hashes[b[both]]))
    return dist


def verify_pairs(a: np.ndarray, b: np.ndarray, cos: np.ndarray, margin: np.ndarray, dist: np.ndarray | None, *,
                 min_margin: float, accept_similarity: float, max_distance: int | None) -> NearPairs:
    """The candidate pairs that pass the margin and the pixel check (``dist`` from :func:`pair_distances`;
    ``None``: the margin and cosine decide alone). Cheap, so several settings can be tried on one search."""
    ok = verified(cos, margin, dist, min_margin=min_margin, accept_similarity=accept_similarity,
                  max_distance=max_distance)
    if dist is None:
        dist = np.full(len(a), -1, dtype=np.int32)
    return NearPairs(a[ok], b[ok], cos[ok], margin[ok], dist[ok], len(a))


def verified(cos: np.ndarray, margin: np.ndarray, dist: np.ndarray | None, *, min_margin: float,
             accept_similarity: float, max_distance: int | None) -> np.ndarray:
    """Which candidate pairs pass (:func:`verify_pairs`' rule, as a mask)."""
    ok = margin >= min_margin
    if dist is not None:
        ok &= (cos >= accept_similarity) | ((dist >= 0) & (dist <= max_distance))
    return ok
