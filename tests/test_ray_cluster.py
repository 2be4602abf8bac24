"""The Ray executor on a three-node cluster on loopback (Ray's ``cluster_utils``: a head and two worker
nodes with one CPU each): the distributed minhash reduce gives the local results with its shuffle
files crossing nodes, and a run whose worker process is killed mid-stage finishes with the same result."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import psutil
import pytest

from curate.config import load_pipeline
from curate.fate import iter_fates
from curate.rundir import RunDir
from curate.runner import Runner
from curate.shards import read_stage
from tests.conftest import EXAMPLES, REPO
from tests.embedding_fixtures import tiny_clip_dir  # noqa: F401  (fixture)
from tests.test_ray_dedup import STAGES, synthetic_texts, write_texts

import tests.slow_stage  # noqa: F401,E402  (registers slow_copy; imported before any thread starts)

ray = pytest.importorskip("ray", reason="the ray executor needs 'pip install curate[ray]'")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *([saved] if saved else [])])  # workers import tests.*
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, configure_logging=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _run(pipeline_path, out, **kw):
    return Runner(load_pipeline(pipeline_path), output=str(out), quiet=True, **kw).execute()


@pytest.mark.slow
def test_map_stages_on_ray_data_give_the_local_annotations_and_fates(cluster, make_pipeline, tmp_path):
    stages = [{"image_quality": {"min_side": 64}}, {"text_quality": {"min_words": 2}}]
    cfg = {"format": "coco", "path": str(EXAMPLES / "coco"), "shard_size": 8}
    local = _run(make_pipeline(cfg, stages, workers=2), tmp_path / "local")
    m = _run(make_pipeline(cfg, stages, workers=2, executor="ray"), tmp_path / "ray")
    assert m.config["executor"] == "ray"
    for s in local.stages:
        assert read_stage(RunDir(tmp_path / "local"), s.dir).equals(read_stage(RunDir(tmp_path / "ray"), s.dir))
    kept = lambda run: sorted(i for f in iter_fates(RunDir(run)) for i, k in zip(f.ids, f.kept) if k)
    assert kept(tmp_path / "local") == kept(tmp_path / "ray")


@pytest.mark.slow
def test_distributed_dedup_on_three_nodes_equals_local(cluster, make_pipeline, tmp_path):
    assert len([n for n in ray.nodes() if n["Alive"]]) == 3
    cfg = {"format": "parquet", "path": write_texts(tmp_path, synthetic_texts()), "shard_size": 60}
    local = _run(make_pipeline(cfg, STAGES, workers=2), tmp_path / "local")
    dist = _run(make_pipeline(cfg, STAGES, workers=2, executor="ray"), tmp_path / "ray")
    for s_local, s_ray in zip(local.stages, dist.stages):
        assert s_local.summary == s_ray.summary
        assert read_stage(RunDir(tmp_path / "local"), s_local.dir).equals(read_stage(RunDir(tmp_path / "ray"), s_ray.dir))


def _ray_task_workers() -> list:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if cmd.startswith("ray::") and "MapBatches" in cmd:
            out.append(p)
    return out


@pytest.mark.slow
def test_a_worker_killed_mid_stage_is_retried_and_the_result_is_unchanged(cluster, make_pipeline, tmp_path):
    cfg = {"format": "coco", "path": str(EXAMPLES / "coco"), "shard_size": 2}
    stages = [{"slow_copy": {"seconds": 0.6}}, {"text_quality": {}}]
    ref = _run(make_pipeline(cfg, stages, workers=1), tmp_path / "ref")
    out = tmp_path / "ray"
    pipeline = make_pipeline(cfg, stages, workers=2, executor="ray")
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(m=_run(pipeline, out)), daemon=True)
    thread.start()
    slow = out / "stages" / "00-slow_copy"
    killed = None
    deadline = time.time() + 120
    while killed is None and time.time() < deadline and thread.is_alive():
        if len(list(slow.glob("part-*.parquet"))) >= 1:
            workers = _ray_task_workers()
            if workers:
                killed = workers[0].pid
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    thread.join(timeout=300)
    assert killed is not None, "no Ray worker was running the stage when the test looked"
    assert "m" in result, "the run did not finish after its worker was killed"
    n = ref.input.shards
    assert len(list(slow.glob("part-*.parquet"))) == n
    for s in ref.stages:
        assert read_stage(RunDir(tmp_path / "ref"), s.dir).equals(read_stage(RunDir(out), s.dir)), s.dir


@pytest.mark.slow
def test_distributed_image_dedup_on_three_nodes_equals_driver(cluster, tmp_path):
    """image_dedup's scheme (block shuffle, components, clusters) on Ray gives the driver reduce's shards."""
    from curate.executors.ray import RayExecutor
    from tests.test_distributed_reduces import hash_rows, run_both, split

    table = hash_rows(400, 64, 6)
    n = table.num_rows
    with RayExecutor(workers=3, quiet=True) as executor:
        summary = run_both(tmp_path, "image_dedup", {"max_distance": 6}, split(table, [n // 2, n - n // 2]), executor)
    assert summary["near_duplicates"] > 50


@pytest.mark.slow
def test_200k_rows_on_three_nodes_equal_the_local_executor(cluster, make_pipeline, tmp_path, monkeypatch):
    """200,000 planted near-duplicate texts through exact and MinHash dedup: ``executor: ray`` on the
    three-node cluster (map stages on Ray Data, the distributed reduces with shuffle files crossing
    nodes, components in large/small-star rounds over several partitions) gives the local executor's
    driver-reduce shards, summaries, stats and kept ids exactly."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.distributed import components
    from tests.test_ray_dedup import planted_texts

    path = tmp_path / "planted.parquet"
    pq.write_table(pa.table({"text": planted_texts(200_000)}), path)
    cfg = {"format": "parquet", "path": str(path), "shard_size": 25_000}
    stages = [{"exact_dedup": {"on": ["text"], "keep": "first"}},
              {"minhash_dedup": {"threshold": 0.7, "ngram": 3, "keep": "longest_text"}}]
    local = _run(make_pipeline(cfg, stages, workers=2), tmp_path / "local")
    monkeypatch.setattr(components, "EDGES_PER_TASK", 4_000)  # planned on the driver: several partitions
    dist = _run(make_pipeline(cfg, stages, workers=3, executor="ray"), tmp_path / "ray")
    summary = local.stages[1].summary
    assert summary["near_duplicates"] > 18_000 and summary["largest_cluster"] >= 150
    for s_local, s_ray in zip(local.stages, dist.stages):
        assert s_local.summary == s_ray.summary and s_local.stats == s_ray.stats
        assert read_stage(RunDir(tmp_path / "local"), s_local.dir).equals(read_stage(RunDir(tmp_path / "ray"), s_ray.dir))
    kept = lambda run: sorted(i for f in iter_fates(RunDir(run)) for i, k in zip(f.ids, f.kept) if k)
    assert kept(tmp_path / "local") == kept(tmp_path / "ray")


