"""``exact_dedup``: rows with identical image bytes and/or normalised text."""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from curate.dedup.keep import (CLUSTER_COLUMNS, SCORE_COLUMN, KeepRule, cluster_duplicates, keep_field,
                               keep_input_columns, keep_scores, short_id)
from curate.dedup.shingles import normalize_exact
from curate.stages.base import Action, GlobalStage, Outputs, StageParams, register_stage


class ExactDedupParams(StageParams):
    on: list[Literal["image", "text"]] = Field(
        default_factory=lambda: ["image", "text"], min_length=1,
        description="what must be identical: image bytes, normalised text (NFKC, casefold, no punctuation, "
                    "collapsed whitespace), or both (the pair)")
    keep: KeepRule = keep_field("first")
    action: Action | dict[str, Action] = "drop"

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data):
        # YAML 1.1 (PyYAML) reads an unquoted key `on` as the boolean true.
        if isinstance(data, dict) and True in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data


def exact_key(image: bytes | None, text: str | None, on: list[str]) -> bytes | None:
    """16-byte key of the selected fields, or ``None`` when all of them are missing or empty."""
    norm = normalize_exact(text) if "text" in on else None
    has_image = "image" in on and bool(image)
    has_text = "text" in on and bool(norm)
    if not has_image and not has_text:
        return None
    h = hashlib.blake2b(digest_size=16)
    if "image" in on:
        h.update(b"I" + (hashlib.blake2b(image, digest_size=16).digest() if has_image else b"-"))
    if "text" in on:
        h.update(b"T" + (norm.encode("utf-8") if has_text else b"-"))
    return h.digest()


@register_stage
class ExactDedup(GlobalStage):
    """Exact duplicates: same image bytes and/or same normalised text; keeps one per cluster."""

    name = "exact_dedup"
    Params = ExactDedupParams
    flags = ("exact_duplicate",)
    extra = None
    params: ExactDedupParams

    OUTPUTS = Outputs(columns=CLUSTER_COLUMNS)

    def input_columns(self) -> list[str]:
        return list(dict.fromkeys([*self.params.on, *keep_input_columns(self.params.keep, "text")]))

    def map(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        images = batch.column("image").to_pylist() if "image" in self.params.on else [None] * n
        texts = batch.column("text").to_pylist() if "text" in self.params.on else [None] * n
        keys = [exact_key(i, t, self.params.on) for i, t in zip(images, texts)]
        return pa.table({"id": batch.column("id"), "key": pa.array(keys, pa.binary(16)),
                         SCORE_COLUMN: keep_scores(batch, self.params.keep, "text")})

    def reduce(self, mapped: pa.Table) -> pa.Table:
        """Group rows by key. Memory: about 100 bytes per row (ids, keys, a dictionary of keys),
        i.e. ~0.1 GB per million rows. Distributed (Ray executor, :mod:`curate.distributed.exact`): the
        key is the shuffle key, groups and representatives are found in partition tasks; the driver
        holds nothing per row."""
        n = mapped.num_rows
        ids = mapped.column("id").to_pylist()
        enc = mapped.column("key").combine_chunks().dictionary_encode()
        codes = enc.indices.to_numpy(zero_copy_only=False)
        present = np.asarray(enc.indices.is_valid())
        labels = np.arange(n, dtype=np.int64)
        if present.any():
            rows = np.flatnonzero(present)
            first = np.full(len(enc.dictionary), n, dtype=np.int64)
            np.minimum.at(first, codes[rows].astype(np.int64), rows)
            labels[rows] = first[codes[rows].astype(np.int64)]
        scores = mapped.column(SCORE_COLUMN).to_numpy(zero_copy_only=False).astype(np.float64)
        what = " and ".join({"image": "image bytes", "text": "normalised text"}[o] for o in self.params.on)
        clusters = cluster_duplicates(ids, labels, scores, flag="exact_duplicate")
        clusters.describe(lambda i, r: f"exact duplicate of {short_id(ids[r])} (same {what})")
        self.summary.update(clusters.summary())
        return clusters.table({}, self.output_schema())
