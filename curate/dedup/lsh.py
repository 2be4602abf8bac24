"""Near-duplicate clustering of MinHash signatures: LSH candidates, verification, union-find.

LSH with numpy, band by band: each row's band of ``rows`` signature values is hashed to a 64-bit
key (:func:`band_key`), rows are sorted by key, and every run of equal keys is a bucket. Buckets of
2 to :data:`MAX_ALL_PAIRS_BUCKET` rows give all their pairs, larger ones sorted-neighbourhood pairs.
The pairs are exactly those of datasketch's ``MinHashLSH`` with the same banding (a bucket is the
rows with equal band values; a 64-bit key collision only adds a candidate that verification removes),
without its per-row Python inserts; datasketch still derives the banding from the threshold.

Memory of the reduce per million documents (``num_perm=128``, threshold 0.8: 14 bands of 9 rows):
the signatures (``N x num_perm`` uint32: 0.5 GB, plus a copy while shards are concatenated), one
band's keys and sort order at a time (16 bytes per row) and the pair arrays (16 bytes per pair).

On a distributed executor the same steps split naturally: signatures are computed in the map, the
band keys ``(band, key)`` are the shuffle keys, each bucket yields candidate pairs that are verified
where the bucket lands, and components are computed from the verified pairs
(:mod:`curate.distributed.minhash`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from curate.dedup.hashing import mix64
from curate.dedup.minhash import pair_jaccard
from curate.errors import CurateError

log = logging.getLogger(__name__)

#: Buckets with more members than this give sorted-neighbourhood pairs (:func:`_neighbour_pairs`)
#: instead of all pairs, so one huge bucket (boilerplate text, a common band) stays linear.
MAX_ALL_PAIRS_BUCKET = 64
#: Default weight of missed pairs (vs false candidates) when datasketch derives bands and rows.
DEFAULT_FN_WEIGHT = 0.9


@dataclass
class PairStats:
    bands: int
    rows: int
    candidate_pairs: int
    verified_pairs: int
    large_buckets: int
    indexed: int = 0  # rows that share a band bucket with another row


def banding(threshold: float, num_perm: int, bands: int | None = None, rows: int | None = None,
            false_negative_weight: float = DEFAULT_FN_WEIGHT) -> tuple[int, int]:
    """``(bands, rows)`` for ``threshold``: given explicitly, or the banding that minimises
    ``w * (missed pairs) + (1 - w) * (false candidates)`` with ``w = false_negative_weight``, as
    datasketch's ``MinHashLSH`` derives it (the default 0.9 favours recall: verification removes the
    extra candidates; at threshold 0.8 and 128 permutations that is 14 bands of 9 rows)."""
    if bands is not None and rows is not None:
        return int(bands), int(rows)
    b, r = _optimal_banding(float(threshold), int(num_perm), round(float(false_negative_weight), 6))
    if b < 2:
        raise CurateError(f"minhash LSH: threshold {threshold} with num_perm {num_perm} gives a single band; "
                          "lower the threshold, raise num_perm or lower false_negative_weight, or set bands and rows")
    return b, r


@lru_cache(maxsize=64)
def _optimal_banding(threshold: float, num_perm: int, w: float) -> tuple[int, int]:
    """datasketch's ``_optimal_param`` (the same areas under the false-positive and false-negative
    curves, the same first minimum in (bands, rows) order), vectorised: Gauss-Legendre quadrature with
    ``num_perm // 2 + 2`` nodes is exact for these polynomials of degree ``bands * rows <= num_perm``."""
    b, r = zip(*[(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)])
    b = np.array(b, dtype=np.float64)[:, None]
    r = np.array(r, dtype=np.float64)[:, None]
    x, wts = np.polynomial.legendre.leggauss(num_perm // 2 + 2)

    def area(lo: float, hi: float, candidate: bool) -> np.ndarray:
        s = (hi - lo) / 2 * x[None, :] + (hi + lo) / 2
        p = 1 - (1 - s ** r) ** b  # probability that a pair of similarity s becomes a candidate
        return ((p if candidate else 1 - p) * wts[None, :]).sum(axis=1) * (hi - lo) / 2

    error = area(0.0, threshold, True) * round(1.0 - w, 6) + area(threshold, 1.0, False) * w
    best = int(np.argmin(error))
    return int(b[best, 0]), int(r[best, 0])


def band_key(sig: np.ndarray, idx: np.ndarray, band: int, rows: int) -> np.ndarray:
    """64-bit key of band ``band`` (columns ``band*rows .. (band+1)*rows - 1``) of the rows ``idx``.
    Equal band values give equal keys in any process (compiled kernel when numba is there, same keys)."""
    from curate.dedup import kernels

    if kernels.available():
        return kernels.band_key(np.ascontiguousarray(sig), np.asarray(idx, dtype=np.int64), int(band), int(rows))
    h = np.zeros(len(idx), dtype=np.uint64)
    for c in range(band * rows, (band + 1) * rows):
        with np.errstate(over="ignore"):
            h = mix64(h * np.uint64(0x100000001B3) ^ sig[idx, c].astype(np.uint64), inplace=True)
    return h


def _all_pairs(starts: np.ndarray, size: int) -> np.ndarray:
    """All pairs inside each run ``[s, s + size)`` of a sorted order, as positions (shape (R * C, 2))."""
    i, j = np.triu_indices(size, 1)
    return np.stack([(starts[:, None] + i).ravel(), (starts[:, None] + j).ravel()], axis=1)


def bucket_pairs(keys: np.ndarray, members: np.ndarray, sig: np.ndarray) -> tuple[np.ndarray, int]:
    """Candidate pairs of rows that share a key: all pairs of buckets up to
    :data:`MAX_ALL_PAIRS_BUCKET` rows, sorted-neighbourhood pairs of larger ones.

    ``keys`` (uint64) and ``members`` (int64 row indices into ``sig``) are aligned. Returns row pairs
    (shape (P, 2), unordered, may repeat) and the number of large buckets."""
    order = np.argsort(keys, kind="stable")
    ks = keys[order]
    if len(ks) < 2:
        return np.zeros((0, 2), dtype=np.int64), 0
    new = np.ones(len(ks), dtype=bool)
    new[1:] = ks[1:] != ks[:-1]
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, len(ks)))
    out = []
    large = 0
    for size in np.unique(sizes[sizes >= 2]).tolist():
        at = starts[sizes == size]
        if size <= MAX_ALL_PAIRS_BUCKET:
            out.append(members[order[_all_pairs(at, size)]])
        else:
            for s in at.tolist():
                large += 1
                out.append(np.array(_neighbour_pairs(members[order[s:s + size]].tolist(), sig), dtype=np.int64).reshape(-1, 2))
    if not out:
        return np.zeros((0, 2), dtype=np.int64), large
    return np.concatenate(out), large


