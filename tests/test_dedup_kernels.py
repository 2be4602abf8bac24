"""The compiled MinHash engine gives the numpy engine's signatures bit for bit, and the numpy LSH
gives datasketch's MinHashLSH candidate pairs."""

import numpy as np
import pytest

from curate.dedup import kernels
from curate.dedup.lsh import MAX_ALL_PAIRS_BUCKET, banding, similar_pairs
from curate.dedup.minhash import signatures, text_signatures
from curate.dedup.shingles import _word_bytes, shingle_hashes

needs_numba = pytest.mark.skipif(not kernels.available(), reason=f"numba not usable: {kernels.unavailable_reason()}")

WORDS = ["a", "Bb", "ccc", "Ünïcödé", "x" * 9, "y" * 17, "ZZZZZZZZ", "12", "日本語", "naïve", "end."]
SEPS = [" ", ", ", "!! ", "\t", "  -- ", "\n", "_"]


def _texts(rng, n=600):
    texts = ["", None, "   ", "one", "one two", "a b c d", "a b c d e", "!!!", "x" * 70 + " y", "é" * 40]
    for _ in range(n):
        k = int(rng.integers(0, 60))
        texts.append("".join(str(rng.choice(WORDS)) + str(rng.choice(SEPS)) for _ in range(k)))
    return texts


@needs_numba
@pytest.mark.parametrize("ngram,num_perm", [(1, 64), (3, 128), (5, 128), (5, 256), (9, 32)])
def test_compiled_text_signatures_equal_numpy_ones(ngram, num_perm):
    texts = _texts(np.random.default_rng(ngram))
    for lowercase in (True, False):
        a_sig, a_n = text_signatures(texts, num_perm=num_perm, ngram=ngram, lowercase=lowercase, seed=3, engine="numba",
                                     batch_size=97)
        b_sig, b_n = text_signatures(texts, num_perm=num_perm, ngram=ngram, lowercase=lowercase, seed=3, engine="numpy")
        np.testing.assert_array_equal(a_n, b_n)
        np.testing.assert_array_equal(a_sig, b_sig)


@needs_numba
def test_compiled_signatures_from_hashes_equal_numpy_ones():
    hashes, offsets = shingle_hashes(_texts(np.random.default_rng(7)), ngram=2)
    a, ea = signatures(hashes, offsets, num_perm=128, seed=5, engine="numba")
    b, eb = signatures(hashes, offsets, num_perm=128, seed=5, engine="numpy")
    np.testing.assert_array_equal(ea, eb)
    np.testing.assert_array_equal(a, b)


@needs_numba
def test_word_mask_matches_the_byte_rule():
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, size=1000, dtype=np.uint8)
    mask = kernels.word_mask(kernels.padded_words(data), len(data))
    bits = np.unpackbits(mask.view(np.uint8), bitorder="little")[:len(data)].astype(bool)
    np.testing.assert_array_equal(bits, _word_bytes(data))


def _datasketch_pairs(sig, valid, bands, rows):
    datasketch = pytest.importorskip("datasketch")
    from itertools import combinations

    lsh = datasketch.MinHashLSH(num_perm=sig.shape[1], params=(bands, rows))
    for i in np.flatnonzero(valid).tolist():
        lsh.insert(i, datasketch.LeanMinHash(seed=1, hashvalues=sig[i], scheme="affine32"), check_duplication=False)
    pairs = set()
    for table in lsh.hashtables:
        for key in table.keys():
            members = sorted(table.get(key))
            if 2 <= len(members) <= MAX_ALL_PAIRS_BUCKET:
                pairs.update(combinations(members, 2))
    return pairs


def test_numpy_lsh_candidates_equal_datasketch_minhashlsh():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 50, size=(400, 32), dtype=np.uint32)  # small alphabet: many shared bands
    sig = np.concatenate([base, base[:100] ^ (rng.random((100, 32)) < 0.2).astype(np.uint32)])
    valid = rng.random(len(sig)) > 0.05
    bands, rows = 16, 2
    a, b, _, stats = similar_pairs(sig, valid, threshold=0.5, bands=bands, rows=rows, verify=False)
    assert stats.large_buckets == 0
    assert set(zip(a.tolist(), b.tolist())) == _datasketch_pairs(sig, valid, bands, rows)
    assert banding(0.8, 128) == (14, 9)


def test_large_buckets_give_neighbour_pairs_not_all_pairs():
    sig = np.zeros((300, 16), dtype=np.uint32)
    sig[:, 0] = np.arange(300)  # one band shared by all rows, the other distinguishes them
    a, b, _, stats = similar_pairs(sig, np.ones(300, bool), threshold=0.1, bands=2, rows=8, verify=False)
    assert stats.large_buckets == 1
    assert 0 < len(a) < 300 * 9  # a window of neighbours, not 300*299/2 pairs


def test_banding_is_datasketchs_choice():
    datasketch = pytest.importorskip("datasketch")
    for threshold, num_perm, w in [(0.8, 128, 0.9), (0.5, 64, 0.5), (0.3, 256, 0.9), (0.7, 32, 0.9)]:
        ds = datasketch.MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(round(1 - w, 6), w))
        assert banding(threshold, num_perm, false_negative_weight=w) == (ds.b, ds.r)


@needs_numba
def test_compiled_band_keys_equal_numpy_ones(monkeypatch):
    from curate.dedup import lsh

    rng = np.random.default_rng(4)
    sig = rng.integers(0, 2**32, size=(300, 64), dtype=np.uint32)
    idx = np.flatnonzero(rng.random(300) > 0.3)
    compiled = lsh.band_key(sig, idx, 3, 7)
    monkeypatch.setattr(kernels, "available", lambda: False)
    np.testing.assert_array_equal(compiled, lsh.band_key(sig, idx, 3, 7))
