"""label_noise's distributed scheme gives the driver reduce's results.

Map shards are written directly (embeddings, pixels or given probabilities with planted label flips,
exact duplicate rows for ties, unlabelled rows, rows without features, a class too small to score, an
empty shard); the same shards are reduced on the driver (``Runner._reduce``) and as shard tasks on the
local executor's distributed path: every output column and the summary (but its timings) must be equal.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tests.test_distributed_reduces import DistributedLocal, executor, split  # noqa: F401  (executor: a fixture)
from tests.test_distributed_reduces import run_both as reduce_both

TIMINGS = ("cv_seconds", "cleanlab_seconds")


@pytest.fixture(scope="module")
def inline():
    """The same tasks run in this process (``workers: 1``): the scheme's logic without the pool's start-up."""
    with DistributedLocal(workers=1, quiet=True) as ex:
        yield ex


def untimed(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k not in TIMINGS}
    if "rounds" in out:
        out["rounds"] = [{k: v for k, v in r.items() if k != "seconds"} for r in out["rounds"]]
    return out


def run_both(tmp_path, params: dict, table: pa.Table, sizes: list[int], executor) -> dict:
    return reduce_both(tmp_path, "label_noise", params, split(table, sizes), executor, comparable=untimed)


def labelled_rows(n_per_class: int = 75, k: int = 4, dim: int = 24, spread: float = 1.6, flip: float = 0.1,
                  seed: int = 0) -> tuple[list[str | None], np.ndarray, np.ndarray]:
    """Class blobs with ``flip`` of the labels changed, 30 exact copies of other rows (ties), 8 rows
    without a label, and a class of 3 rows (too small to score)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, size=(k, dim))
    true = np.repeat(np.arange(k), n_per_class)
    x = centres[true] + rng.normal(0, 1, size=(len(true), dim))
    labels = true.copy()
    flips = rng.choice(len(true), int(flip * len(true)), replace=False)
    labels[flips] = (labels[flips] + rng.integers(1, k, len(flips))) % k
    copies = rng.choice(len(true), 30, replace=False)
    x = np.concatenate([x, x[copies], centres[:1] + rng.normal(0, 1, size=(3, dim))])
    labels = np.concatenate([labels, labels[copies], np.full(3, k)])
    order = rng.permutation(len(labels))
    x, labels = x[order], labels[order]
    names: list[str | None] = [f"class{c}" for c in labels]
    for i in rng.choice(len(names), 8, replace=False).tolist():
        names[i] = None
    return names, x.astype(np.float32), labels


def embedding_table(missing: int = 6, **kw) -> pa.Table:
    names, x, _ = labelled_rows(**kw)
    rows = [v.tolist() for v in x]
    for i in np.random.default_rng(1).choice(len(rows), missing, replace=False).tolist():
        rows[i] = None
    return pa.table({"id": [f"r{i:05d}" for i in range(len(rows))], "label": pa.array(names, pa.string()),
                     "f0": pa.array(rows, pa.list_(pa.float32()))})


SIZES = [70, 0, 110, 48, 105]  # 333 rows, one empty shard


def test_embeddings_distributed_equals_driver(tmp_path, executor):
    """Defaults: logistic + kNN, C chosen per dataset, prune_by_noise_rate; worker processes."""
    summary = run_both(tmp_path, {"features": "emb"}, embedding_table(), SIZES, executor)
    assert summary["scored"] > 300 and summary["classes_skipped"] == {"class4": 3}
    assert summary["label_issues"] >= 5 and not summary["abstained"]


@pytest.mark.parametrize("params", [
    {"classifier": "logistic", "logistic_c": 0.3, "rounds": 2, "folds": 3, "method": "both", "rank_by": "normalized_margin",
     "min_confidence": 0.5, "max_class_fraction": 0.05, "flag_top_fraction": 0.03, "knn_neighbors": 10},
    {"classifier": "logistic+knn+lda", "logistic_c": 0.3, "folds": 3, "knn_neighbors": 10, "lda_shrinkage": 0.3},
])
def test_embedding_settings_distributed_equal_driver(tmp_path, inline, params):
    summary = run_both(tmp_path, {"features": "emb", **params}, embedding_table(), SIZES, inline)
    assert summary["scored"] > 300 and summary["classes_skipped"] == {"class4": 3}
    assert summary["label_issues"] >= 5 and not summary["abstained"]


