"""Connected components of an undirected graph given as pair arrays (union-find, vectorised).

Used on verified duplicate pairs (text and image near duplicates) and exact-duplicate groups.
Memory: O(N + P) integers for N items and P pairs.
"""

from __future__ import annotations

import numpy as np


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label of each of ``n`` items, given edges ``(a[i], b[i])``.

    The label of a component is the smallest item index in it, so it does not depend on the order of
    the pairs. Union-find by "hooking" every edge to the smaller root and pointer jumping, all with
    numpy operations (a few rounds for typical duplicate clusters).

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    parent = np.arange(n, dtype=np.int64)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if len(a) == 0:
        return parent
    while True:
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            break
        ra, rb = ra[differ], rb[differ]
        a, b = a[differ], b[differ]
        lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
        np.minimum.at(parent, hi, lo)  # hook the larger root under the smaller one
        while True:  # pointer jumping until every item points at its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent
