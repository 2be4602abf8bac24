"""Perceptual image hashes and a block index that finds all pairs within a Hamming distance.

Pigeonhole: split the ``B`` hash bits into ``d + 1`` blocks; two hashes at most ``d`` bits apart agree
exactly on at least one block. So for each block, group the hashes by that block's value (a sort) and
compare only hashes within a group, with ``np.bitwise_count`` on packed bits. No all-pairs
comparison; the work is the number of block collisions, which grows with ``d`` (shorter blocks
collide more): for 64-bit hashes and ``d = 6`` the blocks are 9 bits, so each of N hashes meets about
``7 * N / 512`` others. Memory: ``B / 8`` bytes per image for the packed hashes plus the verified pairs.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np

from curate.errors import require

HashName = Literal["phash", "dhash", "whash", "ahash"]

#: Chunk of candidate pairs checked at once (bounds memory on large groups).
_PAIR_CHUNK = 1 << 20


def image_hash_bits(data: bytes, *, method: HashName = "phash", hash_size: int = 8,
                    mirror: bool = False) -> np.ndarray | None:
    """The perceptual hash of encoded image bytes as a packed uint8 array (``hash_size**2`` bits), or
    ``None`` if the bytes do not decode. ``mirror``: the hash of the left-right mirrored image."""
    imagehash = require("imagehash", "dedup", "image_dedup")
    from PIL import Image, UnidentifiedImageError

    fn = {"phash": imagehash.phash, "dhash": imagehash.dhash, "whash": imagehash.whash,
          "ahash": imagehash.average_hash}[method]
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("L", (max(64, hash_size * 4), max(64, hash_size * 4)))  # JPEG: decode at reduced size
            grey = img.convert("L")
            h = fn(grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirror else grey, hash_size=hash_size)
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return np.packbits(np.asarray(h.hash, dtype=bool).reshape(-1))


def packed_hashes(hexes: list[str | None], nbytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Hex hashes (``None`` = unhashed) as packed bits ``(N, nbytes)`` uint8 and the mask of rows that have one."""
    valid = np.array([h is not None for h in hexes], dtype=bool)
    packed = np.frombuffer(b"".join(bytes.fromhex(h) if h is not None else bytes(nbytes) for h in hexes),
                           dtype=np.uint8).reshape(len(hexes), nbytes)
    return packed, valid


def hamming(packed_a: np.ndarray, packed_b: np.ndarray) -> np.ndarray:
    """Hamming distances between rows of packed bit arrays (shape (P, nbytes) each) -> (P,)."""
    return np.bitwise_count(np.bitwise_xor(packed_a, packed_b)).sum(axis=-1, dtype=np.int64)


def block_columns(nbits: int, blocks: int) -> list[np.ndarray]:
    """The bit columns of each of ``blocks`` near-equal slices of ``nbits`` hash bits (the pigeonhole blocks)."""
    return np.array_split(np.arange(nbits), blocks)


def block_key(sub: np.ndarray) -> np.ndarray:
    """One uint64 key per row of the unpacked bits ``sub`` of one block: the bits themselves for blocks
    of up to 64 bits; longer blocks (big hashes, small distance) get a compact code of their packed
    bits, equal for equal blocks within this call."""
    if sub.shape[1] <= 64:
        weights = np.left_shift(np.uint64(1), np.arange(sub.shape[1], dtype=np.uint64))
        return (sub.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    _, inv = np.unique(np.packbits(sub, axis=1), axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.uint64)


def _block_keys(bits: np.ndarray, blocks: int) -> list[np.ndarray]:
    """One uint64 key per row for each of ``blocks`` near-equal slices of the bit columns."""
    return [block_key(bits[:, cols]) for cols in block_columns(bits.shape[1], blocks)]


def block_pairs(key: np.ndarray):
    """Yield chunks ``(a, b)`` of all pairs of positions that share a key (``a`` before ``b`` in the order
    of the positions)."""
    order = np.argsort(key, kind="stable")
    yield from _group_pairs(order, key[order])


def _group_pairs(order: np.ndarray, keys_sorted: np.ndarray):
    """Yield chunks (a, b) of all pairs of rows sharing a key (rows given in key order)."""
    n = len(order)
    if n < 2:
        return
    boundary = np.flatnonzero(np.diff(keys_sorted) != 0) + 1
    starts = np.concatenate([[0], boundary])
    ends = np.concatenate([boundary, [n]])
    sizes = ends - starts
    multi = sizes > 1
    starts, sizes = starts[multi], sizes[multi]
    # pairs (i, j) inside each group, generated group-size by group-size with array operations
    buf_a, buf_b, count = [], [], 0
    for g in np.unique(sizes):
        gs = starts[sizes == g]
        ia, ib = np.triu_indices(int(g), 1)
        per_group = len(ia)
        step = max(1, _PAIR_CHUNK // per_group)
        for s in range(0, len(gs), step):
            base = gs[s:s + step, None]
            buf_a.append(order[(base + ia).reshape(-1)])
            buf_b.append(order[(base + ib).reshape(-1)])
            count += buf_a[-1].size
            if count >= _PAIR_CHUNK:
                yield np.concatenate(buf_a), np.concatenate(buf_b)
                buf_a, buf_b, count = [], [], 0
    if buf_a:
        yield np.concatenate(buf_a), np.concatenate(buf_b)


def close_pairs(packed: np.ndarray, valid: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """All pairs of valid rows whose hashes are within ``max_distance`` bits.

    Parameters
    ----------
    packed : ndarray of uint8, shape (N, nbytes)
        Packed hash bits per row.
    valid : ndarray of bool, shape (N,)
    max_distance : int

    Returns
    -------
    a, b : ndarray of int64, shape (P,), with ``a < b``
    dist : ndarray of int64, shape (P,)
    candidates : int
        Number of block collisions checked (the work done).
    """
    idx = np.flatnonzero(valid)
    nbits = packed.shape[1] * 8
    if len(idx) < 2:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z, 0
    sub = packed[idx]
    bits = np.unpackbits(sub, axis=1)[:, :nbits]
    found_a, found_b, found_d = [], [], []
    candidates = 0
    for key in _block_keys(bits, min(max_distance + 1, nbits)):
        for a, b in block_pairs(key):
            candidates += len(a)
            d = hamming(sub[a], sub[b])
            ok = d <= max_distance
            found_a.append(a[ok])
            found_b.append(b[ok])
            found_d.append(d[ok])
    if not found_a:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z, candidates
    a = idx[np.concatenate(found_a)]
    b = idx[np.concatenate(found_b)]
    d = np.concatenate(found_d)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    n = len(packed)
    uniq, first = np.unique(lo * n + hi, return_index=True)
    return uniq // n, uniq % n, d[first], candidates
