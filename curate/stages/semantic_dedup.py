"""``semantic_dedup``: SemDeDup over embeddings (k-means, then near-identical pairs inside each cluster)."""

from __future__ import annotations

from typing import Literal, Union

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from curate.embeddings.fields import EmbeddingFieldParams, embedding_matrix
from curate.stages.base import GlobalStage, flag_table, register_stage

KEEP_RULES = ("first", "central", "peripheral")


class SemanticDedupParams(EmbeddingFieldParams):
    clusters: Union[Literal["auto"], int] = Field("auto", description="k-means clusters (auto: about sqrt(N))")
    eps: float = Field(0.05, gt=0, lt=1, description="pairs with cosine similarity above 1 - eps are duplicates")
    keep: str = Field("first", description="which item of a duplicate group is kept: first (dataset order), central "
                                           "(closest to the cluster centre), peripheral (farthest, as in SemDeDup), or "
                                           "score:COLUMN (highest value of an earlier stage's column, e.g. score:clip_score)")
    seed: int = Field(0, description="k-means seed")

    @field_validator("clusters")
    @classmethod
    def _clusters(cls, v):
        if isinstance(v, int) and v < 1:
            raise ValueError("clusters must be >= 1 or 'auto'")
        return v

    @field_validator("keep")
    @classmethod
    def _keep(cls, v: str):
        if v in KEEP_RULES or (v.startswith("score:") and len(v) > len("score:")):
            return v
        raise ValueError(f"keep: expected one of {', '.join(KEEP_RULES)} or score:COLUMN, got {v!r}")


@register_stage
class SemanticDedup(GlobalStage):
    """Semantic near-duplicates (SemDeDup): k-means, then cosine > 1 - eps inside each cluster."""

    name = "semantic_dedup"
    Params = SemanticDedupParams
    flags = ("semantic_duplicate",)
    extra = "clip"  # k-means: faiss-cpu if installed, else scikit-learn

    def _score_column(self) -> str | None:
        k = self.params.keep
        return k[len("score:"):] if k.startswith("score:") else None

    def input_columns(self) -> list[str]:
        cols = [self.params.embedding_column()]
        if self._score_column():
            cols.append(self._score_column())
        return cols

    def output_schema(self) -> pa.Schema:
        return pa.schema([pa.field("cluster", pa.int32()), pa.field("nn_similarity", pa.float32()),
                          pa.field("dup_of", pa.string())])

    def reduce(self, mapped: pa.Table) -> pa.Table:
        from curate.embeddings.neighbors import normalise
        from curate.embeddings.semdedup import semantic_dedup

        p: SemanticDedupParams = self.params
        x, valid = embedding_matrix(mapped, p.embedding_column())
        n = mapped.num_rows
        ids = mapped.column("id").to_pylist()
        x = normalise(x) if x.shape[1] else x
        priority = None
        if self._score_column():
            priority = np.asarray(mapped.column(self._score_column()).to_numpy(zero_copy_only=False), dtype=np.float64)
        clusters = None if p.clusters == "auto" else p.clusters
        by_centroid = p.keep if p.keep in ("central", "peripheral") else None
        res = semantic_dedup(x, eps=p.eps, clusters=clusters, priority=priority, valid=valid, by_centroid=by_centroid,
                             seed=p.seed)
        flags, details, dup_of = [None] * n, [None] * n, [None] * n
        threshold = 1 - p.eps
        for i in np.flatnonzero(res.duplicate):
            rep, nn = int(res.representative[i]), int(res.nn_index[i])
            dup_of[i] = ids[rep]
            flags[i] = "semantic_duplicate"
            how = (f"cosine {res.nn_similarity[i]:.3f} > {threshold:.3f}" if nn == rep else
                   f"cosine {res.nn_similarity[i]:.3f} > {threshold:.3f} to {ids[nn][:12]}, itself a duplicate")
            details[i] = f"semantic duplicate of {ids[rep][:12]} ({how}; cluster {int(res.cluster[i])})"
        cluster = pa.array(res.cluster.astype(np.int32), mask=res.cluster < 0)
        nn_sim = pa.array(res.nn_similarity, mask=np.isnan(res.nn_similarity))
        if self.ctx is not None:
            self.ctx.summary.update({"clusters": res.n_clusters, "largest_cluster": res.largest_cluster,
                                     "duplicates": int(res.duplicate.sum()), "threshold": round(threshold, 4),
                                     "embedded": int(valid.sum())})
        return flag_table({"cluster": cluster, "nn_similarity": nn_sim, "dup_of": pa.array(dup_of, pa.string())},
                          flags, details, self.output_schema())
