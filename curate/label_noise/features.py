"""Feature matrices for the classifier: a list column, downsampled pixels, or TF-IDF of text.

``features:`` in YAML is one of

* ``auto`` (the default): the embedding columns (role ``embedding``) of the latest earlier stage that
  declares any (its first column with values, the image embedding before the text one); else ``pixels``
  when the records have images, else ``tfidf``. The summary's ``features`` says which was used;
* ``pixels``: each record's ``image`` decoded, resized to ``pixel_size`` x ``pixel_size`` (gray or RGB),
  scaled to [0, 1], then PCA to ``pca_components`` dimensions (the classifier standardises those):
  usable with no model at all;
* ``tfidf``: TF-IDF of the record's ``text`` (word 1-2 grams); sparse for ``logistic``, reduced by a
  truncated SVD (fitted on a hashed sample, as the PCA) for the dense classifiers (``mlp``, ``knn``,
  ``lda``...): the offline counterpart of ``pixels`` for text;
* ``<column>``: a list-of-numbers column of an earlier stage, e.g. ``embed.image_embedding``, or a list
  inside the record's JSON ``meta`` as ``meta.<key>`` (what a manifest's extra column becomes);
* ``pred_probs:<column>``: such a column holding out-of-sample class probabilities (N x K): no
  classifier runs.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from curate.errors import CurateError, require

log = logging.getLogger(__name__)

FeatureKind = Literal["auto", "pixels", "tfidf", "column", "pred_probs"]

FEATURE_HELP = ("what the classifier sees: 'auto' (an earlier stage's embedding, else pixels for images or tfidf for "
                "text), 'pixels' (downsampled image, PCA), 'tfidf' (text), a list column of an earlier stage such as "
                "'embed.image_embedding' (or 'meta.<key>'), or 'pred_probs:<column>' for out-of-sample probabilities "
                "you computed (then no classifier runs)")


@dataclass(frozen=True)
class FeatureSpec:
    """A parsed ``features:`` value."""

    kind: FeatureKind
    column: str | None = None  # the column reference for "column" / "pred_probs"

    @classmethod
    def parse(cls, value: str) -> "FeatureSpec":
        value = value.strip()
        if value == "auto":
            return cls("auto")
        if value == "pixels":
            return cls("pixels")
        if value == "tfidf":
            return cls("tfidf")
        if value.startswith("pred_probs:"):
            col = value.split(":", 1)[1].strip()
            if not col:
                raise ValueError("pred_probs: name the column after the colon, e.g. 'pred_probs:model.probs'")
            return cls("pred_probs", col)
        if not value or ":" in value or " " in value:
            raise ValueError(f"expected 'auto', 'pixels', 'tfidf', a column like 'embed.image_embedding' or "
                             f"'pred_probs:<column>', got {value!r}")
        return cls("column", value)

    @property
    def input_column(self) -> str:
        """The record or stage column the map step reads (``auto``: see the stage's feature candidates)."""
        if self.kind == "pixels":
            return "image"
        if self.kind == "tfidf":
            return "text"
        assert self.column is not None
        return "meta" if self.meta_key is not None else self.column

    @property
    def meta_key(self) -> str | None:
        """``key`` for a ``meta.<key>`` reference (a list stored in the record's JSON meta)."""
        if self.column and self.column.startswith("meta."):
            return self.column.split(".", 1)[1]
        return None


# -- per-shard (map) -------------------------------------------------------------------------------
def pixel_vectors(images: list[bytes | None], *, size: int, mode: Literal["gray", "rgb"]) -> pa.Array:
    """Decode and downsample images to ``size*size*channels`` uint8 vectors (null where undecodable).

    Returns a ``list<uint8>`` array, one entry per image (uint8 keeps the per-shard cache small).
    """
    from PIL import Image

    pil_mode = "L" if mode == "gray" else "RGB"
    out: list[Any] = []
    for data in images:
        if data is None:
            out.append(None)
            continue
        try:
            with Image.open(io.BytesIO(data)) as im:
                im = im.convert(pil_mode)
                im = im.resize((size, size), Image.Resampling.BOX)
                out.append(np.asarray(im, dtype=np.uint8).reshape(-1))
        except Exception as exc:  # PIL raises many types for broken data
            log.debug("pixels: cannot decode an image: %s", exc)
            out.append(None)
    return pa.array([None if v is None else v.tolist() for v in out], type=pa.list_(pa.uint8()))


def meta_lists(metas: list[str | None], key: str) -> pa.Array:
    """The list stored under ``key`` in each row's JSON meta, as ``list<float32>`` (null if absent)."""
    out: list[Any] = []
    for m in metas:
        value = None
        if m:
            try:
                value = json.loads(m).get(key)
            except (json.JSONDecodeError, AttributeError):
                value = None
        if isinstance(value, str):  # a CSV cell holding "[0.1, 0.9]"
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = None
        out.append(value if isinstance(value, list) else None)
    return pa.array(out, type=pa.list_(pa.float32()))


# -- whole dataset (reduce) ------------------------------------------------------------------------


#: PCA of pixel features (and the truncated SVD of tfidf) is fitted on at most about this many rows,
#: picked by a hash of the row number (:func:`curate.embeddings.semantic_dedup.sample_mask`), so a
#: distributed reduce fits the same sample
PCA_SAMPLE = 100_000


def project(x: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """``(x - mean) @ components.T`` as float32, computed in float64 with a fixed summation order (no
    BLAS): the same value for a row in any batch or process."""
    centred = np.asarray(x, dtype=np.float64) - np.asarray(mean, dtype=np.float64)
    return np.einsum("ij,kj->ik", centred, np.asarray(components, dtype=np.float64)).astype(np.float32)


def fit_pca(x: np.ndarray, *, components: int, seed: int = 0):
    """The fitted PCA of ``x`` (randomized SVD) when it reduces anything, else ``None``. One BLAS thread,
    as :func:`fit_svd`: a multi-threaded BLAS splits the products by its thread count (components a few
    ulps apart from 800 x 256 up), and the driver reduce must fit what a distributed one-thread task fits."""
    if not (components and components < x.shape[1] and x.shape[0] > components):
        return None
    from threadpoolctl import threadpool_limits

    PCA = require("sklearn.decomposition", "labels", "PCA of pixel features").PCA
    with threadpool_limits(1):
        return PCA(n_components=components, svd_solver="randomized", random_state=seed).fit(x)


def pca_info(pca, input_dim: int) -> dict[str, Any]:
    info: dict[str, Any] = {"input_dim": int(input_dim)}
    if pca is not None:
        info["pca_components"] = int(pca.n_components_)
        info["pca_explained_variance"] = round(float(pca.explained_variance_ratio_.sum()), 4)
    return info


def reduce_dims(x: np.ndarray, *, components: int, seed: int = 0, standardize: bool = True,
                fit_rows: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Standardise columns and project onto the top ``components`` principal components.

    Unsupervised (no labels), so fitting it on the whole dataset leaks nothing into the cross-validation.
    ``fit_rows`` (bool mask or indices): fit the PCA on these rows only (default all), project every row
    (:func:`project`). Returns the reduced matrix, shape (N, min(components, D)), and a description for
    the summary.
    """
    x = x.astype(np.float32, copy=False)
    if standardize:
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std[std < 1e-6] = 1.0
        x = (x - mean) / std
    pca = fit_pca(x if fit_rows is None else x[fit_rows], components=components, seed=seed)
    info = pca_info(pca, x.shape[1])
    if pca is not None:
        x = project(x, pca.mean_, pca.components_)
    return x, info


def unit_concat(columns, names: list[str], dims: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``features: [a, b, ...]``: each list column's rows scaled to unit length, side by side (float32);
    a row has features when every column has a value (the others are zero). Row by row, so any split of
    the rows gives the same rows; ``dims`` (each column's width over the whole dataset) widens a column
    no row of this batch has. Returns the matrix, which rows have features and each column's width."""
    from curate.vectors import list_column_to_matrix

    mats, present = [], np.ones(len(columns[0]), dtype=bool)
    for j, (col, ref) in enumerate(zip(columns, names)):
        x, ok = list_column_to_matrix(col, what=f"features {ref}")
        if dims is not None and x.shape[1] != dims[j]:
            x = np.zeros((len(ok), dims[j]), dtype=np.float32)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        mats.append(x / np.where(norms > 0, norms, 1.0))
        present &= ok
    x = np.hstack(mats).astype(np.float32, copy=False)
    x[~present] = 0.0
    return x, present, [int(m.shape[1]) for m in mats]


def unit_concat_info(dims: list[int]) -> dict[str, Any]:
    """The summary's ``feature_info`` of :func:`unit_concat` features."""
    return {"dim": int(sum(dims)), "dims": [int(d) for d in dims], "scaled": "each column to unit length"}


# -- TF-IDF: the one rule, for the driver reduce and the distributed one -------------------------------
#: word 1-2 grams (scikit-learn's default tokens, lowercased) in at least TFIDF_MIN_DF documents and at
#: most TFIDF_MAX_DF of them; of those the TFIDF_MAX_FEATURES with the largest total count
TFIDF_NGRAMS = (1, 2)
TFIDF_MIN_DF = 2
TFIDF_MAX_DF = 0.9
TFIDF_MAX_FEATURES = 200_000


def text_present(texts: list[str | None]) -> np.ndarray:
    """Rows whose text has something besides white space (the rows TF-IDF features exist for)."""
    return np.array([bool(t and t.strip()) for t in texts], dtype=bool)


def _counter(vocabulary=None, dtype=np.int64):
    text_mod = require("sklearn.feature_extraction.text", "labels", "tfidf features")
    return text_mod.CountVectorizer(ngram_range=TFIDF_NGRAMS, vocabulary=vocabulary, dtype=dtype)


def count_terms(texts: list[str]):
    """Every term of ``texts`` (no pruning) with its document frequency and total count: ``(terms
    (object array, in the order first seen), df, tf, counts)``, ``counts`` the (N, terms) int64 CSR
    count matrix; all empty when no text has a term."""
    import scipy.sparse as sp

    vec = _counter()
    try:
        counts = vec.fit_transform(texts)
    except ValueError:  # scikit-learn: "empty vocabulary" (no text has a token)
        return np.zeros(0, object), np.zeros(0, np.int64), np.zeros(0, np.int64), sp.csr_matrix((len(texts), 0),
                                                                                               dtype=np.int64)
    terms = np.empty(len(vec.vocabulary_), dtype=object)
    for term, j in vec.vocabulary_.items():
        terms[j] = term
    df = np.bincount(counts.indices, minlength=len(terms)).astype(np.int64)
    tf = np.asarray(counts.sum(axis=0), dtype=np.int64).ravel()
    return terms, df, tf, counts


def df_bounds(n_docs: int) -> tuple[float, int]:
    """The document counts a term may have, ``(at most, at least)``, among ``n_docs`` documents
    (scikit-learn's ``max_df * n`` and ``min_df``)."""
    high, low = TFIDF_MAX_DF * n_docs, TFIDF_MIN_DF
    if high < low:
        raise CurateError(f"tfidf: {n_docs} labelled texts are too few for a vocabulary (a term must be in at least "
                          f"{low} of them and in at most {TFIDF_MAX_DF:.0%}); label more rows or give embeddings")
    return high, low


def df_keep(df: np.ndarray, n_docs: int) -> np.ndarray:
    """Terms whose document frequency is within :func:`df_bounds`."""
    high, low = df_bounds(n_docs)
    return (df <= high) & (df >= low)


def alphabetical(terms) -> np.ndarray:
    """The indices that sort ``terms`` by code point (Python's string order; UTF-8 bytes sort alike)."""
    import pyarrow.compute as pc

    if not isinstance(terms, (pa.Array, pa.ChunkedArray)):
        terms = pa.array(terms, pa.string())
    return np.asarray(pc.sort_indices(terms), dtype=np.int64)


def top_terms(terms: np.ndarray, tf: np.ndarray, max_features: int) -> np.ndarray:
    """Which of ``terms`` the vocabulary keeps: the ``max_features`` with the largest total count ``tf``,
    ties to the alphabetically first. (scikit-learn takes the same counts, but splits ties by numpy's
    unstable, CPU-dependent argsort; :mod:`curate.distributed.label_noise` computes this rule from per
    partition candidate lists.)"""
    keep = np.ones(len(terms), dtype=bool)
    if len(terms) > max_features:
        alpha = alphabetical(terms)
        order = alpha[np.argsort(-tf[alpha], kind="stable")]
        keep[:] = False
        keep[order[:max_features]] = True
    return keep


def no_vocabulary(n_docs: int) -> CurateError:
    return CurateError(f"tfidf: no word or word pair is in at least {TFIDF_MIN_DF} and at most {TFIDF_MAX_DF:.0%} "
                       f"of the {n_docs} labelled texts; give embeddings instead (an `embed` stage)")


def tfidf_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """scikit-learn's smoothed IDF in float32: ``log((1 + n) / (1 + df)) + 1``, computed as its
    ``TfidfTransformer.fit`` does (so the values are bit-equal)."""
    df = np.asarray(df).astype(np.float32) + np.float32(1.0)
    idf = np.full_like(df, fill_value=n_docs + 1, dtype=np.float32)
    idf /= df
    np.log(idf, out=idf)
    idf += 1.0
    return idf


def tfidf_weights(counts, idf: np.ndarray):
    """A (N, V) count matrix with sorted column indices -> TF-IDF rows (float32 CSR): sublinear tf, times
    ``idf``, l2-normalised, by scikit-learn's ``TfidfTransformer``. Row by row, so any split of the rows
    gives the same rows."""
    text_mod = require("sklearn.feature_extraction.text", "labels", "tfidf features")
    weigh = text_mod.TfidfTransformer(sublinear_tf=True)
    weigh.idf_ = np.asarray(idf, dtype=np.float32)
    return weigh.transform(counts.astype(np.float32), copy=False)


def tfidf_transform(texts: list[str], terms, idf: np.ndarray):
    """TF-IDF rows of ``texts`` for a fixed vocabulary ``terms`` (alphabetical) and its ``idf``."""
    import scipy.sparse as sp

    if not len(texts):
        return sp.csr_matrix((0, len(terms)), dtype=np.float32)
    counts = _counter(vocabulary={t: j for j, t in enumerate(terms)}).transform(texts)
    return tfidf_weights(counts, idf)


def tfidf_vocabulary(texts: list[str], *, max_features: int | None = None):
    """The vocabulary of ``texts`` (alphabetical terms), its IDF and the (N, V) count matrix with sorted
    column indices: :func:`df_keep`, then :func:`top_terms`."""
    max_features = TFIDF_MAX_FEATURES if max_features is None else max_features
    terms, df, tf, counts = count_terms(texts)
    kept = np.flatnonzero(df_keep(df, len(texts)))
    kept = kept[top_terms(terms[kept], tf[kept], max_features)]
    if not len(kept):
        raise no_vocabulary(len(texts))
    kept = kept[alphabetical(terms[kept])]
    counts = counts[:, kept]
    counts.sort_indices()
    return terms[kept], tfidf_idf(df[kept], len(texts)), counts


def svd_reduces(components: int, vocabulary: int) -> bool:
    """Whether tfidf for a dense classifier is reduced by a truncated SVD (else it stays sparse)."""
    return bool(components) and components < vocabulary


def fit_svd(x, *, components: int, seed: int = 0) -> np.ndarray:
    """The ``(components, V)`` components of scikit-learn's randomized ``TruncatedSVD`` fitted on the
    sparse rows ``x`` (one BLAS thread: the same numbers in any process)."""
    from threadpoolctl import threadpool_limits

    TruncatedSVD = require("sklearn.decomposition", "labels", "tfidf features").TruncatedSVD
    with threadpool_limits(1):
        return np.asarray(TruncatedSVD(n_components=components, random_state=seed).fit(x).components_, np.float32)


def project_sparse(x, components: np.ndarray) -> np.ndarray:
    """``x @ components.T`` of sparse rows ``x`` as float32, computed in float64 row by row over each
    row's stored entries in order (scipy's CSR product, no BLAS): the same value in any batch."""
    import scipy.sparse as sp

    x = sp.csr_matrix(x, dtype=np.float64)
    return np.asarray(x @ np.ascontiguousarray(np.asarray(components, np.float64).T)).astype(np.float32)


def tfidf_matrix(texts: list[str], *, components: int, sparse_ok: bool, seed: int = 0, fit_rows=None):
    """TF-IDF of word 1-2 grams (sublinear tf) of ``texts``, on the vocabulary :func:`tfidf_vocabulary`
    takes from them; unless ``sparse_ok``, reduced to ``components`` by a truncated SVD fitted on the
    rows ``fit_rows`` (indices; default all) and every row projected (:func:`project_sparse`).

    Returns the matrix (scipy sparse or dense, N rows) and a description for the summary.
    """
    terms, idf, counts = tfidf_vocabulary(texts)
    x = tfidf_weights(counts, idf)
    info: dict[str, Any] = {"vocabulary": len(terms)}
    if not sparse_ok and svd_reduces(components, x.shape[1]):
        sample = x if fit_rows is None else x[np.asarray(fit_rows)]
        x = project_sparse(x, fit_svd(sample, components=components, seed=seed))
        info.update(svd_info(components, sample.shape[0]))
    return x, info


def svd_info(components: int, rows: int) -> dict[str, int]:
    """The summary's part on the truncated SVD of tfidf."""
    return {"svd_components": int(components), "svd_fitted_on": int(rows)}
