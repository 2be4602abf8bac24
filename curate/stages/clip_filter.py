"""``clip_filter``: the CLIP score (cosine of image and text embeddings), by threshold or top fraction."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from curate.embeddings.fields import embedding_matrix
from curate.stages.base import Column, GlobalStage, Outputs, Score, StageParams, flag_table, register_stage

DEFAULT_MIN_SCORE = 0.25


class ClipFilterParams(StageParams):
    min_score: Optional[float] = Field(
        None, ge=-1, le=1, description=f"flag pairs whose CLIP score is below this (default {DEFAULT_MIN_SCORE} "
                                       "unless keep_top_fraction is given)")
    keep_top_fraction: Optional[float] = Field(
        None, gt=0, le=1, description="instead of a threshold: keep this share of the highest-scoring pairs and flag "
                                      "the rest (DataComp's CLIP-score filter)")
    image_column: str = Field("image_embedding", description="image embedding column of an earlier stage")
    text_column: str = Field("text_embedding", description="text embedding column of an earlier stage")

    @model_validator(mode="after")
    def _one_rule(self):
        if self.min_score is not None and self.keep_top_fraction is not None:
            raise ValueError("give min_score or keep_top_fraction, not both")
        if self.min_score is None and self.keep_top_fraction is None:
            self.min_score = DEFAULT_MIN_SCORE
        return self


def clip_scores(batch: pa.Table, image_column: str, text_column: str) -> pa.Array:
    """Row-wise cosine of the two (unit) embedding columns; null where either is missing."""
    img, ok_i = embedding_matrix(batch, image_column)
    txt, ok_t = embedding_matrix(batch, text_column)
    ok = ok_i & ok_t
    if img.shape[1] != txt.shape[1] and ok.any():
        from curate.errors import CurateError

        raise CurateError(f"clip_filter: {image_column} has {img.shape[1]} dimensions but {text_column} has "
                          f"{txt.shape[1]}; both must come from the same CLIP model")
    scores = np.einsum("ij,ij->i", img, txt) if ok.any() else np.zeros(len(ok), dtype=np.float32)
    return pa.array(scores.astype(np.float32), mask=~ok)


@register_stage
class ClipFilter(GlobalStage):
    """CLIP score (cosine of image and text embeddings): flag pairs below a threshold or outside the top fraction."""

    name = "clip_filter"
    Params = ClipFilterParams
    flags = ("low_clip_score",)

    def input_columns(self) -> list[str]:
        return [self.params.image_column, self.params.text_column]

    OUTPUTS = Outputs(columns=(Column("clip_score", pa.float32(), "score", "cosine of the image and text embeddings"),),
                      scores=(Score(column="clip_score", flag="low_clip_score", param="min_score", flags_when="below",
                                    label="CLIP score"),))

    def map(self, batch: pa.Table) -> pa.Table:
        p: ClipFilterParams = self.params
        return pa.table({"id": batch.column("id"), "clip_score": clip_scores(batch, p.image_column, p.text_column)})

    def reduce(self, mapped: pa.Table) -> pa.Table:
        p: ClipFilterParams = self.params
        col = mapped.column("clip_score")
        scores = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        valid = ~np.isnan(scores)
        if p.keep_top_fraction is not None and valid.any():
            keep_n = int(np.ceil(p.keep_top_fraction * valid.sum()))
            ranked = np.sort(scores[valid])[::-1]
            cutoff = float(ranked[keep_n - 1])
            rule = f"below the top-{p.keep_top_fraction:.0%} cutoff {cutoff:.3f}"
        else:
            cutoff = float(p.min_score)
            rule = f"< {cutoff:.3f}"
        low = valid & (np.nan_to_num(scores, nan=np.inf) < cutoff)
        flags = ["low_clip_score" if f else None for f in low]
        details = [f"CLIP score {s:.3f} {rule}" if f else None for s, f in zip(scores, low)]
        if valid.any():
            v = scores[valid]
            self.summary.update({"cutoff": round(cutoff, 4), "scored": int(valid.sum()), "flagged": int(low.sum()),
                                 "score_mean": round(float(v.mean()), 4),
                                 "score_quantiles": {q: round(float(np.quantile(v, float(q))), 4)
                                                     for q in ("0.05", "0.25", "0.5", "0.75", "0.95")}})
        return flag_table({"clip_score": col}, flags, details, self.output_schema())
