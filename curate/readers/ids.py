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


def make_ids_unique(shard_paths: list) -> int:
    """Number repeated ids across the data shards (in shard order), rewriting only shards that change.

    Returns the number of items that got a numbered id.
    """
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
    if repeats:
        log.warning("%d item(s) repeat an earlier item's source and content; their ids are numbered "
                    "<id>-2, <id>-3, ... in input order (manifest input.repeated_ids)", repeats)
    return repeats
