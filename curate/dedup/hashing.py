"""Deterministic, vectorised 64-bit hashing with numpy (same values on any machine and process).

All arithmetic is on ``uint64`` arrays and wraps modulo 2**64 on purpose.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
#: odd multiplier of the polynomial rolling hash, and its inverse modulo 2**64
_P = 0x100000001B3 * 2 + 1
_P_INV = pow(_P, -1, 2**64)


def mix64(x: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """SplitMix64 finaliser: a bijection of uint64 with good avalanche.

    Returns a new array unless ``inplace`` (then ``x`` must be a uint64 array and is overwritten)."""
    z = x if inplace else np.array(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z += _GOLD
        z ^= z >> _S30
        z *= _M1
        z ^= z >> _S27
        z *= _M2
        z ^= z >> _S31
    return z


#: _MASKS[k] keeps the low k bytes of a little-endian uint64 (k = 0..8)
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)

_POW_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``P**i`` and ``P**-i`` (mod 2**64) for ``i < n``, grown and cached."""
    size = 1 << max(12, int(n - 1).bit_length())
    cached = _POW_CACHE.get(0)
    if cached is None or len(cached[0]) < n:
        with np.errstate(over="ignore"):
            pw = np.full(size, _P, dtype=np.uint64)
            pw[0] = 1
            pw = np.cumprod(pw, dtype=np.uint64)
            ipw = np.full(size, _P_INV, dtype=np.uint64)
            ipw[0] = 1
            ipw = np.cumprod(ipw, dtype=np.uint64)
        cached = _POW_CACHE[0] = (pw, ipw)
    return cached[0][:n], cached[1][:n]


def range_hashes(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Hash every slice ``values[starts[i]:ends[i]]`` of an integer array, in O(len(values) + len(starts)).

    A polynomial hash over prefix sums (``sum v[j] * P**(j - start)``, computed as a difference of
    prefix sums times ``P**-start``), plus the length, through :func:`mix64`. Equal slices give equal
    hashes wherever they are in ``values``.
    """
    v = np.asarray(values)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    pw, ipw = _powers(len(v) + 1)
    with np.errstate(over="ignore"):
        terms = v * pw[: len(v)] if v.dtype == np.uint64 else v.astype(np.uint64) * pw[: len(v)]
        prefix = np.empty(len(v) + 1, dtype=np.uint64)
        prefix[0] = 0
        np.cumsum(terms, dtype=np.uint64, out=prefix[1:])
        h = prefix[ends]
        h -= prefix[starts]
        h *= ipw[starts]
        h ^= (ends - starts).astype(np.uint64) * _M2
    return mix64(h, inplace=True)


def substring_hashes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Hash the byte strings ``data[starts[i]:ends[i]]`` (e.g. words), 8 bytes at a time.

    Unaligned little-endian 8-byte loads at each word's start (a strided uint64 view of the padded
    buffer), masked to the word's length, folded into the hash; words longer than 8 bytes take a
    second round, and so on. The cost is per word and per 8 bytes, not per byte. Same bytes, same
    hash, wherever they are.
    """
    data = np.asarray(data, dtype=np.uint8)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(ends, dtype=np.int64) - starts
    pad = np.zeros(len(data) + 16, dtype=np.uint8)
    pad[:len(data)] = data
    load = np.ndarray(shape=(len(data) + 8,), dtype="<u8", buffer=pad, strides=(1,))
    with np.errstate(over="ignore"):
        h = load[starts]
        h &= _MASKS[np.minimum(lengths, 8)]
        h ^= lengths.astype(np.uint64) * _M2
        mix64(h, inplace=True)
        offset = 8
        todo = np.flatnonzero(lengths > offset)
        while len(todo):
            rest = lengths[todo] - offset
            part = load[starts[todo] + offset]
            part &= _MASKS[np.minimum(rest, 8)]
            part ^= h[todo]
            h[todo] = mix64(part, inplace=True)
            offset += 8
            todo = todo[rest > 8]
    return h