def _neighbour_pairs(members: list[int], sig: np.ndarray, window: int = 8) -> list[tuple[int, int]]:
    """Candidate pairs of a large bucket, in linear time: sort its members by their whole signature and
    pair each with the next ``window`` members (near duplicates agree on most positions, so they sort
    close together; identical signatures are adjacent and chain into one cluster)."""
    m = np.asarray(sorted(members), dtype=np.int64)
    order = m[np.lexsort(sig[m].T[::-1])]
    out = []
    for step in range(1, min(window, len(order) - 1) + 1):
        out.extend(zip(order[:-step].tolist(), order[step:].tolist()))
    return out


def similar_pairs(sig: np.ndarray, valid: np.ndarray, *, threshold: float, bands: int | None = None,
                  rows: int | None = None, verify: bool = True,
                  false_negative_weight: float = DEFAULT_FN_WEIGHT,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, PairStats]:
    """Pairs of rows whose signatures are near duplicates.

    Parameters
    ----------
    sig : ndarray of uint32, shape (N, num_perm)
    valid : ndarray of bool, shape (N,)
        Rows to index (documents without shingles are left out).
    threshold : float
        Jaccard threshold of the LSH (and of the verification).
    bands, rows : int, optional
        Explicit LSH banding; derived from ``threshold`` and ``num_perm`` by datasketch otherwise.
    false_negative_weight : float
        How datasketch weighs missed pairs against false candidates when it derives the banding.
    verify : bool
        Keep only candidate pairs whose estimated Jaccard is at least ``threshold`` (removes LSH false
        positives). Without it every pair sharing a bucket is returned.

    Returns
    -------
    a, b : ndarray of int64, shape (P,)
        Row pairs with ``a < b``.
    sim : ndarray of float32, shape (P,)
        Estimated Jaccard of each pair.
    stats : PairStats
    """
    from tqdm.auto import tqdm

    n, k = sig.shape
    b_, r_ = banding(threshold, k, bands, rows, false_negative_weight)
    idx = np.flatnonzero(valid).astype(np.int64)
    parts, large = [], 0
    for band in tqdm(range(b_), desc="minhash lsh", unit="band", disable=not progress, mininterval=1.0):
        p_, lg = bucket_pairs(band_key(sig, idx, band, r_), idx, sig)
        parts.append(p_)
        large += lg
    pairs = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)
    indexed = len(np.unique(pairs)) if len(pairs) else 0
    a, b = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    uniq = np.unique(a * n + b)
    a, b = uniq // n, uniq % n
    sim = pair_jaccard(sig, a, b)
    n_candidates = len(a)
    if verify:
        ok = sim >= threshold
        a, b, sim = a[ok], b[ok], sim[ok]
    stats = PairStats(bands=b_, rows=r_, candidate_pairs=n_candidates, verified_pairs=len(a),
                      large_buckets=large, indexed=indexed)
    log.info("minhash lsh: %d candidate pairs, %d kept (bands=%d, rows=%d)", n_candidates, len(a), stats.bands, stats.rows)
    return a, b, sim, stats
