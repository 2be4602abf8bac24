"""``minhash_dedup``: near-duplicate texts with MinHash signatures, LSH and union-find."""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from curate.dedup.keep import (CLUSTER_COLUMNS, SCORE_COLUMN, KeepRule, cluster_duplicates, keep_field,
                               keep_input_columns, keep_scores, short_id)
from curate.dedup.lsh import similar_pairs
from curate.dedup.minhash import pair_jaccard, text_signatures
from curate.dedup.unionfind import components
from curate.stages.base import Column, GlobalStage, Outputs, Score, StageParams, register_stage


class MinhashDedupParams(StageParams):
    field: str = Field("text", description="text column: a record column or an earlier stage's column (stage.column)")
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard similarity at which two texts are near duplicates")
    num_perm: int = Field(128, ge=16, le=1024, description="signature length (more: more accurate, slower)")
    ngram: int = Field(5, ge=1, le=64, description="shingle length in tokens")
    tokens: Literal["word", "char"] = Field("word", description="shingles of words or of characters")
    bands: Optional[int] = Field(None, ge=2, description="LSH bands (with rows; default: derived from threshold and num_perm)")
    rows: Optional[int] = Field(None, ge=1, description="LSH rows per band (with bands)")
    false_negative_weight: float = Field(
        0.9, ge=0.0, le=1.0, description="when bands/rows are derived: weight of missed pairs against false "
                                         "candidates (high favours recall; verification removes false candidates)")
    verify: bool = Field(True, description="keep only LSH candidates whose estimated Jaccard reaches the threshold")
    keep: KeepRule = keep_field("first")
    lowercase: bool = Field(True, description="lower-case texts before shingling")
    seed: int = Field(1, ge=0, description="hash seed of the signatures")

    @model_validator(mode="after")
    def _banding(self):
        if (self.bands is None) != (self.rows is None):
            raise ValueError("bands and rows go together: give both or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands * rows = {self.bands * self.rows} must be <= num_perm ({self.num_perm})")
        return self


@register_stage
class MinhashDedup(GlobalStage):
    """Near-duplicate texts: MinHash signatures, LSH candidates, verified pairs, union-find clusters."""

    name = "minhash_dedup"
    Params = MinhashDedupParams
    flags = ("near_duplicate",)
    extra = "dedup"
    params: MinhashDedupParams

    OUTPUTS = Outputs(
        columns=(*CLUSTER_COLUMNS,
                 Column("jaccard", pa.float32(), "score", "estimated Jaccard similarity to the representative"),
                 Column("shingles", pa.int32(), description="shingles in the text (0: empty, never a duplicate)")),
        scores=(Score(column="jaccard", flag="near_duplicate", param="threshold", flags_when="above",
                      label="Jaccard"),))

    def input_columns(self) -> list[str]:
        return list(dict.fromkeys([self.params.field, *keep_input_columns(self.params.keep, self.params.field)]))

    def map(self, batch: pa.Table) -> pa.Table:
        """Signatures of one shard (``num_perm`` uint32 per row, 0.5 KB at 128) and the keep score."""
        p = self.params
        sig, counts = text_signatures(batch.column(p.field), num_perm=p.num_perm, seed=p.seed, tokens=p.tokens,
                                      ngram=p.ngram, lowercase=p.lowercase)
        sig_col = pa.FixedSizeListArray.from_arrays(pa.array(sig.reshape(-1), pa.uint32()), p.num_perm)
        return pa.table({"id": batch.column("id"), "signature": sig_col,
                         "shingles": pa.array(counts.astype(np.int32)),
                         SCORE_COLUMN: keep_scores(batch, p.keep, p.field)})

    def reduce(self, mapped: pa.Table) -> pa.Table:
        """LSH over all signatures, verification, union-find, one representative per cluster.

        Memory per million rows at ``num_perm=128``, threshold 0.8: ~1 GB of signatures (the
        concatenated shards and their numpy view), ~0.1 GB of ids, one band's keys and sort order at a
        time (16 bytes per row), 16 bytes per candidate pair (figures: docs/benchmarks/dedup.md).
        Distributed (Ray executor, :mod:`curate.distributed.minhash`): the map already produced the
        signatures; band keys are the shuffle keys, buckets yield candidate pairs in partition tasks,
        each pair's signatures are fetched from their shards and verified in partition tasks, and
        union-find runs on the driver over the verified edges only (0.6 KB per row that has a near
        duplicate)."""
        p = self.params
        n = mapped.num_rows
        ids = mapped.column("id").to_pylist()
        sig = mapped.column("signature").combine_chunks().flatten().to_numpy().reshape(n, p.num_perm)
        n_shingles = mapped.column("shingles").to_numpy(zero_copy_only=False)
        a, b, _, stats = similar_pairs(sig, n_shingles > 0, threshold=p.threshold, bands=p.bands, rows=p.rows,
                                       verify=p.verify, progress=n > 100_000,
                                       false_negative_weight=p.false_negative_weight)
        labels = components(n, a, b)
        scores = mapped.column(SCORE_COLUMN).to_numpy(zero_copy_only=False).astype(np.float64)
        clusters = cluster_duplicates(ids, labels, scores, flag="near_duplicate")
        members, rep = clusters.members, clusters.rep
        jac = np.full(n, np.nan, dtype=np.float32)
        jac[members] = pair_jaccard(sig, members, rep[members])
        clusters.describe(lambda i, r: f"near-duplicate of {short_id(ids[r])} (Jaccard {jac[i]:.2f})")
        self.summary.update({"bands": stats.bands, "rows": stats.rows, "lsh_indexed_rows": stats.indexed,
                             "candidate_pairs": stats.candidate_pairs, "verified_pairs": stats.verified_pairs,
                             **clusters.summary("near_duplicates"), "empty_texts": int(np.sum(n_shingles == 0))})
        return clusters.table({"jaccard": pa.array(jac, pa.float32(), mask=np.isnan(jac)),
                               "shingles": pa.array(n_shingles.astype(np.int32))}, self.output_schema())
