"""Near-duplicate clustering of MinHash signatures: LSH candidates, verification, union-find.

Memory of the reduce per million documents (``num_perm=128``, threshold 0.8: 14 bands of 9 rows):
the signatures (``N x num_perm`` uint32: 0.5 GB, plus a copy while shards are concatenated), the
numpy band pre-pass (8 bytes per row and band, one band at a time), datasketch's in-memory
``MinHashLSH`` for the rows that share a band bucket with another row (about 5 KB per indexed row at 14 bands, measured;
band keys are shrunk to Python ints with ``hashfunc``) and the pair arrays (16 bytes per pair).
Measured on 1M IMDB-derived rows with 10% near duplicates: 2.9 GiB peak RSS for the whole
``curate run`` (main process and two workers); see ``docs/benchmarks/dedup.md``.

On a distributed executor the same steps split naturally: signatures are computed in the map, the
band keys ``(band, hash of the band's rows)`` are the shuffle keys (a group-by), each bucket yields
candidate pairs that are verified where the bucket lands, and only the verified pairs travel to one
place for :func:`curate.dedup.unionfind.components`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from curate.dedup.minhash import pair_jaccard
from curate.errors import require

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
    indexed: int = 0


def _band_key(band: bytes) -> int:
    """Band key for datasketch's dict storage: a Python int instead of a ``4 * rows``-byte string
    (the LSH lives in one process, so Python's per-process string hash is enough; a collision only
    adds a candidate pair, which verification removes)."""
    return hash(band)


def make_lsh(threshold: float, num_perm: int, bands: int | None = None, rows: int | None = None,
             false_negative_weight: float = DEFAULT_FN_WEIGHT):
    """A datasketch ``MinHashLSH`` for ``threshold``: bands and rows given explicitly, or derived by
    datasketch so as to minimise ``w * (missed pairs) + (1 - w) * (false candidates)`` with
    ``w = false_negative_weight`` (the default 0.9 favours recall: verification removes the extra
    candidates; at threshold 0.8 and 128 permutations that is 14 bands of 9 rows)."""
    datasketch = require("datasketch", "dedup", "minhash_dedup")
    params = (bands, rows) if bands is not None and rows is not None else None
    w = float(false_negative_weight)
    return datasketch.MinHashLSH(threshold=threshold, num_perm=num_perm, params=params, hashfunc=_band_key,
                                 weights=(round(1.0 - w, 6), round(w, 6)))


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


def shared_band_mask(sig: np.ndarray, valid: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Rows that share at least one band with another valid row (numpy pre-pass).

    A row alone in every band bucket can never be an LSH candidate, so only the other rows need to
    go into the ``MinHashLSH`` index; on typical data that is a small fraction, which keeps the index's
    memory and insert time down. Band values are hashed to 64 bits here; a collision only lets an
    extra row through."""
    from curate.dedup.hashing import mix64

    shared = np.zeros(len(sig), dtype=bool)
    idx = np.flatnonzero(valid)
    for band in range(bands):
        h = np.zeros(len(idx), dtype=np.uint64)
        for c in range(band * rows, (band + 1) * rows):
            with np.errstate(over="ignore"):
                h = mix64(h * np.uint64(0x100000001B3) ^ sig[idx, c].astype(np.uint64), inplace=True)
        order = np.argsort(h, kind="stable")
        hs = h[order]
        dup = np.zeros(len(hs), dtype=bool)
        same = hs[1:] == hs[:-1]
        dup[1:] |= same
        dup[:-1] |= same
        shared[idx[order[dup]]] = True
    return shared


def similar_pairs(sig: np.ndarray, valid: np.ndarray, *, threshold: float, bands: int | None = None,
                  rows: int | None = None, verify: bool = True, seed: int = 1,
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
    datasketch = require("datasketch", "dedup", "minhash_dedup")
    from tqdm.auto import tqdm

    n, k = sig.shape
    lsh = make_lsh(threshold, k, bands, rows, false_negative_weight)
    idx = np.flatnonzero(shared_band_mask(sig, valid, lsh.b, lsh.r))
    log.info("minhash lsh: %d of %d rows share a band bucket with another row", len(idx), int(valid.sum()))
    for i in tqdm(idx.tolist(), desc="minhash lsh", unit="doc", disable=not progress, mininterval=1.0):
        lsh.insert(i, datasketch.LeanMinHash(seed=seed, hashvalues=sig[i], scheme="affine32"),
                   check_duplication=False)
    pairs: list[tuple[int, int]] = []
    large = 0
    for table in lsh.hashtables:
        for key in table.keys():
            members = table.get(key)
            g = len(members)
            if g < 2:
                continue
            if g == 2:
                pairs.append(tuple(members))
            elif g <= MAX_ALL_PAIRS_BUCKET:
                pairs.extend(combinations(members, 2))
            else:
                large += 1
                pairs.extend(_neighbour_pairs(list(members), sig))
    b_, r_ = lsh.b, lsh.r
    del lsh
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    a, b = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    uniq = np.unique(a * n + b)
    a, b = uniq // n, uniq % n
    sim = pair_jaccard(sig, a, b)
    n_candidates = len(a)
    if verify:
        ok = sim >= threshold
        a, b, sim = a[ok], b[ok], sim[ok]
    stats = PairStats(bands=b_, rows=r_, candidate_pairs=n_candidates, verified_pairs=len(a),
                      large_buckets=large, indexed=len(idx))
    log.info("minhash lsh: %d candidate pairs, %d kept (bands=%d, rows=%d)", n_candidates, len(a), stats.bands, stats.rows)
    return a, b, sim, stats
