"""Duplicate detection core: text normalisation and shingling, a vectorised MinHash engine, LSH
candidate generation and verification, perceptual-hash block index, union-find, representative choice.

The stages in ``curate/stages/{exact_dedup,minhash_dedup,image_dedup}.py`` are thin wrappers around
this package; nothing here knows about run directories or executors.
"""
