"""Distributed global stages give the local reduce's results: the same shards, flags, clusters, summary.

The scheme's phases are shard tasks, so they are first checked on the local executor (fast), then on
a Ray cluster of a head and two worker nodes on loopback (Ray's ``cluster_utils``), where the
shuffle files cross node boundaries, including a worker process killed mid-stage.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from curate.config import load_pipeline
from curate.distributed import components, exact, minhash
from curate.executors.local import LocalExecutor
from curate.rundir import RunDir
from curate.runner import Runner
from curate.shards import read_stage


def synthetic_texts(n_base: int = 500, seed: int = 0) -> list[str | None]:
    """Random texts, near-duplicate copies (a word or two changed), a boilerplate text repeated 70
    times (a bucket larger than 64 rows), copies of copies (chains), and empty texts."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(5000)]
    base = [" ".join(rng.choice(vocab, size=int(rng.integers(20, 60)))) for _ in range(n_base)]
    rows: list[str | None] = list(base)
    for i in rng.choice(n_base, size=60, replace=False).tolist():
        words = base[i].split()
        words[int(rng.integers(len(words)))] = "zz" + str(rng.integers(1 << 30))
        rows.append(" ".join(words))
        if i % 3 == 0:  # a copy of the copy
            words[int(rng.integers(len(words)))] = "yy" + str(rng.integers(1 << 30))
            rows.append(" ".join(words))
    boiler = " ".join(rng.choice(vocab, size=40))
    rows += [boiler + (" extra" if j % 2 else "") for j in range(70)]
    rows += [None, "", "!!!"]
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def write_texts(tmp_path, texts) -> str:
    path = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"text": texts, "key": list(range(len(texts)))}), path)
    return str(path)


STAGES = [{"exact_dedup": {"on": ["text"], "keep": "first"}},
          {"minhash_dedup": {"threshold": 0.7, "ngram": 3, "keep": "longest_text"}}]


def run_both(make_pipeline, tmp_path, monkeypatch, stages=STAGES, shard_size=60):
    cfg = {"format": "parquet", "path": write_texts(tmp_path, synthetic_texts()), "shard_size": shard_size}
    pipeline = load_pipeline(make_pipeline(cfg, stages, workers=2))
    local = Runner(pipeline, output=str(tmp_path / "local"), quiet=True).execute()
    monkeypatch.setattr(LocalExecutor, "distributed_reduce", True, raising=False)
    monkeypatch.setattr(components, "EDGES_PER_TASK", 40)  # components in large/small-star rounds
    calls = []
    for module in (exact, minhash):
        monkeypatch.setattr(module, "reduce", lambda *a, real=module.reduce: calls.append(1) or real(*a))
    dist = Runner(pipeline, output=str(tmp_path / "dist"), quiet=True).execute()
    assert len(calls) == 2, "the distributed schemes did not run"
    return local, dist


def assert_same(tmp_path, local, dist, a="local", b="dist"):
    for s_local, s_dist in zip(local.stages, dist.stages):
        assert s_local.summary == s_dist.summary
        assert s_local.stats == s_dist.stats
        assert read_stage(RunDir(tmp_path / a), s_local.dir).equals(read_stage(RunDir(tmp_path / b), s_dist.dir))


def test_distributed_exact_and_minhash_reduces_equal_the_local_ones(make_pipeline, tmp_path, monkeypatch):
    local, dist = run_both(make_pipeline, tmp_path, monkeypatch)
    assert local.stages[0].summary["duplicates"] >= 34
    summary = local.stages[1].summary
    assert summary["near_duplicates"] > 60 and summary["largest_cluster"] >= 35 and summary["empty_texts"] >= 2
    assert_same(tmp_path, local, dist)
    assert not (RunDir(tmp_path / "dist").stage_dir(dist.stages[1].dir) / "_map").exists()


def planted_texts(n: int, seed: int = 0) -> pa.Array:
    """``n`` texts of random words (vectorised), a tenth of them near-duplicate copies (one word
    replaced) of an earlier row, a third of those copied again (chains), and a 150-row boilerplate
    cluster whose copies differ by one word each."""
    rng = np.random.default_rng(seed)
    n_copies, n_boiler = n // 10, 150
    n_base = n - n_copies - n_boiler
    lengths = rng.integers(30, 60, size=n_base)
    tokens = rng.integers(0, 50_000, size=int(lengths.sum()))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    docs = [tokens[starts[i]:starts[i + 1]] for i in range(n_base)]
    for _ in range(n_copies):
        src = docs[int(rng.integers(len(docs)))].copy()  # may be a copy itself: chains
        src[int(rng.integers(len(src)))] = rng.integers(50_000, 60_000)
        docs.append(src)
    boiler = rng.integers(0, 50_000, size=30)
    for j in range(n_boiler):
        copy = boiler.copy()
        copy[j % 30] = 60_000 + j
        docs.append(copy)
    order = rng.permutation(len(docs))
    flat = np.concatenate([docs[i] for i in order])
    offsets = np.concatenate([[0], np.cumsum([len(docs[i]) for i in order])]).astype(np.int32)
    words = pa.array([f"w{i}" for i in range(60_000 + n_boiler)])
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), words.take(pa.array(flat))), " ")
