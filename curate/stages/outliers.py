"""``outliers``: items far from everything else (mean cosine distance to their k nearest neighbours)."""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from curate.embeddings.fields import embedding_matrix
from curate.stages._embedding_params import EmbeddingFieldParams
from curate.stages.base import Column, GlobalStage, Outputs, Score, flag_table, register_stage


class OutliersParams(EmbeddingFieldParams):
    k: int = Field(10, ge=1, description="neighbours averaged")
    flag_top_fraction: Optional[float] = Field(
        0.01, ge=0, le=0.5, description="flag this share of items with the largest kNN distance (unless threshold is given)")
    threshold: Optional[float] = Field(None, ge=0, le=2, description="flag items whose mean kNN cosine distance is above this")
    search: Literal["auto", "exact", "approximate"] = Field(
        "auto", description="nearest-neighbour search: exact, approximate (faiss IVF index), or auto (approximate "
                            "from 200,000 rows when faiss is installed)")

    @model_validator(mode="after")
    def _one_rule(self):
        if self.threshold is not None and "flag_top_fraction" in self.model_fields_set and self.flag_top_fraction:
            raise ValueError("give flag_top_fraction or threshold, not both")
        if self.threshold is not None:
            self.flag_top_fraction = None  # so that the dumped params validate again (workers, the manifest)
        return self


@register_stage
class Outliers(GlobalStage):
    """Outliers in embedding space: mean cosine distance to the k nearest neighbours, top fraction or threshold."""

    name = "outliers"
    Params = OutliersParams
    flags = ("outlier",)

    def input_columns(self) -> list[str]:
        return [self.params.embedding_column()]

    OUTPUTS = Outputs(columns=(Column("knn_distance", pa.float32(), "score",
                                      "mean cosine distance to the k nearest neighbours"),),
                      scores=(Score(column="knn_distance", flag="outlier", param="threshold", flags_when="above",
                                    label="kNN distance"),))

    def reduce(self, mapped: pa.Table) -> pa.Table:
        """Mean distance to the k nearest neighbours, then the top fraction or the threshold.

        Memory per million rows of D floats: the embeddings twice (8 D MB) plus the index. Distributed
        (:mod:`curate.distributed.knn`): exact kNN by shards of the index as shard tasks, the cut-offs by
        histogram passes; equal to ``search: exact`` here."""
        from curate.embeddings.neighbors import normalise
        from curate.embeddings.outliers import flag_outliers, knn_distance

        p: OutliersParams = self.params
        x, valid = embedding_matrix(mapped, p.embedding_column())
        x = normalise(x) if x.shape[1] else x
        scores = knn_distance(x, p.k, valid=valid, search=p.search)
        out = flag_outliers(scores, top_fraction=None if p.threshold is not None else p.flag_top_fraction,
                            threshold=p.threshold)
        if p.threshold is not None:
            rule = f"> threshold {p.threshold:.3f}"
        else:
            cut = float(np.nanmin(scores[out])) if out.any() else float("nan")
            rule = f"top {p.flag_top_fraction:.1%} (>= {cut:.3f})"
        k_eff = max(1, min(p.k, int(valid.sum()) - 1))
        flags = ["outlier" if f else None for f in out]
        details = [f"mean cosine distance to its {k_eff} nearest neighbours {s:.3f}, {rule}" if f else None
                   for s, f in zip(scores, out)]
        if valid.sum() > 1:
            v = scores[valid]
            self.summary.update({"k": k_eff, "flagged": int(out.sum()), "distance_median": round(float(np.median(v)), 4),
                                 "distance_p99": round(float(np.quantile(v, 0.99)), 4)})
        return flag_table({"knn_distance": pa.array(scores, mask=np.isnan(scores))}, flags, details, self.output_schema())
