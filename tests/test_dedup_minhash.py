"""The MinHash engine: shingling, signature accuracy against exact Jaccard (next to datasketch's
classic MinHash at the same num_perm), LSH + verification, union-find."""

import numpy as np
import pytest

from curate.dedup.hashing import mix64, range_hashes
from curate.dedup.lsh import similar_pairs
from curate.dedup.minhash import estimate_jaccard, signatures
from curate.dedup.shingles import normalize_exact, shingle_hashes, shingle_sets
from curate.dedup.unionfind import components

K = 128


def _set_pairs(rng, n_pairs=300):
    """Pairs of integer sets with Jaccard spread over [0, 1] and sizes from 8 to 2000 elements."""
    pairs = []
    for _ in range(n_pairs):
        size = int(rng.choice([8, 40, 230, 2000]))
        j = rng.uniform(0, 1)
        inter = int(round(2 * size * j / (1 + j)))  # |A|=|B|=size, |A&B| = inter
        base = rng.choice(10**9, size=2 * size - inter, replace=False)
        a = set(base[:size].tolist())
        b = set(base[size - inter:].tolist())
        pairs.append((a, b))
    return pairs


def _ours(sets):
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sets])])
    hashes = mix64(np.fromiter((x for s in sets for x in s), dtype=np.uint64))
    sig, empty = signatures(hashes, offsets, num_perm=K, seed=7)
    assert not empty.any()
    return sig


def test_jaccard_estimates_match_exact_jaccard_as_well_as_classic_minhash():
    datasketch = pytest.importorskip("datasketch")
    rng = np.random.default_rng(0)
    pairs = _set_pairs(rng)
    exact = np.array([len(a & b) / len(a | b) for a, b in pairs])
    sig = _ours([s for p in pairs for s in p])
    ours = estimate_jaccard(sig[0::2], sig[1::2])
    classic = []
    for a, b in pairs:
        ma, mb = datasketch.MinHash(num_perm=K, seed=7), datasketch.MinHash(num_perm=K, seed=7)
        ma.update_batch([str(x).encode() for x in a])
        mb.update_batch([str(x).encode() for x in b])
        classic.append(ma.jaccard(mb))
    err_ours, err_classic = ours - exact, np.array(classic) - exact
    rmse_ours, rmse_classic = np.sqrt(np.mean(err_ours ** 2)), np.sqrt(np.mean(err_classic ** 2))
    # theory for classic MinHash: sd = sqrt(J (1 - J) / K); over J ~ U(0, 1) the RMSE is about sqrt(1/6/K) = 0.036
    assert rmse_ours < 0.045, rmse_ours
    assert rmse_ours <= 1.15 * rmse_classic + 0.003, (rmse_ours, rmse_classic)
    assert abs(err_ours.mean()) < 0.01  # unbiased
    # identical sets always estimate 1, disjoint large sets near 0
    same = _ours([pairs[0][0], set(pairs[0][0])])
    assert estimate_jaccard(same[0], same[1]) == 1.0


def test_small_sets_are_densified_not_biased():
    rng = np.random.default_rng(1)
    pairs = [p for p in _set_pairs(rng, 400) if len(p[0]) == 8]
    exact = np.array([len(a & b) / len(a | b) for a, b in pairs])
    sig = _ours([s for p in pairs for s in p])
    est = estimate_jaccard(sig[0::2], sig[1::2])
    assert abs((est - exact).mean()) < 0.02
    assert np.sqrt(np.mean((est - exact) ** 2)) < 0.06


