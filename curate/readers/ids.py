"""Ids unique within a run: repeats of the same content id are numbered in input order.

Two input items with the same source key and the same content (a manifest whose ``source`` column
repeats, or a file list naming one file twice) get the same content id. Everything keyed by id
(stage joins, review decisions, export) would conflate them, so after ingest the second and later
copies get ``<id>-2``, ``<id>-3``, ... in input order. The first copy keeps the plain content id, so
ids of inputs without repeats never change; the numbering depends only on the input order, not on
shard sizes, and running the pass again changes nothing (it numbers by the id without its suffix).
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)

_SUFFIX = r"-[0-9]+$"


def numbered_ids(ids: pa.Array) -> tuple[pa.Array, int]:
    """``ids`` with repeats numbered (see the module docstring) and how many were repeats."""
    ids = pa.array(ids, pa.string()) if not isinstance(ids, pa.Array) else ids
    if len(ids) == 0:
        return ids, 0
    base = pc.replace_substring_regex(ids, _SUFFIX, "")
    codes = np.asarray(pc.dictionary_encode(base).indices)
    counts = np.bincount(codes)
    dup = counts[codes] > 1
    if not dup.any():
        return ids, 0
    pos = np.flatnonzero(dup)
    order = pos[np.argsort(codes[pos], kind="stable")]  # grouped by base id, input order inside a group
    grouped = codes[order]
    starts = np.r_[0, np.flatnonzero(grouped[1:] != grouped[:-1]) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    out = np.asarray(base.to_pylist(), dtype=object)
    for p, r in zip(order[rank > 0], rank[rank > 0]):
        out[p] = f"{out[p]}-{r + 1}"
    return pa.array(out, pa.string()), int((rank > 0).sum())


_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)


def _keys(ids: pa.Array) -> np.ndarray | None:
    """A 64-bit key per id: the first 16 hex digits of the content id (without a ``-N`` suffix);
    ``None`` when an id is not a content id (then every id is compared whole)."""
    if len(ids) == 0:
        return np.zeros(0, np.uint64)
    base = pc.utf8_slice_codeunits(ids, 0, 16)
    if base.null_count or pc.min(pc.binary_length(base)).as_py() != 16 or pc.max(pc.binary_length(base)).as_py() != 16:
        return None
    start = int(np.frombuffer(base.buffers()[1], np.int32, count=1, offset=4 * base.offset)[0])
    digits = _HEX[np.frombuffer(base.buffers()[2], np.uint8, count=16 * len(ids), offset=start).reshape(-1, 16)]
    if (digits == 255).any():
        return None
    weights = np.uint64(16) ** np.arange(15, -1, -1, dtype=np.uint64)
    return (digits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def make_ids_unique(shard_paths: list) -> int:
    """Number repeated ids across the data shards (in shard order), rewriting only shards that change.

    Returns the number of items that got a numbered id. The driver holds 8 bytes per row (a 64-bit
    key of each id, see :func:`_keys`); only the rows whose key repeats are compared as strings.
    """
    from curate.storage import read_table, write_table

    columns, keys = [], []
    for p in shard_paths:
        ids = read_table(p, columns=["id"]).column("id").combine_chunks().cast(pa.string())
        k = _keys(ids)
        if k is None:
            return _make_ids_unique_whole(shard_paths)
        keys.append(k)
        columns.append(len(ids))
    if not columns:
        return 0
    flat = np.concatenate(keys)
    uniq, counts = np.unique(flat, return_counts=True)
    repeated = uniq[counts > 1]
    del flat, uniq, counts
    if not len(repeated):
        return 0
    # the rows whose key repeats hold every repeat of an id: number them in input order
    picked = [np.flatnonzero(np.isin(k, repeated)) for k in keys]
    subset = [read_table(p, columns=["id"]).column("id").combine_chunks().cast(pa.string()).take(pa.array(rows))
              for p, rows in zip(shard_paths, picked)]
    new, repeats = numbered_ids(pa.concat_arrays(subset))
    offset = 0
    for path, old, rows in zip(shard_paths, subset, picked):
        part = new.slice(offset, len(rows))
        offset += len(rows)
        if not part.equals(old):
            table = read_table(path)
            i = table.schema.get_field_index("id")
            column = np.asarray(table.column("id").to_pylist(), dtype=object)
            column[rows] = part.to_pylist()
            table = table.set_column(i, table.schema.field("id"), pa.array(column.tolist(), pa.string()))
            write_table(table, path)
    _warn(repeats)
    return repeats


def _make_ids_unique_whole(shard_paths: list) -> int:
    """:func:`make_ids_unique` comparing whole ids (for ids that are not content ids)."""
    from curate.storage import read_table, write_table

    columns = [read_table(p, columns=["id"]).column("id").combine_chunks() for p in shard_paths]
    if not columns:
        return 0
    sizes = [len(c) for c in columns]
    new, repeats = numbered_ids(pa.concat_arrays([c.cast(pa.string()) for c in columns]))
    offset = 0
    for path, old, n in zip(shard_paths, columns, sizes):
        part = new.slice(offset, n)
        offset += n
        if not part.equals(old):
            table = read_table(path)
            table = table.set_column(table.schema.get_field_index("id"), table.schema.field("id"), part)
            write_table(table, path)
    _warn(repeats)
    return repeats


def _warn(repeats: int) -> None:
    if repeats:
        log.warning("%d item(s) repeat an earlier item's source and content; their ids are numbered "
                    "<id>-2, <id>-3, ... in input order (manifest input.repeated_ids)", repeats)
