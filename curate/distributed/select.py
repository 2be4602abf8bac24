"""Exact order statistics of a float32 score spread over shard files, with constant driver memory.

Each float32 maps to a uint32 key that sorts as the floats do (:func:`sortable`). Pass 1: every
shard task returns the histogram of its keys' top 16 bits; the driver adds them (65,536 counts) and
finds the bin of every wanted rank. Pass 2: the histogram of the low 16 bits of the keys in those
bins gives each wanted value exactly. Driver memory: 0.5 MB per histogram, whatever the row count.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

_BINS = 1 << 16


def sortable(v: np.ndarray) -> np.ndarray:
    """uint32 keys ordered as the float32 values ``v`` (no NaN)."""
    bits = np.ascontiguousarray(v, dtype=np.float32).view(np.uint32)
    return np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(1 << 31)).astype(np.uint32)


def unsortable(keys: np.ndarray) -> np.ndarray:
    """The float32 values of :func:`sortable` keys."""
    keys = np.asarray(keys, dtype=np.uint32)
    bits = np.where(keys >> np.uint32(31), keys & np.uint32(0x7FFFFFFF), ~keys).astype(np.uint32)
    return bits.view(np.float32)


def histogram(values: np.ndarray, high: tuple[int, ...] = ()) -> np.ndarray:
    """One task's part: the histogram of the keys' top 16 bits (``high`` empty), else for each bin of
    ``high`` the histogram of the low 16 bits of its keys. NaN values are left out."""
    keys = sortable(values[~np.isnan(values)])
    if not high:
        return np.bincount(keys >> np.uint32(16), minlength=_BINS).astype(np.int64)
    top = keys >> np.uint32(16)
    return np.stack([np.bincount(keys[top == h] & np.uint32(0xFFFF), minlength=_BINS) for h in high]).astype(np.int64)


def order_statistics(histograms: Callable[[tuple[int, ...]], "list[np.ndarray]"], ranks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The values at 0-based ascending ``ranks`` among all non-NaN values, and for each the count of
    values strictly above it. ``histograms(high)`` runs :func:`histogram` on every shard and yields the
    results (an iterable; the driver adds them one at a time)."""
    total = None
    for h in histograms(()):
        total = h if total is None else total + h
    cum = np.cumsum(total)
    n = int(cum[-1])
    bins = [int(np.searchsorted(cum, r, side="right")) for r in ranks]
    high = tuple(sorted(set(bins)))
    low = None
    for h in histograms(high):
        low = h if low is None else low + h
    values, above = [], []
    for r, b in zip(ranks, bins):
        row = low[high.index(b)]
        before = int(cum[b - 1]) if b else 0
        lcum = np.cumsum(row) + before
        lb = int(np.searchsorted(lcum, r, side="right"))
        values.append(unsortable(np.array([(b << 16) | lb], np.uint32))[0])
        above.append(n - int(lcum[lb]))
    return np.array(values, dtype=np.float32), np.array(above, dtype=np.int64)
