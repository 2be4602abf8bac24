"""The distributed schemes of image_dedup, semantic_dedup and outliers give the driver reduce's results.

Map shards are written directly (synthetic hashes and embeddings with planted duplicates, chains, large
groups, missing values, ties in the keep scores); the same shards are reduced on the driver
(``Runner._reduce``) and as shard tasks on the local executor's distributed path, and the output shards
and summaries must be equal.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from curate.distributed.compare import reduce_map_shards, write_map_shards
from curate.executors.local import LocalExecutor
from curate.rundir import shard_name
from curate.shards import read_stage_shard
from tests.embedding_fixtures import tiny_clip_dir  # noqa: F401  (fixture)


class DistributedLocal(LocalExecutor):
    distributed_reduce = True


@pytest.fixture(scope="module")
def executor():
    with DistributedLocal(workers=2, quiet=True) as ex:
        yield ex


def split(table: pa.Table, sizes: list[int]) -> list[pa.Table]:
    out, at = [], 0
    for n in sizes:
        out.append(table.slice(at, n))
        at += n
    assert at == table.num_rows
    return out


def run_both(tmp_path, stage: str, params: dict, shards: list[pa.Table], executor, *, comparable=lambda summary: summary):
    """The same map shards reduced on the driver and by the scheme on ``executor``: summaries (as
    ``comparable`` makes them, e.g. without timings) and every output column equal; the driver's summary."""
    write_map_shards(tmp_path / "local" / "_map", shards)
    write_map_shards(tmp_path / "dist" / "_map", shards)
    local = reduce_map_shards(stage, params, tmp_path / "local" / "_map", tmp_path / "local", len(shards))
    dist = reduce_map_shards(stage, params, tmp_path / "dist" / "_map", tmp_path / "dist", len(shards), executor=executor)
    assert comparable(local) == comparable(dist)
    for i in range(len(shards)):
        a = read_stage_shard(tmp_path / "local" / shard_name(i))
        b = read_stage_shard(tmp_path / "dist" / shard_name(i))
        assert a.schema == b.schema
        for name in a.column_names:
            assert a.column(name).equals(b.column(name)), f"shard {i}, column {name}"
    return local


