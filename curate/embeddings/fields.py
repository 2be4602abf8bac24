"""Reading embedding columns: the ``embed`` stage's column names and turning a column into a matrix
(the stages' shared ``field``/``column`` parameters live in ``curate.stages._embedding_params``)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate.embeddings.cache import to_matrix

EMBEDDING_COLUMNS = {"image": "image_embedding", "text": "text_embedding"}


def embedding_matrix(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(N, D)`` float32 embeddings of column ``name`` and the mask of rows that have one."""
    col = table.column(name)
    if pa.types.is_null(col.type):  # every shard of the embedding stage was empty
        return np.zeros((table.num_rows, 0), dtype=np.float32), np.zeros(table.num_rows, dtype=bool)
    return to_matrix(col)