@pytest.mark.parametrize("method,rounds", [("confident_learning", 1), ("low_normalized_margin", 2),
                                           ("low_self_confidence", 1)])
def test_off_diagonal_methods_distributed_equal_driver(tmp_path, inline, method, rounds):
    """The methods cleanlab computes from its own thresholds and issue count: the exact thresholds,
    the global count, the lowest scores by radix passes (``rounds: 2`` runs them twice)."""
    summary = run_both(tmp_path, {"features": "emb", "classifier": "logistic", "logistic_c": 0.3, "folds": 3,
                                  "method": method, "rounds": rounds}, embedding_table(), SIZES, inline)
    assert summary["cleanlab_issues"] > 5 and not summary["abstained"]


def test_list_features_distributed_equal_driver(tmp_path, inline):
    """``features: [a, b]``: each column scaled to unit length per shard, side by side; rows missing
    either column unscored (one column's rows go missing where the other's do not), an all-zero row."""
    names, x, _ = labelled_rows()
    a, b = [v.tolist() for v in x[:, :16]], [(3.0 * v).tolist() for v in x[:, 16:]]
    a[7] = [0.0] * 16  # norm 0: left as it is
    rng = np.random.default_rng(2)
    for i in rng.choice(len(a), 5, replace=False).tolist():
        a[i] = None
    for i in rng.choice(len(b), 5, replace=False).tolist():
        b[i] = None
    table = pa.table({"id": [f"r{i:05d}" for i in range(len(a))], "label": pa.array(names, pa.string()),
                      "f0": pa.array(a, pa.list_(pa.float32())), "f1": pa.array(b, pa.list_(pa.float32()))})
    summary = run_both(tmp_path, {"features": ["emb.a", "emb.b"], "logistic_c": 0.3, "folds": 3, "knn_neighbors": 10},
                       table, SIZES, inline)
    assert summary["features"] == "emb.a + emb.b" and summary["feature_info"]["dims"] == [16, 8]
    assert 6 <= summary["missing_features"] <= 10 and summary["label_issues"] >= 5 and not summary["abstained"]


def test_round_count_first_distributed_equals_driver(tmp_path, inline):
    """``rounds: 2, round_count: first``: the guard's last cut keeps at most the first round's cleanlab
    count, lowest quality first; here it removes 4 rows and splits rows tied at its cut-off (kNN's
    few neighbours give many equal qualities), with no top-fraction cut before it."""
    summary = run_both(tmp_path, {"features": "emb", "classifier": "knn", "knn_neighbors": 5, "folds": 5, "rounds": 2,
                                  "round_count": "first"}, embedding_table(), SIZES, inline)
    removed = summary["guard_removed"]["over_first_round_count"]
    assert removed > 0 and summary["label_issues"] == summary["scored"] - summary["rounds"][1]["fitted_on"]


@pytest.mark.parametrize("params", [
    {"classifier": "knn", "knn_neighbors": 5, "folds": 5},
    {"classifier": "logistic+knn+lda", "logistic_c": 0.3, "knn_neighbors": 10, "folds": 3, "rank_by": "normalized_margin"},
])
def test_round_count_calibrated_distributed_equals_driver(tmp_path, inline, params):
    """``rounds: 2, round_count: calibrated``: the temperatures by a global NLL over the fixed grid (exact
    sums per shard), the scaled rounds' joints, then the count's lowest label qualities by radix passes
    (kNN's few neighbours give many equal qualities: ties at the cut-off go to the earliest rows)."""
    summary = run_both(tmp_path, {"features": "emb", "rounds": 2, "round_count": "calibrated", **params},
                       embedding_table(), SIZES, inline)
    cal = summary["calibrated_count"]
    assert cal["count"] == summary["cleanlab_issues"] == min(cal["estimate"], cal["first_estimate"]) > 5
    assert cal["temperature"] != cal["first_temperature"] and 0 < summary["label_issues"] <= cal["count"]


