"""The embedding cache: embeddings keyed by (model identity, modality, content key), under a run's
``cache/`` or the pipeline's ``cache:`` folder.

The content key is a hash of what is embedded (the image bytes, or the text), not the item id: an item
id also covers the label and source, but an embedding depends only on the bytes. So a re-ingest, a
reshard, a relabelled copy of the data set, an exact copy of an image, a changed earlier stage or a
changed embed runtime option all reuse the same embeddings. One folder per (model identity, modality)
holds Parquet files of ``id`` (the content key) + ``embedding``; an index of keys is read (column
projection) on open.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.rundir import write_table
from curate.vectors import list_column_to_matrix

log = logging.getLogger(__name__)


def embedding_array(values: np.ndarray, ok: np.ndarray | None = None) -> pa.Array:
    """A fixed-size-list<float32>[D] Arrow array from ``(n, D)`` floats, null where ``ok`` is false."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    n, d = values.shape
    mask = None if ok is None or ok.all() else pa.array(~ok)
    flat = pa.array(values.reshape(-1), type=pa.float32())
    arr = pa.FixedSizeListArray.from_arrays(flat, d)
    if mask is not None:
        arr = pa.FixedSizeListArray.from_arrays(flat, d, mask=mask)
    return arr


def to_matrix(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, D)`` float32 matrix and the non-null mask of a fixed-size-list (or list) embedding column."""
    return list_column_to_matrix(column, what="embedding", allow_nan=True)


def content_key(value: bytes | str | None) -> str | None:
    """The cache key of one image (bytes) or text: 128-bit BLAKE2b of its bytes, hex; None for None."""
    if value is None:
        return None
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class EmbeddingCache:
    """Embeddings of one model and modality, by content key (:func:`content_key`)."""

    def __init__(self, root: Path, identity: str, modality: str):
        key = hashlib.sha256(f"{identity}|{modality}".encode()).hexdigest()[:20]
        self.dir = Path(root) / "embeddings" / key
        self.identity, self.modality = identity, modality
        self._index: dict[str, tuple[str, int]] | None = None
        self._loaded: tuple[str, np.ndarray] | None = None

    def _load_index(self) -> dict[str, tuple[str, int]]:
        if self._index is None:
            self._index = {}
            if self.dir.is_dir():
                for p in sorted(self.dir.glob("part-*.parquet")):
                    for row, i in enumerate(pq.read_table(p, columns=["id"]).column("id").to_pylist()):
                        self._index[i] = (p.name, row)
        return self._index

    def __len__(self) -> int:
        return len(self._load_index())

    def get(self, ids: Sequence[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """``(embeddings (n, D) or None if nothing was found, found mask (n,))``."""
        index = self._load_index()
        found = np.array([i in index for i in ids], dtype=bool)
        if not found.any():
            return None, found
        by_file: dict[str, list[tuple[int, int]]] = {}
        for k, i in enumerate(ids):
            if found[k]:
                f, row = index[i]
                by_file.setdefault(f, []).append((k, row))
        out = None
        for f, pairs in by_file.items():
            if self._loaded is None or self._loaded[0] != f:
                mat, _ = to_matrix(pq.read_table(self.dir / f, columns=["embedding"]).column("embedding"))
                self._loaded = (f, mat)
            mat = self._loaded[1]
            if out is None:
                out = np.zeros((len(ids), mat.shape[1]), dtype=np.float32)
            ks, rows = zip(*pairs)
            out[list(ks)] = mat[list(rows)]
        return out, found

    def put(self, ids: Sequence[str], embeddings: np.ndarray) -> None:
        """Store embeddings of ``ids`` (rows of ``embeddings``)."""
        if len(ids) == 0:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "identity.json"
        if not meta.exists():
            meta.write_text(json.dumps({"identity": self.identity, "modality": self.modality}) + "\n")
        name = "part-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:20] + ".parquet"
        write_table(pa.table({"id": pa.array(list(ids), pa.string()), "embedding": embedding_array(embeddings)}),
                    self.dir / name)
        index = self._load_index()
        for row, i in enumerate(ids):
            index[i] = (name, row)
