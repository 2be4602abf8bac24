"""Parameters shared by the stages that read embeddings (``semantic_dedup``, ``outliers``): which
embedding column to read."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from curate.embeddings.fields import EMBEDDING_COLUMNS
from curate.stages.base import StageParams


class EmbeddingFieldParams(StageParams):
    """``field: image|text`` picks the ``embed`` stage's column; ``column:`` names any other."""

    field: Literal["image", "text"] = Field("image", description="which embedding of the latest earlier 'embed' stage to use")
    column: Optional[str] = Field(None, description="an explicit embedding column instead of 'field', e.g. embed.text_embedding")

    def embedding_column(self) -> str:
        return self.column or EMBEDDING_COLUMNS[self.field]