def test_text_signatures_track_exact_shingle_jaccard():
    rng = np.random.default_rng(2)
    vocab = [f"w{i}" for i in range(3000)]
    texts = []
    for _ in range(150):
        words = list(rng.choice(vocab, size=int(rng.integers(20, 300))))
        edited = list(words)
        for _ in range(int(rng.integers(0, len(words) // 4 + 1))):  # replace some words
            edited[int(rng.integers(len(edited)))] = str(rng.choice(vocab))
        texts += [" ".join(words), " ".join(edited)]
    sets = shingle_sets(texts, ngram=5)
    exact = np.array([len(sets[i] & sets[i + 1]) / len(sets[i] | sets[i + 1]) for i in range(0, len(texts), 2)])
    hashes, offsets = shingle_hashes(texts, ngram=5)
    sig, _ = signatures(hashes, offsets, num_perm=K)
    est = estimate_jaccard(sig[0::2], sig[1::2])
    assert exact.min() < 0.3 and exact.max() == 1.0  # the pairs span the range
    assert np.sqrt(np.mean((est - exact) ** 2)) < 0.05
    assert abs((est - exact).mean()) < 0.015


def test_word_shingles_ignore_case_punctuation_and_spacing_and_stay_in_their_document():
    a, b, c = shingle_sets(["The cat, sat on the MAT!", "the  cat sat\non the mat", "cat sat on the mat the"], ngram=3)
    assert a == b and a != c
    # short texts are one shingle; empty and missing texts have none
    h, off = shingle_hashes(["one two", "", None, "   ", "x y z w"], ngram=5)
    assert np.diff(off).tolist() == [1, 0, 0, 0, 1]
    # a shingle never spans two documents: the same words split over two rows give other shingles
    (joined,) = shingle_sets(["a b c d e f"], ngram=3)
    left, right = shingle_sets(["a b c", "d e f"], ngram=3)
    assert len(joined) == 4 and len(left) == len(right) == 1 and left | right < joined
    # character shingles: code points, whitespace collapsed
    x, y = shingle_sets(["Ünïcode  text", "ünïcode text"], tokens="char", ngram=3)
    assert x == y and len(x) == len("ünïcode text") - 2


def test_hashes_are_deterministic_and_position_independent():
    data = np.frombuffer(b"xxabcyyabc", dtype=np.uint8)
    h = range_hashes(data, np.array([2, 7, 2]), np.array([5, 10, 4]))
    assert h[0] == h[1] != h[2]
    assert int(range_hashes(np.frombuffer(b"abc", np.uint8), [0], [3])[0]) == int(h[0])
    s1, _ = signatures(*shingle_hashes(["some words here and there again"]), num_perm=64, seed=3)
    s2, _ = signatures(*shingle_hashes(["some words here and there again"]), num_perm=64, seed=3)
    s3, _ = signatures(*shingle_hashes(["some words here and there again"]), num_perm=64, seed=4)
    assert (s1 == s2).all() and not (s1 == s3).all()


def test_normalize_exact():
    assert normalize_exact("  Ａ cat,\tON the MAT!! ") == "a cat on the mat"  # NFKC folds the full-width A
    assert normalize_exact("Straße") == normalize_exact("STRASSE")  # casefold
    assert normalize_exact(None) is None


def test_lsh_finds_near_duplicates_and_verification_removes_false_candidates():
    pytest.importorskip("datasketch")
    rng = np.random.default_rng(3)
    vocab = [f"w{i}" for i in range(5000)]
    base = [" ".join(rng.choice(vocab, size=120)) for _ in range(200)]
    texts = list(base)
    dup_of = {}
    for i in range(0, 200, 10):  # 20 near copies: one word changed (Jaccard about 0.92)
        words = base[i].split()
        words[60] = "changed"
        dup_of[len(texts)] = i
        texts.append(" ".join(words))
    related = []
    for i in range(5, 200, 10):  # 20 related texts: first half replaced (Jaccard about 0.3), not duplicates
        words = base[i].split()
        words[:60] = rng.choice(vocab, size=60)
        related.append(" ".join(words))
    texts += related
    hashes, offsets = shingle_hashes(texts)
    sig, empty = signatures(hashes, offsets, num_perm=K)
    a, b, sim, stats = similar_pairs(sig, ~empty, threshold=0.8)
    assert set(zip(a.tolist(), b.tolist())) == {(i, j) for j, i in dup_of.items()}
    assert (sim >= 0.8).all() and stats.bands * stats.rows <= K
    # a loose band setting makes candidates that verification rejects
    a2, b2, _, stats2 = similar_pairs(sig, ~empty, threshold=0.8, bands=32, rows=1)
    assert stats2.candidate_pairs > stats2.verified_pairs == len(a2) == len(dup_of)
    _, _, _, unverified = similar_pairs(sig, ~empty, threshold=0.8, bands=32, rows=1, verify=False)
    assert unverified.verified_pairs == unverified.candidate_pairs > len(dup_of)


def test_union_find_components():
    labels = components(8, np.array([1, 3, 5, 7, 2]), np.array([2, 4, 4, 6, 4]))
    assert labels.tolist() == [0, 1, 1, 1, 1, 1, 6, 6]
    rng = np.random.default_rng(0)
    n = 2000
    a, b = rng.integers(0, n, 1500), rng.integers(0, n, 1500)
    labels = components(n, a, b)
    # reference: a plain union-find
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist()):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    ref = np.array([find(i) for i in range(n)])
    roots_min = {}
    for i, r in enumerate(ref):
        roots_min.setdefault(r, i)
    assert labels.tolist() == [roots_min[r] for r in ref]
