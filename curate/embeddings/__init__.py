"""The algorithmic core of the embedding stages: image decoding workers, batched encoding, the
embedding cache, nearest neighbours / k-means, semantic dedup (SemDeDup) and kNN outlier scores.
The stage classes in ``curate/stages/`` are thin wrappers around these."""
