"""Exact order statistics of float32 values spread over shard files, with constant driver memory.

Each float32 maps to a uint32 key that sorts as the floats do (:func:`sortable`; -0.0 as +0.0). A
query is a value set and one 0-based ascending rank in it; :func:`select` finds every query's key by
radix passes from the top digit down: in each pass every shard task returns, per query, the counts of
one ``bits``-wide digit among its keys whose higher digits are the query's prefix so far
(:func:`digit_counts`), and the driver adds them and fixes that digit. ``bits=16``: two passes of
65,536 counts per query (``outliers``: a few ranks of one score); ``bits=8``: four passes of 256
counts (``label_noise``: up to K x K value sets at once). Queries with the same value set and prefix
share their counts. Driver memory: ``2**bits`` counts per query, whatever the row count.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np


def sortable(v: np.ndarray) -> np.ndarray:
    """uint32 keys ordered as the float32 values ``v`` (no NaN; -0.0 and +0.0 get one key)."""
    bits = (np.asarray(v, dtype=np.float32) + np.float32(0.0)).view(np.uint32)
    return np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(1 << 31)).astype(np.uint32)


def unsortable(keys: np.ndarray) -> np.ndarray:
    """The float32 values of :func:`sortable` keys."""
    keys = np.asarray(keys, dtype=np.uint32)
    bits = np.where(keys >> np.uint32(31), keys & np.uint32(0x7FFFFFFF), ~keys).astype(np.uint32)
    return bits.view(np.float32)


def digit_counts(values: Sequence[np.ndarray], queries: Sequence[tuple[int, int]], shift: int,
                 bits: int = 16) -> np.ndarray:
    """One task's part of a :func:`select` pass: for each query ``(set, prefix)``, the counts of the
    ``bits``-bit digit at bit ``shift`` of the keys of ``values[set]`` whose bits above it are
    ``prefix``; shape ``(len(queries), 2**bits)``. NaN values are left out."""
    out = np.zeros((len(queries), 1 << bits), dtype=np.int64)
    keyed: dict[int, np.ndarray] = {}
    for i, (q, prefix) in enumerate(queries):
        if q not in keyed:
            v = np.asarray(values[q], dtype=np.float32)
            keyed[q] = sortable(v[~np.isnan(v)]).astype(np.uint64)
        keys = keyed[q]
        if shift + bits < 32:
            keys = keys[(keys >> np.uint64(shift + bits)) == np.uint64(prefix)]
        digits = ((keys >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.int64)
        out[i] = np.bincount(digits, minlength=1 << bits)
    return out


def select(counts: Callable[[list[tuple[int, int]], int], Iterable[np.ndarray]], ranks: Sequence[int],
           sets: Sequence[int] | None = None, *, bits: int = 16) -> list[tuple[int, int, int]]:
    """The key at each 0-based ascending rank ``ranks[i]`` of value set ``sets[i]`` (default: set ``i``),
    with how many keys of that set are below it and how many equal it: ``[(key, below, equal)]``.
    ``counts(queries, shift)`` runs :func:`digit_counts` on every shard and yields the results (the
    driver adds them one at a time)."""
    if 32 % bits:
        raise ValueError(f"bits must divide 32, got {bits}")
    n = len(ranks)
    sets = list(range(n)) if sets is None else list(sets)
    prefix, rem, equal = [0] * n, [int(r) for r in ranks], [0] * n
    if not n:
        return []
    for shift in range(32 - bits, -1, -bits):
        queries = sorted(set(zip(sets, prefix)))
        at = {q: i for i, q in enumerate(queries)}
        total = np.zeros((len(queries), 1 << bits), dtype=np.int64)
        for c in counts(queries, shift):
            total += c
        for i in range(n):
            row = total[at[(sets[i], prefix[i])]]
            cum = np.cumsum(row)
            d = int(np.searchsorted(cum, rem[i], side="right"))
            rem[i] -= int(cum[d - 1]) if d else 0
            prefix[i] = (prefix[i] << bits) | d
            equal[i] = int(row[d])
    return [(prefix[i], int(ranks[i]) - rem[i], equal[i]) for i in range(n)]
