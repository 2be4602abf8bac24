"""``image_dedup``: near-duplicate images by perceptual hash (imagehash) within a Hamming distance."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from curate.dedup.keep import (CLUSTER_COLUMNS, SCORE_COLUMN, KeepRule, cluster_duplicates, keep_field,
                               keep_input_columns, keep_scores, short_id)
from curate.dedup.phash import close_pairs, hamming, image_hash_bits, packed_hashes
from curate.dedup.unionfind import components
from curate.stages.base import Column, GlobalStage, Outputs, Score, StageParams, register_stage


class ImageDedupParams(StageParams):
    hash: Literal["phash", "dhash", "whash", "ahash"] = Field("phash", description="perceptual hash (imagehash)")
    hash_size: int = Field(8, ge=2, le=32, description="hash side: the hash has hash_size**2 bits")
    max_distance: int = Field(6, ge=0, description="largest Hamming distance (bits) between near duplicates")
    keep: KeepRule = keep_field("largest_image")

    @model_validator(mode="after")
    def _sizes(self):
        bits = self.hash_size ** 2
        if self.max_distance >= bits:
            raise ValueError(f"max_distance must be < {bits} (the hash has hash_size**2 = {bits} bits)")
        if self.hash == "whash" and self.hash_size & (self.hash_size - 1):
            raise ValueError(f"whash needs hash_size a power of 2, got {self.hash_size}")
        return self


@register_stage
class ImageDedup(GlobalStage):
    """Near-duplicate images: perceptual hashes within max_distance bits (block index, union-find)."""

    name = "image_dedup"
    Params = ImageDedupParams
    flags = ("near_duplicate",)
    extra = "dedup"
    params: ImageDedupParams

    OUTPUTS = Outputs(
        columns=(Column("image_hash", pa.string(), description="perceptual hash (hex)"), *CLUSTER_COLUMNS,
                 Column("hamming", pa.int32(), "score", "Hamming distance (bits) to the representative's hash")),
        scores=(Score(column="hamming", flag="near_duplicate", param="max_distance", flags_when="below",
                      label="hash distance"),))

    def input_columns(self) -> list[str]:
        return list(dict.fromkeys(["image", *keep_input_columns(self.params.keep, "text")]))

    def map(self, batch: pa.Table) -> pa.Table:
        """The perceptual hash of each image (hex; null when missing or undecodable)."""
        p = self.params
        hashes = []
        for data in batch.column("image").to_pylist():
            bits = image_hash_bits(data, method=p.hash, hash_size=p.hash_size) if data else None
            hashes.append(bits.tobytes().hex() if bits is not None else None)
        return pa.table({"id": batch.column("id"), "image_hash": pa.array(hashes, pa.string()),
                         SCORE_COLUMN: keep_scores(batch, p.keep, "text")})

    def reduce(self, mapped: pa.Table) -> pa.Table:
        """Block index over all hashes, union-find, one representative per cluster.

        Memory per million images (64-bit hashes): ~0.2 GB (ids, packed hashes, sort orders) plus 24
        bytes per verified pair; time grows with the block collisions (see ``curate.dedup.phash``).
        Distributed (:mod:`curate.distributed.phash`): each block's value is a shuffle key, groups
        yield verified pairs in partition tasks, components and clusters run as shard tasks; nothing
        per row on the driver."""
        p = self.params
        n = mapped.num_rows
        ids = mapped.column("id").to_pylist()
        hexes = mapped.column("image_hash").to_pylist()
        nbytes = (p.hash_size ** 2 + 7) // 8
        packed, valid = packed_hashes(hexes, nbytes)
        a, b, _, candidates = close_pairs(packed, valid, p.max_distance)
        labels = components(n, a, b)
        scores = mapped.column(SCORE_COLUMN).to_numpy(zero_copy_only=False).astype(np.float64)
        clusters = cluster_duplicates(ids, labels, scores, flag="near_duplicate")
        members, rep = clusters.members, clusters.rep
        dist = np.zeros(n, dtype=np.int32)
        dist[members] = hamming(packed[members], packed[rep[members]])
        bits = p.hash_size ** 2
        clusters.describe(lambda i, r: f"near-duplicate of {short_id(ids[r])} ({p.hash} distance {dist[i]}/{bits} bits)")
        self.summary.update({"block_candidates": candidates, "close_pairs": len(a),
                             **clusters.summary("near_duplicates"), "unhashed": int(np.sum(~valid))})
        is_member = np.zeros(n, dtype=bool)
        is_member[members] = True
        return clusters.table({"image_hash": pa.array(hexes, pa.string()),
                               "hamming": pa.array(dist, pa.int32(), mask=~is_member)}, self.output_schema())
