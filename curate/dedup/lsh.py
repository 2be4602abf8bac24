"""Near-duplicate clustering of MinHash signatures: LSH candidates, verification, union-find.

Memory (reduce, per million documents, ``num_perm=128`` and the default 0.8 threshold, 9 bands):
the signatures (``N x num_perm`` uint32: 0.5 GB), datasketch's in-memory ``MinHashLSH`` (about 2 GB:
per document a key list plus one bucket entry per band; band keys are shrunk to Python ints with
``hashfunc``), and the candidate/verified pair arrays (16 bytes per pair). Measured: see
``docs/dedup.md``.

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

#: Buckets with more members than this are verified greedily (each member against the bucket's
#: "leaders") instead of all pairs, so one huge bucket (boilerplate text) stays linear.
MAX_ALL_PAIRS_BUCKET = 64


@dataclass
class PairStats:
    bands: int
    rows: int
    candidate_pairs: int
    verified_pairs: int
    large_buckets: int


def _band_key(band: bytes) -> int:
    """Band key for datasketch's dict storage: a Python int instead of a ``4 * rows``-byte string
    (the LSH lives in one process, so Python's per-process string hash is enough; a collision only
    adds a candidate pair, which verification removes)."""
    return hash(band)


def make_lsh(threshold: float, num_perm: int, bands: int | None = None, rows: int | None = None):
    """A datasketch ``MinHashLSH`` for ``threshold`` (bands and rows derived, or given explicitly)."""
    datasketch = require("datasketch", "dedup", "minhash_dedup")
    params = (bands, rows) if bands is not None and rows is not None else None
    return datasketch.MinHashLSH(threshold=threshold, num_perm=num_perm, params=params, hashfunc=_band_key)


def _leader_pairs(members: list[int], sig: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Greedy verification of a large bucket: each member joins the most similar leader at or above
    ``threshold``, else becomes a leader. Linear in the bucket size times the number of leaders."""
    members = sorted(members)
    leaders = [members[0]]
    out = []
    for m in members[1:]:
        sims = np.mean(sig[leaders] == sig[m], axis=1)
        best = int(np.argmax(sims))
        if sims[best] >= threshold:
            out.append((leaders[best], m))
        else:
            leaders.append(m)
    return out


def similar_pairs(sig: np.ndarray, valid: np.ndarray, *, threshold: float, bands: int | None = None,
                  rows: int | None = None, verify: bool = True, seed: int = 1,
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
    lsh = make_lsh(threshold, k, bands, rows)
    idx = np.flatnonzero(valid)
    for i in tqdm(idx.tolist(), desc="minhash lsh", unit="doc", disable=not progress, mininterval=1.0):
        lsh.insert(i, datasketch.LeanMinHash(seed=seed, hashvalues=sig[i], scheme="affine32"),
                   check_duplication=False)
    small: list[tuple[int, int]] = []
    greedy: list[tuple[int, int]] = []
    large = 0
    for table in lsh.hashtables:
        for key in table.keys():
            members = table.get(key)
            g = len(members)
            if g < 2:
                continue
            if g == 2:
                small.append(tuple(members))
            elif g <= MAX_ALL_PAIRS_BUCKET or not verify:
                if g > MAX_ALL_PAIRS_BUCKET:  # unverified: a star around the first member is enough to cluster
                    ms = sorted(members)
                    small.extend((ms[0], m) for m in ms[1:])
                else:
                    small.extend(combinations(members, 2))
            else:
                large += 1
                greedy.extend(_leader_pairs(list(members), sig, threshold))
    del lsh
    pairs = np.array(small + greedy, dtype=np.int64).reshape(-1, 2)
    a, b = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    uniq = np.unique(a * n + b)
    a, b = uniq // n, uniq % n
    sim = pair_jaccard(sig, a, b)
    n_candidates = len(a)
    if verify:
        ok = sim >= threshold
        a, b, sim = a[ok], b[ok], sim[ok]
    params = make_lsh(threshold, k, bands, rows)
    stats = PairStats(bands=params.b, rows=params.r, candidate_pairs=n_candidates, verified_pairs=len(a),
                      large_buckets=large)
    log.info("minhash lsh: %d candidate pairs, %d kept (bands=%d, rows=%d)", n_candidates, len(a), stats.bands, stats.rows)
    return a, b, sim, stats
