"""A vectorised MinHash engine: one-permutation hashing with optimal densification.

Classic MinHash applies ``num_perm`` hash functions to every shingle (``num_perm`` operations per
shingle). One-permutation hashing (OPH, Li, Owen & Zhang 2012) hashes each shingle once: the hash's
high bits pick one of ``num_perm`` bins, its low 32 bits are the value, and each bin keeps its minimum.
Bins that no shingle fell into are filled by *optimal densification* (Shrivastava, ICML 2017): an
empty bin ``j`` copies the value of the first non-empty bin in a pseudo-random probe sequence that
depends only on ``(j, attempt)``, so two documents probe the same way and the probability that bin
``j`` agrees stays equal to the Jaccard similarity. Its variance matches classic MinHash (lower for
sets larger than ``num_perm``); ``tests/test_dedup_minhash.py`` checks estimates against exact
Jaccard next to datasketch's classic MinHash.

Two engines compute the same values: compiled kernels (:mod:`curate.dedup.kernels`, numba; one pass
per document from the raw bytes) when numba is installed, else whole batches with numpy (one hash,
one ``np.minimum.at`` and a few passes for densification). Either way the cost per shingle does not
grow with ``num_perm``. ``engine=`` picks one explicitly (tests compare them).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate.dedup import kernels
from curate.dedup.hashing import mix64

EMPTY = np.uint32(0xFFFFFFFF)
_U32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)


def _bin_of(x: np.ndarray, num_perm: int) -> np.ndarray:
    """Bin index in ``[0, num_perm)`` from the high 32 bits of ``x`` (multiply-shift range reduction)."""
    return (((x >> _U32) * np.uint64(num_perm)) >> _U32).astype(np.int64)


def _use_kernels(engine: str) -> bool:
    if engine not in ("auto", "numba", "numpy"):
        raise ValueError(f"engine must be 'auto', 'numba' or 'numpy', got {engine!r}")
    if engine == "numba" and not kernels.available():
        raise ImportError(f"engine='numba' needs numba ({kernels.unavailable_reason()}); pip install numba")
    return engine != "numpy" and kernels.available()


def _seed_mix(seed: int) -> np.uint64:
    return mix64(np.array([seed], dtype=np.uint64))[0]


def signatures(hashes: np.ndarray, offsets: np.ndarray, *, num_perm: int = 128, seed: int = 1,
               engine: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures of a batch of shingle sets.

    Parameters
    ----------
    hashes : ndarray of uint64, shape (M,)
        Shingle hashes, document after document (see :func:`curate.dedup.shingles.shingle_hashes`).
    offsets : ndarray of int64, shape (N + 1,)
        Document ``i`` owns ``hashes[offsets[i]:offsets[i + 1]]``.
    num_perm : int
        Signature length (number of bins).
    seed : int
        Different seeds give independent signatures.
    engine : {'auto', 'numba', 'numpy'}
        ``auto``: the compiled kernels when numba is installed. Both give identical signatures.

    Returns
    -------
    sig : ndarray of uint32, shape (N, num_perm)
    empty : ndarray of bool, shape (N,)
        True for documents without shingles (their row is all ``0xFFFFFFFF`` and means nothing).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    k = int(num_perm)
    counts = np.diff(offsets)
    empty = counts == 0
    seed_mix = _seed_mix(seed)
    if _use_kernels(engine):
        sig = np.empty((n, k), dtype=np.uint32)
        kernels.hash_signatures(np.ascontiguousarray(hashes, dtype=np.uint64), offsets, k, seed_mix, sig)
        return sig, empty
    x = np.bitwise_xor(np.asarray(hashes, dtype=np.uint64), seed_mix)
    mix64(x, inplace=True)
    flat = np.repeat(np.arange(n, dtype=np.int64) * k, counts)
    flat += _bin_of(x, k)
    x &= _LOW32
    unset = np.uint64(1 << 32)  # above every 32-bit value
    work = np.full(n * k, unset, dtype=np.uint64)  # uint64: np.minimum.at's fast path
    np.minimum.at(work, flat, x)
    filled = (work < unset).reshape(n, k)
    sig = work.astype(np.uint32).reshape(n, k)
    sig[empty] = EMPTY
    _densify(sig, filled, empty, seed_mix)
    return sig, empty


_PROBES: dict[tuple[int, int], np.ndarray] = {}


def _probe_table(k: int, seed_mix: np.uint64, attempts: int) -> np.ndarray:
    """``table[j, t]``: the bin that empty bin ``j`` probes at attempt ``t + 1`` (shape (k, attempts)),
    cached per (k, seed). A 2-universal-style hash of ``(j, t)``, the same for every document."""
    key = (k, int(seed_mix))
    table = _PROBES.get(key)
    if table is None or table.shape[1] < attempts:
        j = np.arange(k, dtype=np.uint64)[:, None] << _U32
        t = np.arange(1, attempts + 1, dtype=np.uint64)[None, :]
        with np.errstate(over="ignore"):
            probe = mix64((j ^ (t * np.uint64(0x9E3779B97F4A7C15))) ^ seed_mix, inplace=True)
        table = _PROBES[key] = _bin_of(probe, k).astype(np.int32)
    return table


def _densify(sig: np.ndarray, filled: np.ndarray, empty: np.ndarray, seed_mix: np.uint64) -> None:
    """Optimal densification in place: empty bin j of a non-empty document takes the value of bin
    ``h(j, t)`` for the first attempt ``t = 1, 2, ...`` that lands on a filled bin.

    Attempts are tried in growing blocks for all pending bins at once (most bins succeed in the first
    one or two attempts; documents with few shingles need more), so the Python loop runs a few times
    per batch, not once per attempt."""
    k = sig.shape[1]
    rows, cols = np.nonzero(~filled & ~empty[:, None])
    if len(rows) == 0:
        return
    flat_sig = sig.reshape(-1)
    source = flat_sig.copy()
    flat_filled = filled.reshape(-1)
    done_attempts, block = 0, 2
    while len(rows):
        table = _probe_table(k, seed_mix, done_attempts + block)
        targets = table[cols, done_attempts:done_attempts + block]  # (m, block)
        base = (rows * k)[:, None]
        ok = flat_filled[base + targets]
        found = ok.any(axis=1)
        first = ok.argmax(axis=1)
        hit = np.flatnonzero(found)
        flat_sig[rows[hit] * k + cols[hit]] = source[base[hit, 0] + targets[hit, first[hit]]]
        rows, cols = rows[~found], cols[~found]
        done_attempts += block
        block = min(block * 4, 4096)


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of row pairs: the fraction of equal signature positions.

    ``sig_a`` and ``sig_b`` have shape (P, num_perm) (or (num_perm,)); returns shape (P,) (or a scalar).
    """
    return np.mean(np.asarray(sig_a) == np.asarray(sig_b), axis=-1)


