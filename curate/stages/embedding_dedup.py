"""``embedding_dedup``: near-duplicate images from image embeddings (nearest neighbours that stand out
from their neighbourhood), verified by perceptual-hash distance, clustered with union-find: crops,
re-encodes and recolourings that a perceptual hash alone misses, without merging look-alikes. The rule
is :func:`curate.embeddings.neardup.near_duplicate_pairs`."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from curate.dedup.keep import (CLUSTER_COLUMNS, SCORE_COLUMN, KeepRule, cluster_duplicates, keep_field,
                               keep_input_columns, keep_scores, short_id)
from curate.dedup.unionfind import components
from curate.embeddings.fields import embedding_matrix
from curate.stages._embedding_params import EmbeddingFieldParams
from curate.stages.base import Column, GlobalStage, Outputs, Score, register_stage

HASH_BITS = 64  # phash, hash_size 8


class EmbeddingDedupParams(EmbeddingFieldParams):
    k: int = Field(10, ge=1, le=1000, description="nearest neighbours per image that are candidates")
    min_similarity: float = Field(0.60, ge=-1, le=1, description="candidates need at least this cosine similarity")
    min_margin: float = Field(0.05, ge=0, le=2, description="a pair's cosine must exceed the k-th neighbour's "
                                                             "similarity by this much (stands out from look-alikes)")
    verify: Literal["phash", "none"] = Field(
        "phash", description="phash: a candidate below accept_similarity must also be within max_distance phash bits "
                             "(same pixel layout, not only the same content); none: the embedding alone (cosine and margin)")
    max_distance: int = Field(18, ge=0, lt=HASH_BITS, description="verify: phash: largest Hamming distance (of 64 bits)")
    accept_similarity: float = Field(0.90, ge=-1, le=1, description="candidates (with the margin) at or above this "
                                                                     "cosine need no phash verification")
    mirror: bool = Field(False, description="verify: phash: also compare against the mirrored image (finds "
                                            "left-right flipped copies; admits a few more look-alikes)")
    search: Literal["auto", "exact", "approximate"] = Field(
        "auto", description="nearest neighbours: exact (O(N^2)), approximate (faiss IVF) or auto (approximate from "
                            "200,000 images when faiss is installed)")
    keep: KeepRule = keep_field("largest_image")

    @model_validator(mode="after")
    def _check(self):
        if self.field != "image" and self.column is None:
            raise ValueError("field: embedding_dedup finds near-duplicate images (field: image, or column: an image "
                             "embedding); for texts use minhash_dedup or semantic_dedup")
        if self.accept_similarity < self.min_similarity:
            raise ValueError(f"accept_similarity ({self.accept_similarity}) must be >= min_similarity "
                             f"({self.min_similarity})")
        return self


@register_stage
class EmbeddingDedup(GlobalStage):
    """Near-duplicate images: embedding neighbours that stand out from the crowd, verified by phash (union-find)."""

    name = "embedding_dedup"
    Params = EmbeddingDedupParams
    flags = ("near_duplicate",)
    extra = "dedup"  # imagehash for the verification; faiss-cpu (optional) for the approximate index
    params: EmbeddingDedupParams

    OUTPUTS = Outputs(
        columns=(*CLUSTER_COLUMNS,
                 Column("similarity", pa.float32(), "score", "cosine to the cluster member it was linked to"),
                 Column("hamming", pa.int32(), description="phash distance (bits) to the linked member")),
        scores=(Score(column="similarity", flag="near_duplicate", param="min_similarity", flags_when="above",
                      label="cosine similarity"),))

    def input_columns(self) -> list[str]:
        p = self.params
        extra = ["image"] if p.verify == "phash" else []
        return list(dict.fromkeys([p.embedding_column(), *extra, *keep_input_columns(p.keep, "text")]))

    def map(self, batch: pa.Table) -> pa.Table:
        """The embedding, the phash of each image (hex) and the keep score."""
        from curate.dedup.phash import image_hash_bits

        p = self.params
        cols = {"id": batch.column("id"), "embedding": batch.column(p.embedding_column())}
        if p.verify == "phash":
            blobs = batch.column("image").to_pylist()
            for col, mirror in (("image_hash", False), ("mirror_hash", True)):
                if mirror and not p.mirror:
                    continue
                hashes = []
                for data in blobs:
                    bits = image_hash_bits(data, method="phash", hash_size=8, mirror=mirror) if data else None
                    hashes.append(bits.tobytes().hex() if bits is not None else None)
                cols[col] = pa.array(hashes, pa.string())
        cols[SCORE_COLUMN] = keep_scores(batch, p.keep, "text")
        return pa.table(cols)

    def reduce(self, mapped: pa.Table) -> pa.Table:
        """Nearest neighbours over all embeddings, verification, union-find, one representative per cluster.

        Memory per million images: the embeddings (4 * D bytes each, 5 GB for 1280-d), the kNN result
        (k * 12 bytes each) and 8 bytes of hash. Time: exact search O(N^2 D) (blocked, all cores), the
        faiss IVF index about O(N sqrt(N) D / 30). Distributed (:mod:`curate.distributed.neardup`): exact
        kNN by shards of the index as shard tasks, each candidate pair sent to its second row's shard for
        the margin and the phash check, components and clusters as shard tasks; the driver holds counts.
        Equal to this reduce with ``search: exact`` (``approximate`` reduces here)."""
        from curate.embeddings.neardup import near_duplicate_pairs
        from curate.embeddings.neighbors import normalise

        p = self.params
        n = mapped.num_rows
        ids = mapped.column("id").to_pylist()
        x, valid = embedding_matrix(mapped, "embedding")
        x = normalise(x) if x.shape[1] else x
        hashes = hashed = mirrored = None
        if p.verify == "phash":
            hexes = mapped.column("image_hash").to_pylist()
            hashed = np.array([h is not None for h in hexes], dtype=bool)
            hashes = _unhex(hexes)
            if p.mirror:
                mirrored = _unhex(mapped.column("mirror_hash").to_pylist())
        pairs = near_duplicate_pairs(x, valid, hashes, hashed, k=p.k, min_similarity=p.min_similarity,
                                     min_margin=p.min_margin, accept_similarity=p.accept_similarity,
                                     max_distance=p.max_distance, mirrored=mirrored, search=p.search)
        labels = components(n, pairs.a, pairs.b)
        scores = mapped.column(SCORE_COLUMN).to_numpy(zero_copy_only=False).astype(np.float64)
        clusters = cluster_duplicates(ids, labels, scores, flag="near_duplicate")
        link_to, link_cos, link_ham = _links(n, pairs, clusters.rep)

        def detail(i: int, r: int) -> str:
            j = int(link_to[i])
            return link_detail(ids[r], link_cos[i], int(link_ham[i]), None if j == r else ids[j])

        clusters.describe(detail)
        members = np.zeros(n, dtype=bool)
        members[clusters.members] = True
        self.summary.update({"candidate_pairs": int(pairs.candidates), "verified_pairs": int(len(pairs.a)),
                             **clusters.summary("near_duplicates"), "embedded": int(valid.sum()),
                             "cutoff": p.min_similarity,
                             **({"unhashed": int(np.sum(~hashed))} if hashed is not None else {})})
        return clusters.table({"similarity": pa.array(link_cos, pa.float32(), mask=~members),
                               "hamming": pa.array(link_ham, pa.int32(), mask=~members | (link_ham < 0))},
                              self.output_schema())


def link_detail(rep_id: str, cosine: float, hamming: int, via_id: str | None = None) -> str:
    """A member's detail: its representative, the cosine (and phash distance, ``-1``: none) of the pair
    that links it, and the member it is linked through when that is not the representative."""
    via = "" if via_id is None else f" via {short_id(via_id)}"
    ham = f", phash distance {hamming}/{HASH_BITS} bits" if hamming >= 0 else ""
    return f"near-duplicate of {short_id(rep_id)} (cosine {cosine:.3f}{ham}{via})"


def best_links(i: np.ndarray, j: np.ndarray, cos: np.ndarray, to_rep: np.ndarray) -> np.ndarray:
    """Per row, the verified pair that best explains its cluster membership, from entries ``(i, j)``
    (each pair once from each side; ``to_rep``: ``j`` is ``i``'s representative): the pair with its
    representative if there is one, else the most similar; ties to the largest partner below ``i``,
    else the largest above. The index of the chosen entry of each distinct ``i``, in ``i`` order
    (any order of the entries gives the same choice)."""
    order = np.lexsort((j, j < i, cos, to_rep, i))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = i[order][1:] != i[order][:-1]
    return order[last]


def _links(n: int, pairs, rep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the verified pair that best explains its cluster membership (:func:`best_links`).
    Returns ``(partner, cosine, hamming)`` (-1 / NaN / -1 for rows without a pair)."""
    i = np.concatenate([pairs.a, pairs.b])
    j = np.concatenate([pairs.b, pairs.a])
    cos = np.concatenate([pairs.cosine, pairs.cosine])
    ham = np.concatenate([pairs.hamming, pairs.hamming])
    best = best_links(i, j, cos, j == rep[i])
    partner = np.full(n, -1, dtype=np.int64)
    link_cos = np.full(n, np.nan, dtype=np.float32)
    link_ham = np.full(n, -1, dtype=np.int32)
    partner[i[best]], link_cos[i[best]], link_ham[i[best]] = j[best], cos[best], ham[best]
    return partner, link_cos, link_ham


def _unhex(hexes: list) -> np.ndarray:
    """Packed 64-bit hashes ``(N, 8)`` from hex strings (zeros where missing)."""
    return np.frombuffer(b"".join(bytes.fromhex(h) if h else bytes(8) for h in hexes), np.uint8).reshape(len(hexes), 8)
