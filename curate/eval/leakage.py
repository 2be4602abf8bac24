"""Leakage check: test items that are exact or near duplicates of training items.

The run's own dedup machinery (:mod:`curate.dedup`) applied across the two sets, with the run's dedup
params where the run has such a stage (its defaults otherwise):

* ``exact``: identical image bytes, or identical text after :func:`curate.dedup.shingles.normalize_exact`;
* ``image_hash``: perceptual hashes within ``max_distance`` bits (``image_dedup``'s block index);
* ``text_minhash``: MinHash LSH at the ``minhash_dedup`` Jaccard threshold;
* ``embedding``: cosine similarity of the eval's vector features at or above ``cosine`` (when the model
  uses vectors; near copies that survive re-encoding and small crops).

A test item is *leaked* when any method pairs it with a training item (of any arm: the raw set). Scores
are reported on all test items and on the test items that are not leaked.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate.dedup.shingles import normalize_exact
from curate.errors import MissingDependencyError
from curate.manifest import Manifest

log = logging.getLogger(__name__)

#: Examples of leaked pairs kept in eval.json (per method).
MAX_EXAMPLES = 20


@dataclass
class Leakage:
    """Which test rows have a duplicate in the training set, by method."""

    n_test: int
    by_method: dict[str, np.ndarray] = field(default_factory=dict)   # method -> bool (n_test,)
    examples: dict[str, list[dict]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    test_sources: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)   # method -> why it could not run

    @property
    def leaked(self) -> np.ndarray:
        out = np.zeros(self.n_test, dtype=bool)
        for m in self.by_method.values():
            out |= m
        return out

    def to_json(self) -> dict[str, Any]:
        return {"checked": list(self.by_method), "leaked_test_items": int(self.leaked.sum()),
                "test_items": self.n_test,
                "by_method": {k: int(v.sum()) for k, v in self.by_method.items()},
                "params": self.params, "skipped": self.skipped, "examples": self.examples, "seconds": round(self.seconds, 2),
                "leaked_sources": [self.test_sources[j] for j in np.flatnonzero(self.leaked).tolist()]}


def _stage_params(manifest: Manifest, name: str) -> dict[str, Any]:
    s = next((s for s in reversed(manifest.finished_stages()) if s.name == name), None)
    return dict(s.params) if s is not None else {}


def _first_match(keys_train: list, keys_test: list) -> tuple[np.ndarray, np.ndarray]:
    """(test rows, matching train rows) where a test key equals some train key (None never matches)."""
    index: dict = {}
    for i, k in enumerate(keys_train):
        if k is not None:
            index.setdefault(k, i)
    rows, partners = [], []
    for j, k in enumerate(keys_test):
        if k is not None and k in index:
            rows.append(j)
            partners.append(index[k])
    return np.array(rows, dtype=np.int64), np.array(partners, dtype=np.int64)


@dataclass
class ImageKeys:
    """What the image methods need of a set of images: exact digests and packed perceptual hashes."""

    digests: list
    packed: np.ndarray
    valid: np.ndarray

    @classmethod
    def concat(cls, parts: list["ImageKeys"], nbytes: int) -> "ImageKeys":
        if not parts:
            return cls([], np.zeros((0, nbytes), np.uint8), np.zeros(0, bool))
        return cls([d for p in parts for d in p.digests], np.concatenate([p.packed for p in parts]),
                   np.concatenate([p.valid for p in parts]))


class LeakageCheck:
    """Runs the methods over training and test items; see the module docstring."""

    def __init__(self, manifest: Manifest, *, cosine: float = 0.95, quiet: bool = False):
        self.quiet = quiet
        img = _stage_params(manifest, "image_dedup")
        txt = _stage_params(manifest, "minhash_dedup")
        self.image = {"hash": img.get("hash", "phash"), "hash_size": int(img.get("hash_size", 8)),
                      "max_distance": int(img.get("max_distance", 6))}
        self.text = {"threshold": float(txt.get("threshold", 0.8)), "num_perm": int(txt.get("num_perm", 128)),
                     "ngram": int(txt.get("ngram", 5)), "tokens": txt.get("tokens", "word")}
        self.cosine = cosine
        import importlib.util

        self.can_hash = importlib.util.find_spec("imagehash") is not None

    @property
    def hash_bytes(self) -> int:
        return (self.image["hash_size"] ** 2 + 7) // 8

    def image_keys(self, images: list[bytes | None]) -> ImageKeys:
        """Digests and perceptual hashes of encoded images (one shard at a time: bytes are not kept)."""
        from curate.dedup.phash import image_hash_bits

        p = self.image
        packed = np.zeros((len(images), self.hash_bytes), dtype=np.uint8)
        valid = np.zeros(len(images), dtype=bool)
        digests = []
        for i, data in enumerate(images):
            digests.append(hashlib.blake2b(data, digest_size=16).digest() if data else None)
            if not self.can_hash:
                continue
            bits = image_hash_bits(data, method=p["hash"], hash_size=p["hash_size"]) if data else None
            if bits is not None:
                packed[i], valid[i] = bits, True
        return ImageKeys(digests, packed, valid)

    def run(self, train_sources: list[str], test_sources: list[str], *, train_images: ImageKeys | None = None,
            test_images: ImageKeys | None = None, train_texts=None, test_texts=None, train_vectors=None,
            test_vectors=None) -> Leakage:
        import time

        t0 = time.perf_counter()
        out = Leakage(n_test=len(test_sources), test_sources=list(test_sources))
        self._sources = (train_sources, test_sources)
        if train_images is not None and test_images is not None:
            self._add(out, "exact", *_first_match(train_images.digests, test_images.digests))
            if train_images.valid.any():
                self._image_hash(out, train_images, test_images)
                out.params["image_hash"] = self.image
            else:
                out.skipped["image_hash"] = "no image could be hashed (pip install 'curate[dedup]' for imagehash)"
        if train_texts is not None and test_texts is not None:
            t_rows, partners = _first_match([normalize_exact(t) or None for t in train_texts],
                                            [normalize_exact(t) or None for t in test_texts])
            self._add(out, "exact", t_rows, partners)
            try:
                self._text_minhash(out, train_texts, test_texts)
                out.params["text_minhash"] = self.text
            except MissingDependencyError as exc:
                out.skipped["text_minhash"] = str(exc)
        if train_vectors is not None and test_vectors is not None and train_vectors.shape[1]:
            self._embedding(out, train_vectors, test_vectors)
            out.params["embedding"] = {"cosine": self.cosine}
        out.seconds = time.perf_counter() - t0
        return out

    def _add(self, out: Leakage, method: str, test_rows: np.ndarray, train_rows: np.ndarray, extra=None) -> None:
        mask = out.by_method.setdefault(method, np.zeros(out.n_test, dtype=bool))
        train_src, test_src = self._sources
        ex = out.examples.setdefault(method, [])
        seen = set(np.flatnonzero(mask).tolist())
        for k, (j, i) in enumerate(zip(test_rows.tolist(), train_rows.tolist())):
            if j in seen:
                continue
            seen.add(j)
            if len(ex) < MAX_EXAMPLES:
                e = {"test": test_src[j], "train": train_src[i]}
                if extra is not None:
                    e["distance"] = round(float(extra[k]), 4)
                ex.append(e)
        mask[test_rows] = True

    def _image_hash(self, out: Leakage, train: ImageKeys, test: ImageKeys) -> None:
        from curate.dedup.phash import close_pairs

        packed = np.concatenate([train.packed, test.packed])
        valid = np.concatenate([train.valid, test.valid])
        a, b, dist, _ = close_pairs(packed, valid, self.image["max_distance"])
        n_train = len(train.valid)
        cross = (a < n_train) & (b >= n_train)
        self._add(out, "image_hash", b[cross] - n_train, a[cross], dist[cross])

    def _text_minhash(self, out: Leakage, train_texts, test_texts) -> None:
        from curate.dedup.lsh import similar_pairs
        from curate.dedup.minhash import text_signatures

        p = self.text
        texts = [t or "" for t in list(train_texts) + list(test_texts)]
        sig, counts = text_signatures(texts, num_perm=p["num_perm"], ngram=p["ngram"], tokens=p["tokens"])
        a, b, sim, _ = similar_pairs(sig, counts > 0, threshold=p["threshold"])
        n_train = len(train_texts)
        cross = (a < n_train) & (b >= n_train)
        self._add(out, "text_minhash", b[cross] - n_train, a[cross], sim[cross])

    def _embedding(self, out: Leakage, train_x: np.ndarray, test_x: np.ndarray, block: int = 2048) -> None:
        from tqdm.auto import tqdm

        def unit(x):
            x = np.asarray(x, dtype=np.float32)
            return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

        tr, te = unit(train_x), unit(test_x)
        best = np.full(len(te), -np.inf, dtype=np.float32)
        arg = np.zeros(len(te), dtype=np.int64)
        for s in tqdm(range(0, len(tr), block), desc="leakage: embeddings", unit="block", file=sys.stderr,
                      disable=self.quiet, mininterval=1.0):
            sims = te @ tr[s:s + block].T
            j = sims.argmax(axis=1)
            v = sims[np.arange(len(te)), j]
            better = v > best
            best[better], arg[better] = v[better], j[better] + s
        rows = np.flatnonzero(best >= self.cosine)
        self._add(out, "embedding", rows, arg[rows], best[rows])