def pair_jaccard(sig: np.ndarray, a: np.ndarray, b: np.ndarray, *, chunk: int = 1 << 16) -> np.ndarray:
    """Estimated Jaccard of the pairs ``(a[i], b[i])`` of rows of ``sig``, in chunks (bounded memory)."""
    out = np.empty(len(a), dtype=np.float32)
    for s in range(0, len(a), chunk):
        out[s:s + chunk] = estimate_jaccard(sig[a[s:s + chunk]], sig[b[s:s + chunk]])
    return out


def _compiled_word_signatures(arr, lowercase: bool, ngram: int, k: int, seed_mix, sig: np.ndarray,
                              counts: np.ndarray) -> None:
    """Word-shingle signatures of a large_string array with the compiled kernels, into ``sig``/``counts``.

    Lower-casing: ASCII letters in the kernel's buffer (8 bytes at a time); only texts with non-ASCII
    bytes go through Arrow's Unicode ``utf8_lower`` (same result as lower-casing every text with it)."""
    import pyarrow.compute as pc

    from curate.dedup.shingles import _utf8_buffer

    data, offs = _utf8_buffer(arr)
    words = kernels.padded_words(data)
    special = np.zeros(0, dtype=np.int64)
    if lowercase:
        kernels.ascii_lower(words)
        high = np.flatnonzero(data >= 0x80)
        if len(high):
            special = np.unique(np.searchsorted(offs, high, side="right") - 1)
    plain = np.ones(len(arr), dtype=bool)
    plain[special] = False
    kernels.word_signatures(words, len(data), offs, np.flatnonzero(plain), ngram, k, seed_mix, sig, counts)
    if len(special):
        d2, o2 = _utf8_buffer(pc.utf8_lower(arr.take(pa.array(special))))
        sig2 = np.empty((len(special), k), dtype=np.uint32)
        c2 = np.empty(len(special), dtype=np.int64)
        kernels.word_signatures(kernels.padded_words(d2), len(d2), o2, np.arange(len(special)), ngram, k, seed_mix,
                                sig2, c2)
        sig[special] = sig2
        counts[special] = c2


def text_signatures(texts, *, num_perm: int = 128, seed: int = 1, tokens: str = "word", ngram: int = 5,
                    lowercase: bool = True, batch_size: int | None = None,
                    engine: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Signatures of texts, ``batch_size`` texts at a time (bounds the temporary arrays).

    Word shingles with the compiled engine go from the raw UTF-8 bytes to the signature in one pass
    per document (8,192 texts per batch by default); otherwise shingle hashes are built with numpy
    (512 texts per batch) and signed. Both engines give identical results.

    Returns ``sig`` (N, num_perm) uint32 and ``n_shingles`` (N,) int64 (0 for empty texts)."""
    from curate.dedup.shingles import _as_string_array, shingle_hashes

    compiled = tokens == "word" and _use_kernels(engine)
    batch_size = batch_size or (8192 if compiled else 512)
    if compiled:
        texts = _as_string_array(texts)
    n = len(texts)
    sig = np.empty((n, num_perm), dtype=np.uint32)
    counts = np.empty(n, dtype=np.int64)
    seed_mix = _seed_mix(seed)
    for s in range(0, n, batch_size):
        part = texts[s:s + batch_size]
        if compiled:
            m = len(part)
            _compiled_word_signatures(part, lowercase, int(ngram), int(num_perm), seed_mix, sig[s:s + m], counts[s:s + m])
            continue
        hashes, offsets = shingle_hashes(part, tokens=tokens, ngram=ngram, lowercase=lowercase)
        sig[s:s + len(offsets) - 1], _ = signatures(hashes, offsets, num_perm=num_perm, seed=seed, engine=engine)
        counts[s:s + len(offsets) - 1] = np.diff(offsets)
    return sig, counts
