"""``semantic_dedup``: SemDeDup over embeddings (k-means, then near-identical pairs inside each cluster)."""

from __future__ import annotations

from typing import Literal, Union

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from curate.dedup.keep import CLUSTER_COLUMNS, cluster_duplicates, keep_field, keep_rule_type, short_id
from curate.embeddings.fields import embedding_matrix
from curate.stages._embedding_params import EmbeddingFieldParams
from curate.stages.base import Column, GlobalStage, Outputs, Score, register_stage

#: Representative rules beyond the shared ones (curate.dedup.keep): by distance to the k-means centre.
CENTROID_RULES = ("central", "peripheral")
_NOT_HERE = ("longest_text", "largest_image")  # the stage reads only embeddings
SemanticKeepRule = keep_rule_type(extra=CENTROID_RULES, without=_NOT_HERE)


class SemanticDedupParams(EmbeddingFieldParams):
    clusters: Union[Literal["auto"], int] = Field("auto", description="k-means clusters (auto: about sqrt(N))")
    eps: float = Field(0.05, gt=0, lt=1, description="pairs with cosine similarity above 1 - eps are duplicates")
    keep: SemanticKeepRule = keep_field("first", CENTROID_RULES, _NOT_HERE)
    seed: int = Field(0, description="k-means seed")
    kmeans_sample: int = Field(100_000, ge=1, description="k-means is fitted on about this many rows (at least 40 "
                                                          "per cluster), then every row is assigned to its nearest centre")

    @field_validator("clusters")
    @classmethod
    def _clusters(cls, v):
        if isinstance(v, int) and v < 1:
            raise ValueError("clusters must be >= 1 or 'auto'")
        return v



def duplicate_detail(rep_id: str, nn_id: str, similarity: float, threshold: float, cluster: int) -> str:
    """A duplicate's detail: its representative, and the item it is closest to when that is another duplicate."""
    how = (f"cosine {similarity:.3f} > {threshold:.3f}" if nn_id == rep_id else
           f"cosine {similarity:.3f} > {threshold:.3f} to {short_id(nn_id)}, itself a duplicate")
    return f"semantic duplicate of {short_id(rep_id)} ({how}; k-means cluster {cluster})"


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

    OUTPUTS = Outputs(
        columns=(*CLUSTER_COLUMNS,
                 Column("nn_similarity", pa.float32(), "score",
                        "cosine to the most similar higher-ranked item of its k-means cluster"),
                 Column("kmeans_cluster", pa.int32(), description="k-means cluster (-1/null: no embedding)")),
        scores=(Score(column="nn_similarity", flag="semantic_duplicate", param=None, flags_when="above",
                      label="cosine similarity"),))

    def reduce(self, mapped: pa.Table) -> pa.Table:
        """k-means fitted on about ``kmeans_sample`` rows, every row assigned, SemDeDup per cluster.

        Memory per million rows of D floats: the embeddings twice (8 D MB: read and normalised) plus one
        similarity block. Distributed (:mod:`curate.distributed.semantic`): the sample is fitted on the
        driver, assignment and the per-cluster work run as shard tasks; same results."""
        from curate.embeddings.neighbors import normalise
        from curate.embeddings.semantic_dedup import semantic_dedup

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
                             seed=p.seed, sample=p.kmeans_sample)
        threshold = 1 - p.eps
        groups = np.arange(n)
        dup = np.flatnonzero(res.duplicate)
        groups[dup] = res.representative[dup]
        # SemDeDup already chose each group's representative (by centre distance or priority): it scores highest
        clusters = cluster_duplicates(ids, groups, (np.arange(n) == groups).astype(np.float64), flag="semantic_duplicate")

        clusters.describe(lambda i, rep: duplicate_detail(ids[rep], ids[int(res.nn_index[i])], float(res.nn_similarity[i]),
                                                          threshold, int(res.cluster[i])))
        self.summary.update({"kmeans_clusters": res.n_clusters, "largest_kmeans_cluster": res.largest_cluster,
                             **clusters.summary(), "threshold": round(threshold, 4), "cutoff": round(threshold, 4),
                             "embedded": int(valid.sum())})
        return clusters.table({"nn_similarity": pa.array(res.nn_similarity, mask=np.isnan(res.nn_similarity)),
                               "kmeans_cluster": pa.array(res.cluster.astype(np.int32), mask=res.cluster < 0)},
                              self.output_schema())
