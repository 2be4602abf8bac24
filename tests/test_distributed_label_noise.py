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
])
def test_embedding_settings_distributed_equal_driver(tmp_path, inline, params):
    summary = run_both(tmp_path, {"features": "emb", **params}, embedding_table(), SIZES, inline)
    assert summary["scored"] > 300 and summary["classes_skipped"] == {"class4": 3}
    assert summary["label_issues"] >= 5 and not summary["abstained"]


def test_weak_features_abstain_alike(tmp_path, inline):
    summary = run_both(tmp_path, {"features": "emb", "classifier": "logistic", "logistic_c": 1.0}, embedding_table(spread=0.05),
                       SIZES, inline)
    assert summary["abstained"] and summary["label_issues"] == 0


def test_given_probabilities_with_ties(tmp_path, inline):
    """Probabilities rounded to 0.05 steps: many rows tie at every cleanlab cut-off."""
    names, x, labels = labelled_rows(k=3, dim=4, spread=1.0, flip=0.15)  # 4 columns: the 3-row class too
    z = np.exp(2 * x)
    probs = np.round(z / z.sum(1, keepdims=True) * 20) / 20
    probs = np.maximum(probs, 0.05)
    probs /= probs.sum(1, keepdims=True)
    table = pa.table({"id": [f"r{i:05d}" for i in range(len(names))], "label": pa.array(names, pa.string()),
                      "f0": pa.array([v.tolist() for v in probs], pa.list_(pa.float32()))})
    for method in ("prune_by_noise_rate", "prune_by_class"):
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


def test_tfidf_is_declined(tmp_path, inline, caplog):
    import logging

    from curate.distributed import distributed_reduce
    from curate.stages.base import StageContext, get_stage_class

    cls = get_stage_class("label_noise")
    stage = cls(cls.Params.model_validate({"features": "tfidf"}), StageContext(stage_index=0, cache_dir=tmp_path))
    with caplog.at_level(logging.INFO, logger="curate.distributed"):
        assert not distributed_reduce(stage, inline, run_root=str(tmp_path), map_dir=tmp_path, stage_dir=tmp_path,
                                      n_shards=0, stage_module=cls.__module__, params={}, ctx=None, key="k")
    assert "tfidf" in caplog.text


def test_auto_features_that_pick_tfidf_reduce_on_the_driver(tmp_path, inline, caplog):
    """``features: auto`` on text records: the scan picks tfidf, then the driver reduce runs (same output)."""
    import logging

    rng = np.random.default_rng(0)
    words = [["cat", "purr", "whisker", "meow"], ["dog", "bark", "fetch", "leash"], ["fish", "fin", "swim", "gill"]]
    labels = rng.integers(0, 3, 240)
    texts = [" ".join(rng.choice(words[c], 6).tolist() + rng.choice(sum(words, []), 2).tolist()) for c in labels]
    names = [f"class{c}" for c in labels]
    for i in rng.choice(240, 12, replace=False).tolist():
        names[i] = f"class{(labels[i] + 1) % 3}"
    table = pa.table({"id": [f"t{i:04d}" for i in range(240)], "label": names, "f0": pa.nulls(240, pa.list_(pa.uint8())),
                      "f1": texts})
    with caplog.at_level(logging.INFO, logger="curate.distributed.label_noise"):
        summary = run_both(tmp_path, {"classifier": "logistic", "logistic_c": 1.0}, table, [100, 140], inline)
    assert summary["features"] == "tfidf" and "reduced on the driver" in caplog.text