@pytest.mark.slow
def test_distributed_label_noise_on_three_nodes_equals_driver(cluster, tmp_path):
    """label_noise's scheme (fold tasks, cleanlab's statistics and cut-offs as passes over the shards, the
    first round's count as a guard cut; tfidf's term partitions) on Ray gives the driver reduce's flags, suggested labels, scores and summary."""
    from curate.executors.ray import RayExecutor
    from tests.test_distributed_label_noise import SIZES, TEXT_SIZES, embedding_table, run_both, text_table

    with RayExecutor(workers=3, quiet=True) as executor:
        summary = run_both(tmp_path / "emb", {"features": "emb", "rounds": 2, "round_count": "first"},
                           embedding_table(), SIZES, executor)
        text = run_both(tmp_path / "tfidf", {"features": "tfidf", "method": "low_self_confidence"}, text_table(),
                        TEXT_SIZES, executor)
    assert summary["scored"] > 300 and summary["label_issues"] >= 5 and not summary["abstained"]
    assert text["feature_info"]["vocabulary"] > 40 and text["cleanlab_issues"] > 0


@pytest.mark.slow
def test_distributed_embedding_dedup_on_three_nodes_equals_driver(cluster, tmp_path):
    """embedding_dedup's scheme (kNN by index shards, pairs joined at their rows' shards, components,
    clusters) on Ray gives the driver reduce's shards and summary."""
    from curate.executors.ray import RayExecutor
    from tests.test_distributed_embedding_dedup import near_dup_rows, shards
    from tests.test_distributed_reduces import run_both

    rows = near_dup_rows()
    with RayExecutor(workers=3, quiet=True) as executor:
        summary = run_both(tmp_path, "embedding_dedup", {"mirror": True, "search": "exact"}, shards(rows), executor)
    assert summary["near_duplicates"] >= 60 and summary["unhashed"] == 8


def test_model_actor_pool_is_one_actor_per_gpu_else_one_per_node_with_its_cpus():
    from curate.executors.ray import model_actors

    assert model_actors(10, [8, 8, 8], gpus=4) == (4, 1, 1)  # one per GPU
    assert model_actors(2, [8, 8, 8], gpus=4) == (2, 1, 1)  # never more actors than tasks
    assert model_actors(10, [16, 8, 8], gpus=0) == (3, 8, 0)  # one per node, the smallest node's CPUs
    assert model_actors(1, [16, 8], gpus=0) == (1, 8, 0)
    assert model_actors(5, [], gpus=0) == (1, 1, 0)  # no CPU reported: one actor still


@pytest.mark.slow
def test_embed_on_the_actor_pool_of_three_nodes_equals_local(cluster, make_pipeline, tmp_path, tiny_clip_dir):
    """A model stage (embed, a tiny local-dir CLIP) on Ray's actor pool, one actor per node, writes the
    local executor's embeddings."""
    from curate.executors.ray import RayExecutor, model_actors

    assert model_actors(4, RayExecutor(quiet=True).node_cpus(), gpus=0) == (3, 1, 0)
    stages = [{"embed": {"model": f"local-dir:{tiny_clip_dir}", "num_workers": 0, "batch_size": 8}}]
    cfg = {"format": "coco", "path": str(EXAMPLES / "coco"), "shard_size": 20}  # 3 shards: one per actor
    local = _run(make_pipeline(cfg, stages, workers=1), tmp_path / "local")
    _run(make_pipeline(cfg, stages, workers=1, executor="ray"), tmp_path / "ray")
    a, b = (read_stage(RunDir(tmp_path / r), local.stages[0].dir) for r in ("local", "ray"))
    assert a.column("id").equals(b.column("id"))
    for col in ("image_embedding", "text_embedding"):
        np.testing.assert_allclose(np.array(a.column(col).to_pylist()), np.array(b.column(col).to_pylist()),
                                   rtol=1e-5, atol=1e-6)