# -- image_dedup ---------------------------------------------------------------------------------------
def hash_rows(n_base: int, nbits: int, max_distance: int, seed: int = 0) -> pa.Table:
    """Random hashes, copies within ``max_distance`` bits (some copies of copies: chains), a block of
    90 equal hashes (a large group), unhashed rows; keep scores with ties and nulls."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2, size=(n_base, nbits), dtype=np.uint8)
    rows = [base]
    src = rng.choice(n_base, size=n_base // 5, replace=False)
    copies = base[src].copy()
    for r in copies:
        r[rng.choice(nbits, size=int(rng.integers(0, max_distance + 1)), replace=False)] ^= 1
    rows.append(copies)
    chain = copies[: len(copies) // 4].copy()
    for r in chain:
        r[rng.choice(nbits, size=max_distance, replace=False)] ^= 1
    rows += [chain, np.repeat(base[:1], 90, axis=0)]
    bits = np.concatenate(rows)
    bits = bits[rng.permutation(len(bits))]
    hexes = [np.packbits(b).tobytes().hex() for b in bits]
    for i in rng.choice(len(hexes), size=12, replace=False).tolist():
        hexes[i] = None
    n = len(hexes)
    score = rng.integers(0, 5, size=n).astype(np.float64)
    return pa.table({"id": [f"img{i:05d}" for i in range(n)], "image_hash": pa.array(hexes, pa.string()),
                     "keep_score": pa.array(score, mask=rng.random(n) < 0.05)})


@pytest.mark.parametrize("hash_size,max_distance", [(8, 6), (5, 3), (12, 1)])
def test_image_dedup_distributed_equals_driver(tmp_path, executor, hash_size, max_distance, monkeypatch):
    from curate.distributed import components

    monkeypatch.setattr(components, "EDGES_PER_TASK", 100)  # components in rounds over several partitions
    table = hash_rows(1500 if hash_size == 8 else 600, hash_size ** 2, max_distance)
    n = table.num_rows
    sizes = [n // 4, 0, n // 3, n - n // 4 - n // 3]
    summary = run_both(tmp_path, "image_dedup", {"hash_size": hash_size, "max_distance": max_distance,
                                                 "keep": "largest_image"}, split(table, sizes), executor)
    assert summary["near_duplicates"] > n // 10 and summary["largest_cluster"] >= 80 and summary["unhashed"] == 12


# -- semantic_dedup and outliers ---------------------------------------------------------------------------
def embedding_rows(n_base: int = 2000, dim: int = 48, seed: int = 0) -> pa.Table:
    """Embeddings around a few centres, near copies (cosine about 0.99) and copies of copies, rows
    without an embedding, a few far points; a score column with ties and nulls (``keep: score:q``)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, dim))
    base = centres[rng.integers(0, 6, size=n_base)] + rng.normal(scale=0.8, size=(n_base, dim))
    copies = base[rng.choice(n_base, size=n_base // 6, replace=False)]
    copies = copies + rng.normal(scale=0.03, size=copies.shape)
    chain = copies[: len(copies) // 3] + rng.normal(scale=0.03, size=(len(copies) // 3, dim))
    far = rng.normal(scale=6, size=(15, dim))
    x = np.concatenate([base, copies, chain, far]).astype(np.float32)
    x = x[rng.permutation(len(x))]
    n = len(x)
    emb = pa.array([v.tolist() for v in x], pa.list_(pa.float32()))
    missing = set(rng.choice(n, 10, replace=False).tolist())
    emb = pa.array([None if i in missing else v for i, v in enumerate(emb.to_pylist())], pa.list_(pa.float32()))
    q = pa.array(rng.integers(0, 4, size=n).astype(np.float64), mask=rng.random(n) < 0.05)
    return pa.table({"id": [f"e{i:05d}" for i in range(n)], "emb": emb, "q": q})


@pytest.fixture(scope="module")
def embeddings():
    return embedding_rows()


def embedding_shards(table: pa.Table) -> list[pa.Table]:
    n = table.num_rows
    return split(table, [n // 3, 0, n // 5, n - n // 3 - n // 5])


@pytest.mark.parametrize("params", [
    {"clusters": 8, "keep": "first", "eps": 0.02},
    {"clusters": "auto", "keep": "central", "eps": 0.02, "kmeans_sample": 400},
    {"clusters": 12, "keep": "score:q", "eps": 0.05, "kmeans_sample": 1000, "seed": 3},
])
def test_semantic_dedup_distributed_equals_driver(tmp_path, executor, embeddings, params):
    summary = run_both(tmp_path, "semantic_dedup", {"column": "emb", **params}, embedding_shards(embeddings), executor)
    assert summary["duplicates"] > 300 and summary["embedded"] == embeddings.num_rows - 10


@pytest.mark.parametrize("params", [
    {"k": 5, "flag_top_fraction": 0.02, "search": "exact"},
    {"k": 10, "threshold": 0.3, "search": "exact"},
])
def test_outliers_distributed_equals_driver(tmp_path, executor, embeddings, params):
    summary = run_both(tmp_path, "outliers", {"column": "emb", **params}, embedding_shards(embeddings), executor)
    assert summary["flagged"] >= 15


def test_outliers_cut_ties_go_to_the_earliest_rows(tmp_path, executor):
    """Exact copies in groups of three: many rows share a score, so the top-fraction cut falls inside a
    run of equal scores that spans shards."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(200, 8)).astype(np.float32)
    x = np.repeat(base, 3, axis=0)[rng.permutation(600)]
    table = pa.table({"id": [f"t{i}" for i in range(600)], "emb": pa.array([v.tolist() for v in x], pa.list_(pa.float32()))})
    summary = run_both(tmp_path, "outliers", {"column": "emb", "k": 2, "flag_top_fraction": 0.1, "search": "exact"},
                       split(table, [150, 250, 200]), executor)
    assert summary["flagged"] == 60


# -- through the runner -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_pipeline_with_distributed_reduces_equals_the_local_run(make_pipeline, tmp_path, monkeypatch, tiny_clip_dir):
    """``curate run`` of the COCO example (tiny CLIP embeddings): image_dedup, semantic_dedup and outliers
    reduced as shard tasks give the local run's shards and summaries."""
    from curate.config import load_pipeline
    from curate.rundir import RunDir
    from curate.runner import Runner
    from curate.shards import read_stage
    from tests.conftest import EXAMPLES

    stages = [{"embed": {"model": f"local-dir:{tiny_clip_dir}", "batch_size": 8}},
              {"image_dedup": {"max_distance": 10}},
              {"semantic_dedup": {"field": "image", "eps": 0.02, "clusters": 3}},
              {"outliers": {"field": "text", "k": 3, "flag_top_fraction": 0.1, "search": "exact"}}]
    cfg = {"format": "coco", "path": str(EXAMPLES / "coco"), "shard_size": 16}
    pipeline = load_pipeline(make_pipeline(cfg, stages, workers=1, cache=str(tmp_path / "models")))  # embeds once
    local = Runner(pipeline, output=str(tmp_path / "local"), quiet=True).execute()
    monkeypatch.setattr(LocalExecutor, "distributed_reduce", True, raising=False)
    from curate.distributed import knn, phash, semantic

    calls = []
    for module in (phash, semantic, knn):
        monkeypatch.setattr(module, "reduce", lambda *a, real=module.reduce: calls.append(1) or real(*a))
    dist = Runner(pipeline, output=str(tmp_path / "dist"), quiet=True).execute()
    assert len(calls) == 3, "the distributed schemes did not run"
    assert local.input.shards >= 3
    for a, b in zip(local.stages[1:], dist.stages[1:]):
        assert a.summary == b.summary
        assert read_stage(RunDir(tmp_path / "local"), a.dir).equals(read_stage(RunDir(tmp_path / "dist"), b.dir))
    assert local.stages[1].summary["near_duplicates"] > 0


@pytest.mark.parametrize("bits", [16, 8])
def test_order_statistics_by_radix_passes_are_exact(bits):
    """The selection behind the outliers and label_noise cut-offs (both digit widths): exact keys and
    counts below / equal, for several ranks of one value set and for several value sets at once, with
    NaN, ties, -0.0 beside +0.0, negative values and shards of very different sizes."""
    from curate.distributed.select import digit_counts, select, unsortable

    rng = np.random.default_rng(2)
    sets = []
    for seed in range(3):
        parts = [rng.normal(size=n).astype(np.float32) * (seed + 1) for n in (1, 500, 3000, 0, 40)]
        parts[2][:200] = 0.375  # a run of ties
        parts[1][:7] = np.nan
        parts[4][:5], parts[4][5:9] = -0.0, 0.0
        sets.append(parts)
    ranks, which = [], []
    for q, parts in enumerate(sets):
        n = int(sum((~np.isnan(p)).sum() for p in parts))
        for r in (0, 1, 150, 600, 601, n // 2, n - 1):
            ranks.append(r)
            which.append(q)

    def counts(queries, shift):  # shard by shard, as the tasks would
        return (digit_counts([parts[i] for parts in sets], queries, shift, bits) for i in range(5))

    for (key, below, equal), r, q in zip(select(counts, ranks, which, bits=bits), ranks, which):
        values = np.concatenate(sets[q])
        values = np.sort(values[~np.isnan(values)])
        got = unsortable(np.array([key], np.uint32))[0]
        assert got == values[r] and below == int((values < got).sum()) and equal == int((values == got).sum())