def test_weak_features_abstain_alike(tmp_path, inline):
    summary = run_both(tmp_path, {"features": "emb", "classifier": "logistic", "logistic_c": 1.0}, embedding_table(spread=0.05),
                       SIZES, inline)
    assert summary["abstained"] and summary["label_issues"] == 0


def rounded_probabilities(steps: int, temperature: float) -> pa.Table:
    """Given probabilities rounded to ``1 / steps``: many rows tie at every cut-off."""
    names, x, _ = labelled_rows(k=3, dim=4, spread=1.0, flip=0.15)  # 4 columns: the 3-row class too
    z = np.exp(temperature * x)
    probs = np.round(z / z.sum(1, keepdims=True) * steps) / steps
    probs = np.maximum(probs, 1 / steps)
    probs /= probs.sum(1, keepdims=True)
    return pa.table({"id": [f"r{i:05d}" for i in range(len(names))], "label": pa.array(names, pa.string()),
                     "f0": pa.array([v.tolist() for v in probs], pa.list_(pa.float32()))})


@pytest.mark.parametrize("methods,steps,temperature", [
    (("prune_by_noise_rate", "prune_by_class", "confident_learning", "low_normalized_margin"), 20, 2.0),
    (("low_self_confidence",), 10, 1.0),  # 184 scores below the cut-off, 6 of its 10 ties flagged
])
def test_given_probabilities_with_ties(tmp_path, inline, methods, steps, temperature):
    table = rounded_probabilities(steps, temperature)
    for method in methods:
        summary = run_both(tmp_path / method, {"features": "pred_probs:probs", "method": method, "max_noise_rate": 0.9,
                                               "min_kept_accuracy": 0.3, "max_class_fraction": 0.1},
                           table, [100, 80, 78], inline)
        assert summary["cleanlab_issues"] > 0


def test_pixels_distributed_equals_driver(tmp_path, inline):
    names, x, _ = labelled_rows(n_per_class=60, k=3, dim=48, spread=2.0)
    pixels = np.clip(128 + 30 * x, 0, 255).astype(np.uint8)
    rows = [v.tolist() for v in pixels]
    rows[5] = None  # undecodable image
    table = pa.table({"id": [f"r{i:05d}" for i in range(len(rows))], "label": pa.array(names, pa.string()),
                      "f0": pa.array(rows, pa.list_(pa.uint8()))})
    summary = run_both(tmp_path, {"features": "pixels", "pca_components": 12, "logistic_c": 0.1}, table, [80, 73, 60],
                       inline)
    assert summary["feature_info"]["pca_components"] == 12 and summary["missing_features"] == 1


def blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"], default=1)


@pytest.mark.skipif(blas_threads() < 2, reason="one BLAS thread: nothing to compare")
def test_pca_fit_is_the_same_with_any_blas_threads():
    """The driver fits the pixels' PCA in the main process (every BLAS thread), a distributed reduce in a
    one-thread task: a multi-threaded BLAS splits the randomized SVD's products differently (components
    a few ulps apart at 800 x 256, so every probability was: the real MNIST example on Ray)."""
    from threadpoolctl import threadpool_limits

    from curate.label_noise.features import fit_pca

    _, x, _ = labelled_rows(n_per_class=200, k=4, dim=256, spread=2.0)
    px = (np.clip(128 + 30 * x, 0, 255).astype(np.uint8) / 255.0).astype(np.float32)
    threaded = fit_pca(px, components=32)
    with threadpool_limits(1):
        single = fit_pca(px, components=32)
    assert np.array_equal(threaded.components_, single.components_) and np.array_equal(threaded.mean_, single.mean_)


