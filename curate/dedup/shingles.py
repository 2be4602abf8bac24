"""Text normalisation and vectorised shingling.

:func:`shingle_hashes` turns a batch of texts into one flat ``uint64`` array of shingle hashes plus
per-document offsets, with array operations only: Arrow splits and lower-cases the texts, every word
is hashed once (8 bytes at a time, :func:`curate.dedup.hashing.substring_hashes`),
and word n-gram hashes are hashes over windows of word hashes. Character n-grams are windows over
Unicode code points. No Python loop runs per token.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dedup.hashing import mix64, substring_hashes

_P64 = np.uint64(0x100000001B3 * 2 + 1)

_PUNCT = re.compile(r"[\W_]+", re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalize_exact(text: str | None) -> str | None:
    """Normal form for exact text duplicates: Unicode NFKC, casefold, punctuation stripped, whitespace
    collapsed. ``None`` stays ``None``.

    >>> normalize_exact("  A  cat,\\tON the MAT!! ")
    'a cat on the mat'
    """
    if text is None:
        return None
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _PUNCT.sub(" ", t)
    return _SPACE.sub(" ", t).strip()


def _as_string_array(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if not isinstance(texts, pa.Array):
        texts = pa.array(list(texts), type=pa.large_string())
    if not pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.large_string())
    return pc.fill_null(texts, "")


def _word_bytes(data: np.ndarray) -> np.ndarray:
    """Which bytes belong to words: ASCII letters and digits, and every byte of a non-ASCII character
    (uint8 arithmetic wraps, so ``x - 97 < 26`` tests ``97 <= x < 123``)."""
    with np.errstate(over="ignore"):
        isw = data >= 0x80
        isw |= ((data | np.uint8(0x20)) - np.uint8(97)) < 26
        isw |= (data - np.uint8(48)) < 10
    return isw


def _utf8_buffer(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a large_string array without nulls, and offsets starting at 0."""
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8)[offs[0]:offs[-1]] if bufs[2] is not None else np.zeros(0, np.uint8)
    return data, offs - offs[0]


def ngram_hashes(token_hashes: np.ndarray, doc_offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every window of ``n`` consecutive tokens inside each document.

    ``mix64(sum_j h[i + j] * P**(n - 1 - j))`` computed with ``n`` shifted array operations over the
    whole batch; windows that cross a document end are dropped. A document with fewer than ``n``
    tokens (but at least one) gets one shingle over all its tokens. Returns the hashes and the new
    per-document offsets.
    """
    h = np.asarray(token_hashes, dtype=np.uint64)
    doc_offsets = np.asarray(doc_offsets, dtype=np.int64)
    counts = np.diff(doc_offsets)
    m = len(h)
    per_doc = np.where(counts >= n, counts - n + 1, (counts > 0).astype(np.int64))
    out_offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(per_doc, out=out_offsets[1:])
    if m >= n:
        with np.errstate(over="ignore"):
            g = h[: m - n + 1].copy()
            for j in range(1, n):
                g *= _P64
                g += h[j: m - n + 1 + j]
        valid = np.ones(m - n + 1, dtype=bool)
        ends = doc_offsets[1:]
        for j in range(1, n):  # windows starting in the last n - 1 tokens of a document cross its end
            last = ends - j
            valid[last[(last >= doc_offsets[:-1]) & (last < m - n + 1)]] = False
        g = g[valid]
    else:
        g = np.zeros(0, dtype=np.uint64)
    short = np.flatnonzero((counts > 0) & (counts < n))
    if len(short):  # one shingle per short document, inserted at its place
        with np.errstate(over="ignore"):
            sh = np.zeros(len(short), dtype=np.uint64)
            for j in range(int(counts[short].max())):
                inside = j < counts[short]
                sh[inside] = sh[inside] * _P64 + h[doc_offsets[short][inside] + j]
        full = np.empty(int(out_offsets[-1]), dtype=np.uint64)
        is_short = np.zeros(len(full), dtype=bool)
        is_short[out_offsets[short]] = True
        full[is_short] = sh
        full[~is_short] = g
        g = full
    return mix64(g, inplace=True), out_offsets


def shingle_hashes(texts, *, tokens: Literal["word", "char"] = "word", ngram: int = 5,
                   lowercase: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of a batch of texts.

    Parameters
    ----------
    texts : sequence of str or None, or a pyarrow string array, length N
    tokens : {'word', 'char'}
        ``word``: words are runs of ASCII letters and digits and non-ASCII characters (ASCII
        punctuation and whitespace separate words);
        ``char``: Unicode code points after collapsing whitespace.
    ngram : int
        Shingle length in tokens. A text shorter than ``ngram`` tokens is one shingle.
    lowercase : bool
        Lower-case before shingling.

    Returns
    -------
    hashes : ndarray of uint64, shape (M,)
        Shingle hashes of all documents, document after document (a document may repeat a hash).
    offsets : ndarray of int64, shape (N + 1,)
        Document ``i`` owns ``hashes[offsets[i]:offsets[i + 1]]``; empty texts own nothing.
    """
    arr = _as_string_array(texts)
    if lowercase:
        arr = pc.utf8_lower(arr)
    if tokens == "word":
        data, offs = _utf8_buffer(arr)
        isw = _word_bytes(data)
        n_bytes = len(data)
        inner_starts = offs[:-1][offs[:-1] < n_bytes]
        prev = np.empty(n_bytes, dtype=bool)
        if n_bytes:
            prev[0] = False
            prev[1:] = isw[:-1]
            prev[inner_starts] = False  # a word never continues across documents
        nxt = np.empty(n_bytes, dtype=bool)
        if n_bytes:
            nxt[-1] = False
            nxt[:-1] = isw[1:]
            nxt[offs[1:][offs[1:] > 0] - 1] = False
        starts = np.flatnonzero(isw & ~prev)
        ends = np.flatnonzero(isw & ~nxt) + 1
        doc_offsets = np.searchsorted(starts, offs).astype(np.int64)
        return ngram_hashes(substring_hashes(data, starts, ends), doc_offsets, ngram)
    if tokens == "char":
        arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, r"\s+", " "))
        lengths = pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
        doc_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=doc_offsets[1:])
        joined = "".join(arr.to_pylist())
        codepoints = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        return ngram_hashes(mix64(codepoints.astype(np.uint64)), doc_offsets, ngram)
    raise ValueError(f"tokens must be 'word' or 'char', got {tokens!r}")


def shingle_sets(texts, **kwargs) -> list[set[int]]:
    """The shingle hashes of each text as a Python set (for exact Jaccard in tests and benchmarks)."""
    hashes, offsets = shingle_hashes(texts, **kwargs)
    return [set(hashes[offsets[i]:offsets[i + 1]].tolist()) for i in range(len(offsets) - 1)]


__all__ = ["normalize_exact", "shingle_hashes", "shingle_sets"]
