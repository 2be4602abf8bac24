"""Parameters shared by the stages that read embeddings (``semantic_dedup``, ``outliers``,
``clip_filter``): which embedding column to read, and turning it into a matrix."""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.embeddings.cache import to_matrix
from curate.stages.base import StageParams

EMBEDDING_COLUMNS = {"image": "image_embedding", "text": "text_embedding"}


class EmbeddingFieldParams(StageParams):
    """``field: image|text`` picks the ``embed`` stage's column; ``column:`` names any other."""

    field: Literal["image", "text"] = Field("image", description="which embedding of the latest earlier 'embed' stage to use")
    column: Optional[str] = Field(None, description="an explicit embedding column instead of 'field', e.g. embed.text_embedding")

    def embedding_column(self) -> str:
        return self.column or EMBEDDING_COLUMNS[self.field]


def embedding_matrix(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(N, D)`` float32 embeddings of column ``name`` and the mask of rows that have one."""
    col = table.column(name)
    if pa.types.is_null(col.type):  # every shard of the embedding stage was empty
        return np.zeros((table.num_rows, 0), dtype=np.float32), np.zeros(table.num_rows, dtype=bool)
    return to_matrix(col)