@pytest.mark.skipif(blas_threads() < 2, reason="one BLAS thread: nothing to compare")
def test_pixels_at_a_threaded_blas_size_distributed_equal_driver(tmp_path, inline):
    """Pixels of 256 dimensions, 800 rows: large enough for a multi-threaded BLAS to split the PCA."""
    names, x, _ = labelled_rows(n_per_class=200, k=4, dim=256, spread=2.0)
    pixels = np.clip(128 + 30 * x, 0, 255).astype(np.uint8)
    table = pa.table({"id": [f"r{i:05d}" for i in range(len(names))], "label": pa.array(names, pa.string()),
                      "f0": pa.array([v.tolist() for v in pixels], pa.list_(pa.uint8()))})
    summary = run_both(tmp_path, {"features": "pixels", "pca_components": 32, "logistic_c": 0.1}, table,
                       [300, 250, len(names) - 550], inline)
    assert summary["feature_info"]["pca_components"] == 32


def text_table(n: int = 330, seed: int = 0) -> pa.Table:
    """Short texts of 4 topics sharing common words, 10% of labels flipped, 25 exact copies of other
    texts, unlabelled rows, null / empty / blank texts, and accented words (code-point order)."""
    rng = np.random.default_rng(seed)
    topics = [["cat", "purr", "whisker", "meow", "kitten", "café"], ["dog", "bark", "fetch", "leash", "puppy", "éclair"],
              ["fish", "fin", "swim", "gill", "reef", "Zürich"], ["bird", "wing", "nest", "feather", "chirp", "zebra"]]
    common = ["the", "a", "very", "small", "big", "old", "new", "seen", "today", "here", "Élan", "über"]
    labels = rng.integers(0, 4, n)
    texts: list[str | None] = [" ".join(rng.choice(topics[c], int(rng.integers(2, 6))).tolist()
                                        + rng.choice(common, int(rng.integers(1, 5))).tolist()) for c in labels]
    names: list[str | None] = [f"class{c}" for c in labels]
    for i in rng.choice(n, n // 10, replace=False).tolist():
        names[i] = f"class{(labels[i] + int(rng.integers(1, 4))) % 4}"
    for a, b in zip(rng.choice(n, 25, replace=False).tolist(), rng.choice(n, 25, replace=False).tolist()):
        texts[a], names[a] = texts[b], names[b]
    for i in rng.choice(n, 8, replace=False).tolist():
        names[i] = None
    for i, blank in zip(rng.choice(n, 6, replace=False).tolist(), [None, "", "   ", None, "\t", "zz"]):
        texts[i] = blank
    return pa.table({"id": [f"t{i:04d}" for i in range(n)], "label": pa.array(names, pa.string()),
                     "f0": pa.array(texts, pa.string())})


TEXT_SIZES = [90, 0, 120, 120]  # 330 rows, one empty shard


def test_tfidf_vocabulary_is_sklearns_rule():
    """``features.tfidf_vocabulary`` against scikit-learn's TfidfVectorizer fitted on the same texts: below
    the ``max_features`` cut the same vocabulary, IDF and values; at a cut the same counts kept, the
    terms tied at the cut taken alphabetically (scikit-learn's split of them follows numpy's unstable
    sort). Any batch of rows is transformed alike."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from curate.label_noise import features

    texts = [t for t in text_table().column("f0").to_pylist() if t and t.strip()]

    def sklearn_fit(max_features):
        return TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True, max_features=max_features,
                               dtype=np.float32).fit(texts)

    vec = sklearn_fit(200_000)
    terms, idf, counts = features.tfidf_vocabulary(texts)
    assert terms.tolist() == sorted(vec.vocabulary_) and np.array_equal(idf, vec.idf_)
    x, theirs = features.tfidf_weights(counts, idf), vec.transform(texts)
    theirs.sort_indices()
    assert np.array_equal(x.indptr, theirs.indptr) and np.array_equal(x.indices, theirs.indices)
    np.testing.assert_allclose(x.data, theirs.data, rtol=1e-6)
    part = features.tfidf_transform(texts[100:180], terms, idf)
    assert all(np.array_equal(getattr(part, a), getattr(x[100:180], a)) for a in ("indptr", "indices", "data"))

    all_terms, df, tf, _ = features.count_terms(texts)
    candidates = all_terms[features.df_keep(df, len(texts))]
    tf_of = dict(zip(all_terms.tolist(), tf.tolist()))
    for max_features in (11, 17, 60):  # each cuts through terms of equal count
        terms, _, _ = features.tfidf_vocabulary(texts, max_features=max_features)
        ours, theirs = sorted(tf_of[t] for t in terms), sorted(tf_of[t] for t in sklearn_fit(max_features).vocabulary_)
        assert len(terms) == max_features and ours == theirs
        cut = ours[0]
        tied = sorted(t for t in candidates if tf_of[t] == cut)
        kept = [t for t in terms if tf_of[t] == cut]
        assert 0 < len(kept) < len(tied) and kept == tied[:len(kept)]  # the cut splits the ties


def test_tfidf_distributed_equals_driver(tmp_path, inline):
    """``features: tfidf`` with the defaults (sparse logistic, C chosen per dataset)."""
    summary = run_both(tmp_path, {"features": "tfidf"}, text_table(), TEXT_SIZES, inline)
    assert summary["classifier"] == "logistic" and summary["feature_info"]["vocabulary"] > 40
    assert summary["missing_features"] == 5 and summary["label_issues"] > 0


@pytest.mark.parametrize("max_features", [7, 25])
def test_tfidf_vocabulary_cut_distributed_equals_driver(tmp_path, inline, monkeypatch, max_features):
    """A small ``max_features`` with ``rounds: 2``: 7 cuts through terms of equal count (split
    alphabetically by the cut task), 25 keeps all the terms of the count at the cut."""
    from curate.distributed import label_noise as scheme
    from curate.label_noise import features

    monkeypatch.setattr(features, "TFIDF_MAX_FEATURES", max_features)
    cuts = []
    monkeypatch.setattr(scheme, "_cut_task", lambda arg, task=scheme._cut_task: cuts.append(arg[1:]) or task(arg))
    summary = run_both(tmp_path, {"features": "tfidf", "logistic_c": 1.0, "rounds": 2, "min_kept_accuracy": 0.3},
                       text_table(), TEXT_SIZES, inline)
    assert summary["feature_info"]["vocabulary"] == max_features
    assert len(cuts) == (0 if max_features == 25 else 1)


def test_auto_features_pick_tfidf_distributed(tmp_path, inline):
    """``features: auto`` on text records (no image): the scan picks tfidf and the scheme runs it."""
    t = text_table()
    table = pa.table({"id": t.column("id"), "label": t.column("label"), "f0": pa.nulls(t.num_rows, pa.list_(pa.uint8())),
                      "f1": t.column("f0")})
    summary = run_both(tmp_path, {"logistic_c": 1.0}, table, TEXT_SIZES, inline)
    assert summary["features"] == "tfidf" and summary["features_chosen_by"] == "auto"


@pytest.mark.parametrize("params", [
    {"classifier": "knn", "knn_neighbors": 10, "pca_components": 16},
    {"classifier": "logistic+knn", "logistic_c": 1.0, "knn_neighbors": 10, "pca_components": 24, "rounds": 2},
    {"classifier": "knn", "knn_neighbors": 10, "pca_components": 5000},  # no fewer components than terms: sparse kNN
])
def test_tfidf_with_a_dense_classifier_distributed_equals_driver(tmp_path, inline, monkeypatch, params):
    """tfidf for a dense classifier: the truncated SVD fitted on a hashed sample of the labelled texts
    (``PCA_SAMPLE`` lowered to 150 of about 300, so the sample is a part), every row projected."""
    from curate.label_noise import features

    monkeypatch.setattr(features, "PCA_SAMPLE", 150)
    summary = run_both(tmp_path, {"features": "tfidf", "min_kept_accuracy": 0.3, **params}, text_table(), TEXT_SIZES,
                       inline)
    info = summary["feature_info"]
    if params["pca_components"] < info["vocabulary"]:
        assert info["svd_components"] == params["pca_components"] and 100 < info["svd_fitted_on"] < 220
    else:
        assert "svd_components" not in info
    assert summary["label_issues"] > 0
