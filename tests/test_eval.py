"""``curate eval``: the arms on documented sets, planted noise, planted leakage, clear errors."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from curate.cli import main
from curate.config import load_pipeline
from curate.errors import CurateError
from curate.eval import EvalOptions, evaluate
from curate.eval.arms import build_arms
from curate.eval.results import render
from curate.rundir import RunDir
from curate.runner import Runner
from tests.conftest import write_pipeline

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("cleanlab")

CLASSES = ["a", "b", "c"]


def _blobs(n_per_class: int, seed: int, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping Gaussian classes: a linear model gets most right, and label noise moves its boundary."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, dim) * 2.2
    y = np.repeat(np.arange(3), n_per_class)
    x = centres[y] + rng.normal(size=(len(y), dim))
    return x.astype(np.float32), y


def _vector_manifest(path, x, labels, clean=None) -> None:
    cols = {"item": [f"i{i}" for i in range(len(x))], "text": [f"{path.stem} item number {i}" for i in range(len(x))],
            "label": labels, "emb": [list(map(float, r)) for r in x]}
    if clean is not None:
        cols["clean"] = clean
    pq.write_table(pa.table(cols), path)


def _run(pipeline_path):
    Runner(load_pipeline(pipeline_path), quiet=True, workers=1).execute()


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    """300 training vectors, 35% of class 'a' relabelled 'b' (systematic noise), a label_noise stage that
    drops what it flags; a clean test set of 300 more."""
    tmp = tmp_path_factory.mktemp("noisy")
    x, y = _blobs(100, seed=1)
    rng = np.random.default_rng(2)
    noisy = y.copy()
    flip = np.flatnonzero(y == 0)
    flip = rng.choice(flip, size=35, replace=False)
    noisy[flip] = 1
    _vector_manifest(tmp / "train.parquet", x, [CLASSES[v] for v in noisy], clean=[CLASSES[v] for v in y])
    xt, yt = _blobs(100, seed=3)
    _vector_manifest(tmp / "test.parquet", xt, [CLASSES[v] for v in yt])
    p = write_pipeline(tmp, {"format": "parquet", "path": str(tmp / "train.parquet"), "shard_size": 128},
                       [{"label_noise": {"features": "meta.emb", "classifier": "logistic", "action": "drop"}}])
    _run(p)
    return tmp, flip


def _opts(**kw) -> EvalOptions:
    # cosine 0.999: 8-dimensional blobs are close in angle without being copies
    base = dict(seeds=2, epochs=20, quiet=True, model="linear", features="meta.emb", cosine=0.999)
    base.update(kw)
    return EvalOptions(**base)


@pytest.mark.slow
def test_planted_noise_curated_beats_raw_and_random(noisy_run):
    tmp, flip = noisy_run
    result = evaluate(tmp / "run", _opts(test=str(tmp / "test.parquet"), clean_labels="meta.clean"))
    arms = {a["name"]: a for a in result["arms"]}
    assert set(arms) == {"raw", "curated", "random", "without:00-label_noise", "relabelled:00-label_noise", "ceiling"}
    raw, cur, rnd, ceil = (arms[k]["accuracy"]["mean"] for k in ("raw", "curated", "random", "ceiling"))
    # label_noise catches 15-18 of the 35 systematic flips depending on its fold rule (v4: 15, +0.022)
    assert cur > raw + 0.01, result["arms"]
    assert cur > rnd
    assert ceil >= cur - 0.02
    assert arms["random"]["train_items"] == arms["curated"]["train_items"] < arms["raw"]["train_items"] == 300
    assert arms["ceiling"]["info"]["given_label_wrong"] == 35
    # a single stage: leaving it out gives back the raw set
    assert arms["without:00-label_noise"]["train_items"] == 300
    assert arms["without:00-label_noise"]["info"]["same_as"] == "raw"  # not trained twice
    assert arms["without:00-label_noise"]["accuracy"] == arms["raw"]["accuracy"]
    assert arms["relabelled:00-label_noise"]["info"]["relabelled"] > 0
    assert all(len(a["runs"]) == 2 for a in result["arms"])
    saved = json.loads((tmp / "run" / "eval" / "eval.json").read_text())
    assert saved["arms"] == json.loads(json.dumps(result["arms"]))
    assert saved["format"] == 1 and saved["leakage"]["leaked_test_items"] == 0


@pytest.mark.slow
def test_curated_arm_is_exactly_the_export(noisy_run, tmp_path):
    from curate.decisions import DecisionStore

    tmp, _ = noisy_run
    run = RunDir(tmp / "run")
    labels = pq.read_table(run.data_shard(0), columns=["label"]).column("label").to_pylist()
    ids = [i for p in run.data_shards() for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]
    labels = [v for p in run.data_shards() for v in pq.read_table(p, columns=["label"]).column("label").to_pylist()]
    flagged = [i for p in sorted((run.stages_dir / "00-label_noise").glob("part-*.parquet"))
               for i, f in zip(*(pq.read_table(p, columns=["id", "flag"]).column(c).to_pylist() for c in ("id", "flag")))
               if f is not None]
    store = DecisionStore(run.review_db)
    try:
        store.decide(flagged[:3], "accepted")                 # reviewer keeps 3 flagged items
        store.decide([i for i in ids if i not in flagged][:2], "rejected")  # and removes 2 unflagged ones
        for pending in ("drop", "keep"):
            out = tmp_path / f"export-{pending}"
            r = CliRunner().invoke(main, ["export", str(run.root), "--out", str(out), "--pending", pending, "-q"])
            assert r.exit_code == 0, r.output
            exported = sorted(i for p in out.glob("*.parquet") for i in pq.read_table(p, columns=["id"]).column("id").to_pylist())
            arms, _ = build_arms(run, run.require(), labels, pending=pending, kinds=("curated",))
            assert sorted(ids[r] for r in arms[0].rows) == exported
    finally:
        run.review_db.unlink()
        for extra in run.root.glob("review.db-*"):
            extra.unlink()


@pytest.mark.slow
def test_finished_trainings_are_reused_an_added_seed_trains_alone_and_jobs_agree(noisy_run):
    tmp, _ = noisy_run
    opts = _opts(test=str(tmp / "test.parquet"), arms=("raw", "curated", "random"), seeds=1, epochs=7)
    first = evaluate(tmp / "run", opts)
    assert not any(r.get("cached") for a in first["arms"] for r in a["runs"])
    assert list((tmp / "run" / "cache" / "eval").rglob("*.npz"))
    opts.seeds = 2
    second = evaluate(tmp / "run", opts)
    for a, b in zip(first["arms"], second["arms"]):
        assert b["runs"][0]["cached"] and not b["runs"][1].get("cached"), b
        assert b["runs"][0]["accuracy"] == a["runs"][0]["accuracy"]
        assert b["runs"][0]["seconds"] == a["runs"][0]["seconds"]  # the training's own time, kept
    opts.seeds, opts.retrain, opts.jobs, opts.threads = 1, True, 2, 1  # trained again, in two processes
    again = evaluate(tmp / "run", opts)
    assert not any(r.get("cached") for a in again["arms"] for r in a["runs"])
    assert [a["accuracy"] for a in again["arms"]] == [a["accuracy"] for a in first["arms"]]
    opts.retrain, opts.jobs, opts.epochs = False, 1, 6  # other settings: another training
    assert not any(r.get("cached") for a in evaluate(tmp / "run", opts)["arms"] for r in a["runs"])


class _Stop(Exception):
    pass


def _stop_in_the_second_pass(model, x, y, test_x, *, seed, checkpoint):
    """Train ``model`` until its second pass ends, then stop it, as Ctrl-C or a time limit would (the probe
    raises before that pass's checkpoint is saved)."""
    seen = []

    def probe():
        seen.append(1)
        if len(seen) == 2:
            raise _Stop
        return model.predict(test_x)

    with pytest.raises(_Stop):
        model.fit(x, y, 3, seed=seed, checkpoint=checkpoint, probe=probe)


def test_stopped_cnn_training_resumes_from_its_checkpoint_to_the_same_result(tmp_path, caplog):
    """A training stopped after an epoch resumes from its checkpoint and predicts exactly what an
    uninterrupted one does; the per-epoch probe changes nothing, its last epoch is the final prediction,
    and storing the finished training removes the checkpoint."""
    from curate.eval.jobs import fit_predict
    from curate.eval.models import make_model
    from curate.eval.trained import TrainingCache

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(160, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 3, size=160)
    x[y == 1, :8] //= 4  # something to learn
    test_x, test_ok = x[:40].copy(), np.ones(40, dtype=bool)
    rows = np.arange(40, 160)

    def model():
        return make_model("cnn", epochs=4, width=4, batch_size=32, threads=1)

    plain, _, none = fit_predict(model(), x, test_x, test_ok, rows, y[rows], 3, seed=5)
    assert none is None
    full, _, curve = fit_predict(model(), x, test_x, test_ok, rows, y[rows], 3, seed=5, curve=True)
    assert curve.shape == (4, 40) and (curve[-1] == full).all() and (full == plain).all()

    cache = TrainingCache(tmp_path / "eval")
    ckpt = cache.checkpoint("ab" * 20)
    ckpt.every = 0.0  # save after every epoch
    _stop_in_the_second_pass(model(), x[rows], y[rows], test_x, seed=5, checkpoint=ckpt)
    state = ckpt.load()
    assert state["epoch"] == 1 and len(state["curve"]) == 1  # epoch 2's state was never saved: it did not finish
    again = model()
    resumed, secs, rcurve = fit_predict(again, x, test_x, test_ok, rows, y[rows], 3, seed=5, checkpoint=ckpt, curve=True)
    assert (resumed == full).all() and (rcurve == curve).all()
    assert 0 < again.prior_seconds == state["seconds"] < secs  # the time before the checkpoint counts
    assert ckpt.load()["epoch"] == 3  # the last epoch is not checkpointed: the stored training replaces it
    cache.put("ab" * 20, resumed, 1.0, rcurve)
    assert ckpt.load() is None and cache.get("ab" * 20)[2].shape == (4, 40)
    assert not (tmp_path / "eval" / "ckpt" / "ab").exists()
    with caplog.at_level("WARNING"):  # a training shorter than a checkpoint interval never saved one
        cache.put("cd" * 20, resumed, 1.0)
    assert cache.get("cd" * 20) is not None and caplog.records == []


@pytest.mark.slow
def test_curve_scores_every_epoch_and_replaces_a_stored_training_without_one(noisy_run):
    tmp, _ = noisy_run
    opts = _opts(test=str(tmp / "test.parquet"), arms=("raw", "curated"), seeds=1, epochs=5)
    plain = evaluate(tmp / "run", opts)
    opts.curve = True
    result = evaluate(tmp / "run", opts)
    for a, b in zip(plain["arms"], result["arms"]):
        run = b["runs"][0]
        assert not run.get("cached")  # the stored training had no curve: trained again
        passes = -(-run["samples"] // run["train_items"])  # curated: more than 5 (raw's samples, --budget samples)
        assert len(run["curve"]) == passes >= 5 and run["curve"][-1] == run["accuracy"] == a["runs"][0]["accuracy"]
    again = evaluate(tmp / "run", opts)
    assert all(r["cached"] and r["curve"] for a in again["arms"] for r in a["runs"])
    assert "test accuracy after each epoch" in render(again)


def test_curve_table_in_the_terminal():
    """--curve's terminal table: per arm the mean over seeds, at most CURVE_COLUMNS epochs (first and last
    always), arms without a curve left out."""
    from curate.eval.results import CURVE_COLUMNS, curve_spread

    runs = [{"accuracy": 0.5, "curve": [0.1 * (s + 1) + e / 100 for e in range(25)]} for s in range(2)]
    assert curve_spread(runs)["mean"][0] == pytest.approx(0.15) and curve_spread(runs)["n"] == 2
    assert curve_spread(runs[:1] + [{"curve": [0.1]}]) is None and curve_spread([{"accuracy": 0.5}]) is None
    arm = {"info": {}, "train_items": 10, "accuracy": {"mean": 0.5, "std": 0.0, "n": 2}, "accuracy_no_leak": None,
           "delta_vs_raw": 0.0, "seconds": 1.0}
    result = {"model": {"name": "linear"}, "features": "meta.emb", "test": {"items": 5, "kind": "split"}, "classes": ["a"],
              "seeds": [0, 1], "leakage": None, "arms": [{**arm, "name": "raw", "kind": "raw", "runs": runs},
                                                          {**arm, "name": "plain", "kind": "curated", "runs": [{}]}]}
    lines = render(result).splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("epoch"))
    epochs = [int(e) for e in lines[head].split()[1:]]
    assert epochs[0] == 1 and epochs[-1] == 25 and len(epochs) <= CURVE_COLUMNS + 1
    assert "every 3 epochs" in lines[head - 1]
    raw = lines[head + 2].split()
    assert raw[0] == "raw" and raw[1] == "0.150" and raw[-1] == "0.390"
    assert not any(line.startswith("plain") for line in lines[head:])


def test_options_meant_for_another_model_are_errors_and_features_pick_the_linear_probe(noisy_run):
    tmp, _ = noisy_run
    base = ["eval", str(tmp / "run"), "--test", str(tmp / "test.parquet"), "--no-leakage-check", "-q"]
    r = CliRunner().invoke(main, base + ["--features", "meta.emb", "--seeds", "1", "--epochs", "2", "--arms", "raw", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["model"]["name"] == "linear"  # auto with --features: not tfidf on the texts
    for args, says in [(["--model", "cnn", "--features", "meta.emb"], "--model cnn trains on pixels"),
                       (["--model", "linear", "--features", "meta.emb", "--width", "16"], "--width is the cnn's"),
                       (["--features", "meta.emb1"], "meta keys holding lists: meta.emb"),
                       (["--model", "tfidf"], "TF-IDF has nothing to learn from"),  # every text is "train item number i"
                       (["--features", "meta.emb", "--arms", "ceiling"], "nothing to train (ceiling: no clean labels")]:
        r = CliRunner().invoke(main, base + args)
        assert r.exit_code == 1 and "Traceback" not in r.output and says in r.output, (args, r.output)
    assert json.loads((tmp / "run" / "eval" / "eval.json").read_text())["arms"]  # no error replaced the last eval


def test_test_split_holds_out_items_of_every_arm(noisy_run):
    tmp, _ = noisy_run
    result = evaluate(tmp / "run", _opts(test_split=0.25, arms=("raw", "curated"), seeds=1))
    assert result["test"]["kind"] == "split" and result["test"]["items"] == 75
    arms = {a["name"]: a for a in result["arms"]}
    assert arms["raw"]["train_items"] == 225


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _pattern(cls: int, rng) -> np.ndarray:
    """A 16x16 image whose class is its dominant colour channel, with noise."""
    arr = rng.integers(0, 90, size=(16, 16, 3), dtype=np.int64)
    arr[..., cls] += 140
    return np.clip(arr, 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_leakage_finds_planted_test_copies_with_a_cnn(tmp_path):
    rng = np.random.default_rng(0)
    train = tmp_path / "train"
    test = tmp_path / "test"
    kept = []
    for c, name in enumerate(["red", "green", "blue"]):
        (train / name).mkdir(parents=True)
        (test / name).mkdir(parents=True)
        for i in range(30):
            arr = _pattern(c, rng)
            (train / name / f"{i}.png").write_bytes(_png(arr))
            kept.append((name, i, arr))
        for i in range(10):
            (test / name / f"new{i}.png").write_bytes(_png(_pattern(c, rng)))
    planted = set()
    for k, (name, i, arr) in enumerate(kept[::9][:8]):
        if k % 2 == 0:   # exact copy (same bytes)
            (test / name / f"copy{i}.png").write_bytes((train / name / f"{i}.png").read_bytes())
        else:            # near copy: re-encoded as JPEG, slightly brighter
            buf = io.BytesIO()
            Image.fromarray(np.clip(arr.astype(int) + 6, 0, 255).astype(np.uint8)).resize((32, 32)).save(buf, "JPEG", quality=90)
            (test / name / f"copy{i}.jpg").write_bytes(buf.getvalue())
        planted.add(f"{name}/copy{i}")
    p = write_pipeline(tmp_path, {"format": "imagefolder", "path": str(train)},
                       [{"image_dedup": {"max_distance": 8, "action": "drop"}}])
    _run(p)
    result = evaluate(tmp_path / "run", EvalOptions(test=str(test), model="cnn", epochs=1, seeds=1, image_size=16,
                                                    width=8, threads=1, quiet=True, arms=("raw", "curated")))
    leak = result["leakage"]
    found = {e["test"].rsplit(".", 1)[0] for m in leak["examples"].values() for e in m}
    assert found == planted
    assert leak["leaked_test_items"] == len(planted) == 8
    assert leak["by_method"]["exact"] == 4 and leak["by_method"]["image_hash"] >= 8
    raw = result["arms"][0]
    assert raw["runs"][0]["accuracy_no_leak"] is not None
    assert result["test"]["items"] == 38


@pytest.mark.slow
def test_text_leakage_and_tfidf_model(tmp_path):
    rng = np.random.default_rng(0)
    words = {"pos": ["great", "wonderful", "superb", "lovely", "brilliant"],
             "neg": ["awful", "terrible", "boring", "dreadful", "poor"]}
    filler = [f"w{i}" for i in range(200)]

    def doc(label):
        return " ".join(list(rng.choice(filler, 12)) + list(rng.choice(words[label], 3)))

    rows = [{"text": doc(lab), "label": lab} for lab in ("pos", "neg") for _ in range(60)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    test_rows = [{"text": doc(lab), "label": lab} for lab in ("pos", "neg") for _ in range(20)]
    test_rows.append({"text": rows[0]["text"].upper() + "!", "label": "pos"})          # exact after normalising
    near = rows[70]["text"].split()
    near[0] = "changed"
    test_rows.append({"text": " ".join(near), "label": "neg"})                         # one word changed
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps(r) for r in test_rows))
    p = write_pipeline(tmp_path, {"format": "jsonl", "path": str(tmp_path / "train.jsonl")},
                       [{"text_quality": {"min_words": 1}}, {"exact_dedup": {"on": ["text"]}}])
    _run(p)
    result = evaluate(tmp_path / "run", EvalOptions(test=str(tmp_path / "test.jsonl"), seeds=1, quiet=True, curve=True))
    assert result["model"]["name"] == "tfidf"
    assert "--curve: the tfidf model trains in one step, so it has no learning curve" in result["notes"]
    assert "after each epoch" not in render(result)
    # exact_dedup: no two training texts are the same, so it flagged nothing and has no "without" arm
    assert "without:01-exact_dedup: the stage flagged nothing; the arm would equal curated" in result["notes"]
    leak = result["leakage"]
    assert leak["by_method"]["exact"] == 1
    assert leak["by_method"]["text_minhash"] >= 1
    assert leak["leaked_test_items"] == 2
    assert result["arms"][0]["accuracy"]["mean"] > 0.8


def test_run_without_labels_says_what_eval_needs(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.png").write_bytes(_png(_pattern(i % 3, rng)))
    _run(write_pipeline(tmp_path, {"format": "imagefolder", "path": str(folder)}, []))
    r = CliRunner().invoke(main, ["eval", str(tmp_path / "run"), "--test-split", "0.5"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "no item has a label" in r.output and "class sub-folders" in r.output and "label column" in r.output


@pytest.mark.slow
def test_cli_table_and_errors(noisy_run):
    tmp, _ = noisy_run
    r = CliRunner().invoke(main, ["eval", str(tmp / "run"), "--test", str(tmp / "test.parquet"), "--features", "meta.emb",
                                  "--model", "linear", "--seeds", "1", "--epochs", "5", "--arms", "raw,curated,random", "--cosine", "0.999",
                                  "-q"])
    assert r.exit_code == 0, r.output
    assert "curated" in r.output and "random" in r.output and "vs raw" in r.output and "leakage: 0 of 300" in r.output
    r = CliRunner().invoke(main, ["eval", str(tmp / "run"), "--test", str(tmp / "test.parquet"), "--features", "meta.emb",
                                  "--model", "linear", "--seeds", "1", "--epochs", "3", "--arms", "raw", "--no-leakage-check",
                                  "--curve", "--json", "-q"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)["arms"][0]["runs"][0]["curve"]) == 3
    r = CliRunner().invoke(main, ["eval", str(tmp / "run")])
    assert r.exit_code == 1 and "--test PATH" in r.output and "--test-split" in r.output
    r = CliRunner().invoke(main, ["eval", str(tmp / "run"), "--test-split", "0.2", "--model", "linear"])
    assert r.exit_code == 1 and "embed stage" in r.output  # no embedding column and no --features
    r = CliRunner().invoke(main, ["eval", str(tmp / "run"), "--test-split", "0.2", "--arms", "raw,best"])
    assert r.exit_code == 1 and "unknown arm 'best'" in r.output


def test_unfinished_run_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"name": "x", "stages": []}))
    with pytest.raises(CurateError, match="did not finish"):
        evaluate(run, EvalOptions(test_split=0.2, quiet=True))


from tests.embedding_fixtures import tiny_clip_dir  # noqa: E402,F401  (fixture)


@pytest.mark.slow
def test_test_features_come_from_the_runs_embed_stage_and_its_cache(tmp_path, tiny_clip_dir):  # noqa: F811
    """--test with an embed stage: the stage runs over the test items with the run's params; a second eval
    finds their embeddings in the run's cache, and they equal the stage's own output for the same images."""
    from curate.embeddings.cache import to_matrix
    from curate.eval.features import resolve_vectors, test_vectors
    from curate.eval.testset import read_test_set, test_input_config
    from curate.shards import read_stage

    def cached_ids():
        return sum(pq.ParquetFile(p).metadata.num_rows for p in (tmp_path / "run" / "cache").rglob("part-*.parquet"))

    rng = np.random.default_rng(0)
    train, test = tmp_path / "train", tmp_path / "test"
    for c, name in enumerate(["red", "green", "blue"]):
        (train / name).mkdir(parents=True)
        (test / name).mkdir(parents=True)
        for i in range(12):
            (train / name / f"{i}.png").write_bytes(_png(_pattern(c, rng)))
        for i in range(4):
            (test / name / f"t{i}.png").write_bytes(_png(_pattern(c, rng)))
    (test / "red" / "same.png").write_bytes((train / "red" / "0.png").read_bytes())  # also in training
    _run(write_pipeline(tmp_path, {"format": "imagefolder", "path": str(train)},
                        [{"embed": {"model": f"local-dir:{tiny_clip_dir}", "text": False, "num_workers": 0}}]))
    run_dir = tmp_path / "run"
    assert cached_ids() == 36
    opts = EvalOptions(test=str(test), seeds=1, epochs=2, quiet=True, arms=("raw", "curated"))
    first = evaluate(run_dir, opts)
    # the test items' embeddings went into the run's cache (keyed by image bytes: same.png is there already)
    assert cached_ids() == 36 + 12
    assert first["model"]["name"] == "linear" and first["features"] == "embed.image_embedding"
    assert first["test"]["items"] == 13
    assert first["leakage"]["by_method"]["exact"] == 1
    run = RunDir(run_dir)
    manifest = run.require()
    feats = resolve_vectors(manifest, None)
    records = read_test_set(test_input_config(str(test)), quiet=True).records
    x, ok = test_vectors(run, feats, records, manifest, quiet=True)
    assert ok.all() and x.shape == (13, x.shape[1]) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-4)
    # the copy of a training image gets exactly the training image's embedding
    train_x, _ = to_matrix(read_stage(run, "00-embed", ["id", "image_embedding"]).column("image_embedding"))
    sources = [s for p in run.data_shards() for s in pq.read_table(p, columns=["source"]).column("source").to_pylist()]
    j = records.column("source").to_pylist().index("red/same.png")
    assert np.allclose(x[j], train_x[sources.index("red/0.png")], atol=1e-5)
    second = evaluate(run_dir, opts)
    assert cached_ids() == 36 + 12  # nothing computed again
    assert second["arms"][0]["accuracy"] == first["arms"][0]["accuracy"]


def test_schedule_of_a_samples_budget_ends_with_a_partial_pass():
    from curate.eval.models import ModelConfig, schedule

    plain = schedule(50, ModelConfig(epochs=3, batch_size=8))
    assert (plain.passes, plain.last, plain.samples, plain.steps, plain.epochs) == (3, 50, 150, 3 * 7, 3.0)
    fixed = schedule(30, ModelConfig(epochs=3, batch_size=8, samples=150))  # 150 samples of 30 items: 5 passes
    assert (fixed.passes, fixed.last, fixed.steps, fixed.epochs) == (5, 30, 5 * 4, 5.0)
    part = schedule(40, ModelConfig(epochs=3, batch_size=8, samples=150))  # 3 passes of 40, then 30 of the fourth
    assert (part.passes, part.last, part.samples, part.steps) == (4, 30, 150, 3 * 5 + 4)
    assert part.epochs == pytest.approx(3.75) and [part.pass_items(p) for p in range(4)] == [40, 40, 40, 30]


@pytest.mark.slow
def test_samples_budget_gives_every_arm_the_raw_arms_samples_and_epochs_budget_its_own(noisy_run):
    """--budget samples (the default): every arm's training sees epochs x the raw arm's items (a smaller arm
    runs more, the last pass partial), also when raw is not among --arms; raw's training is the same as under
    --budget epochs (so the model cache serves it); --curve gets a point after the partial pass."""
    tmp, _ = noisy_run
    opts = _opts(test=str(tmp / "test.parquet"), arms=("raw", "curated", "random"), seeds=1, epochs=3, curve=True,
                 leakage=False)
    fixed = evaluate(tmp / "run", opts)
    assert fixed["budget"] == {"kind": "samples", "samples": 900, "raw_items": 300, "epochs": 3}
    arms = {a["name"]: a for a in fixed["arms"]}
    small = arms["curated"]["train_items"]
    assert small < 300 and 900 % small  # a partial last pass
    for a in fixed["arms"]:
        run = a["runs"][0]
        assert run["samples"] == 900 and run["epochs"] == pytest.approx(900 / a["train_items"], abs=1e-4), a
        assert len(run["curve"]) == -(-900 // a["train_items"]) and run["curve"][-1] == run["accuracy"]
    assert arms["curated"]["runs"][0]["steps"] > arms["raw"]["runs"][0]["steps"] * small / 300
    text = render(fixed)
    assert "training budget: samples: every arm trained on 900 samples (3 epochs of the raw arm's 300 items" in text
    assert "end" in text.split("test accuracy after each epoch")[1].splitlines()[1]  # arms' curves differ in length

    opts.budget = "epochs"
    own = evaluate(tmp / "run", opts)
    assert own["budget"]["kind"] == "epochs" and "every arm trained 3 epochs of its own items" in render(own)
    by = {a["name"]: a for a in own["arms"]}
    assert by["raw"]["runs"][0]["cached"] and by["raw"]["runs"][0]["accuracy"] == arms["raw"]["runs"][0]["accuracy"]
    assert not by["curated"]["runs"][0].get("cached")  # another training: fewer samples, not the stored one
    for a in own["arms"]:
        assert a["runs"][0]["samples"] == 3 * a["train_items"] and a["runs"][0]["epochs"] == 3.0

    opts.budget, opts.arms = None, ("curated",)  # without raw among the arms: still raw's samples, from the cache
    alone = evaluate(tmp / "run", opts)
    assert alone["budget"]["samples"] == 900 and alone["arms"][0]["runs"][0]["cached"]
    assert alone["arms"][0]["runs"][0]["accuracy"] == arms["curated"]["runs"][0]["accuracy"]
    assert alone["previous"].startswith("history/") and (tmp / "run" / "eval" / alone["previous"]).exists()


def test_stopped_training_under_a_samples_budget_resumes_to_the_same_result(tmp_path):
    """A samples-budget training (a partial last pass) stopped after a pass resumes from its checkpoint and
    predicts what an uninterrupted one does; a checkpoint of another budget is not resumed from."""
    from curate.eval.jobs import fit_predict
    from curate.eval.models import make_model
    from curate.eval.trained import TrainingCache

    rng = np.random.default_rng(1)
    x = rng.normal(size=(160, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    test_x, test_ok, rows = x[:40].copy(), np.ones(40, dtype=bool), np.arange(40, 160)

    def model(samples=300):  # 300 samples of 120 items: passes of 120, 120 and 60
        return make_model("linear", epochs=2, samples=samples, batch_size=16)

    full, _, curve = fit_predict(model(), x, test_x, test_ok, rows, y[rows], 3, seed=2, curve=True)
    assert curve.shape == (3, 40) and (curve[-1] == full).all()
    ckpt = TrainingCache(tmp_path / "eval").checkpoint("ef" * 20)
    ckpt.every = 0.0
    _stop_in_the_second_pass(model(), x[rows], y[rows], test_x, seed=2, checkpoint=ckpt)
    assert ckpt.load()["epoch"] == 1 and ckpt.load()["samples"] == 300
    other = model(samples=360)  # another budget: starts over instead of resuming a checkpoint that is not its own
    fit_predict(other, x, test_x, test_ok, rows, y[rows], 3, seed=2, checkpoint=ckpt)
    assert other.prior_seconds == 0.0
    # stop it again (the other training overwrote the checkpoint)
    _stop_in_the_second_pass(model(), x[rows], y[rows], test_x, seed=2, checkpoint=ckpt)
    again = model()
    resumed, _, rcurve = fit_predict(again, x, test_x, test_ok, rows, y[rows], 3, seed=2, checkpoint=ckpt, curve=True)
    assert again.prior_seconds > 0 and (resumed == full).all() and (rcurve == curve).all()


def test_bad_budget_and_a_test_split_that_leaves_too_few_training_items_are_clear_errors(noisy_run):
    tmp, _ = noisy_run
    r = CliRunner().invoke(main, ["eval", str(tmp / "run"), "--test-split", "0.2", "--budget", "steps"])
    assert r.exit_code == 2 and "'--budget'" in r.output and "samples" in r.output and "Traceback" not in r.output
    with pytest.raises(CurateError, match="--budget: unknown budget 'steps'; allowed: samples, epochs"):
        evaluate(tmp / "run", _opts(test_split=0.2, budget="steps"))
    with pytest.raises(CurateError, match=r"--test-split 0.99: holds out 297 items and leaves 3 to train on, fewer "
                                          r"than 5 in 3 class\(es\).*smaller fraction"):
        evaluate(tmp / "run", _opts(test_split=0.99))


def test_a_replaced_eval_is_kept_in_the_history(tmp_path):
    from curate.eval.results import write_results

    def ev(model, created):
        return {"model": {"name": model}, "created": created, "arms": []}

    assert write_results(tmp_path, ev("linear", "2026-12-01T09:00:00+00:00")) is None
    second = ev("cnn", "2026-12-01T10:00:00+00:00")
    assert write_results(tmp_path, second) == "history/2026-12-01T09-00-00+00-00-linear.json" == second["previous"]
    third = ev("cnn", "2026-12-01T11:00:00+00:00")
    write_results(tmp_path, third)  # replaces eval.json and eval-cnn.json, both the 10:00 eval: kept once
    kept = sorted(p.name for p in (tmp_path / "history").iterdir())
    assert kept == ["2026-12-01T09-00-00+00-00-linear.json", "2026-12-01T10-00-00+00-00-cnn.json"]
    assert json.loads((tmp_path / "eval-linear.json").read_text())["created"].startswith("2026-12-01T09")
    assert json.loads((tmp_path / "eval.json").read_text())["previous"] == "history/2026-12-01T10-00-00+00-00-cnn.json"


def test_jobs_input_folder_left_by_a_killed_eval_is_removed_by_the_next(tmp_path):
    import os
    import subprocess
    import sys

    from curate.eval.jobs import PREFIX, remove_stale

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f"{PREFIX}{gone.pid}-abc"
    (stale / "x").mkdir(parents=True)
    mine = tmp_path / f"{PREFIX}{os.getpid()}-def"  # a running eval's (this process's) folder stays
    mine.mkdir()
    other = tmp_path / "unrelated"
    other.mkdir()
    assert remove_stale(str(tmp_path)) == [stale]
    assert not stale.exists() and mine.exists() and other.exists()


def test_features_of_one_of_two_embed_stages_are_named_by_the_stage_directory():
    from types import SimpleNamespace as NS

    from curate.eval.features import resolve_vectors

    def stage(d, name, cols=("image_embedding",)):
        return NS(dir=d, name=name, outputs=NS(columns=[NS(name=c, role="embedding") for c in cols], names=list(cols)))

    two = NS(finished_stages=lambda: [stage("00-embed", "embed"), stage("01-embed", "embed"), stage("02-x", "label_noise", ())])
    assert resolve_vectors(two, "00-embed.image_embedding").ref == "00-embed.image_embedding"
    assert resolve_vectors(two, None).ref == "01-embed.image_embedding"  # the latest
    one = NS(finished_stages=lambda: [stage("00-embed", "embed")])
    assert resolve_vectors(one, "embed.image_embedding").ref == "embed.image_embedding"
