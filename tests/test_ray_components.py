"""Distributed connected components (:mod:`curate.distributed.components`) equal the driver's union-find."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from curate.dedup.unionfind import components as union_find
from curate.distributed.components import connected_components, labels_dir, partitions_for
from curate.distributed.shuffle import partition_of, read_partition, write_partitions
from curate.executors.local import LocalExecutor


def run_components(tmp_path, n, a, b, *, edge_partitions=3, partitions=4, shards=5):
    """Labels from the distributed scheme, as a full array (rows in no edge label themselves)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    edges = pa.table({"a": a, "b": b})
    write_partitions(edges, partition_of(np.arange(len(a)), partitions=edge_partitions), tmp_path / "edges", 0)
    offsets = np.linspace(0, n, shards + 1).astype(int).tolist()
    with LocalExecutor(workers=1, quiet=True) as ex:
        stats = connected_components(ex, tmp_path / "edges", tmp_path / "cc", edge_partitions=edge_partitions,
                                     offsets=offsets, partitions=partitions)
    labels = np.arange(n, dtype=np.int64)
    seen = np.zeros(n, dtype=bool)
    for s in range(shards):
        t = read_partition(labels_dir(tmp_path / "cc"), s)
        if t is None:
            continue
        rows = t.column("row").to_numpy()
        assert np.all((rows >= offsets[s]) & (rows < offsets[s + 1])), "labels in the wrong shard's partition"
        assert not seen[rows].any(), "a row labelled twice"
        seen[rows] = True
        labels[rows] = t.column("label").to_numpy()
    in_edge = np.zeros(n, dtype=bool)
    in_edge[a[a != b]] = in_edge[b[a != b]] = True
    assert np.array_equal(seen, in_edge), "every row in an edge is labelled, and only those"
    return labels, stats


@pytest.mark.parametrize("partitions", [1, 4])
def test_random_graphs_equal_union_find(tmp_path, partitions):
    rng = np.random.default_rng(0)
    n = 3000
    a, b = rng.integers(0, n, 1500), rng.integers(0, n, 1500)  # many small components, repeats, self-loops
    a = np.concatenate([a, a[:50], [7, 7]])
    b = np.concatenate([b, b[:50], [7, 7]])
    labels, stats = run_components(tmp_path, n, a, b, partitions=partitions)
    assert np.array_equal(labels, union_find(n, a, b))
    assert stats["nodes"] == len(np.unique(np.concatenate([a, b])[np.concatenate([a != b, a != b])]))


def test_long_path_and_star_need_rounds_and_stay_exact(tmp_path):
    """A path of 2,000 rows in shuffled order (diameter 1,999), a star, and a chain whose rows run
    high to low: each one component labelled by its smallest row."""
    rng = np.random.default_rng(1)
    path = rng.permutation(np.arange(2000, 4000))
    star_a, star_b = np.full(300, 4100), np.arange(4101, 4401)
    down = np.arange(4999, 4500, -1)
    a = np.concatenate([path[:-1], star_a, down[:-1]])
    b = np.concatenate([path[1:], star_b, down[1:]])
    order = rng.permutation(len(a))
    labels, stats = run_components(tmp_path, 5000, a[order], b[order], edge_partitions=4, partitions=3)
    assert np.array_equal(labels, union_find(5000, a, b))
    assert set(labels[path].tolist()) == {2000} and labels[4400] == 4100 and labels[4501] == 4501
    assert 1 < stats["rounds"] < 30


def test_no_edges(tmp_path):
    labels, stats = run_components(tmp_path, 10, [], [])
    assert np.array_equal(labels, np.arange(10)) and stats["nodes"] == 0


def test_partitions_for():
    assert partitions_for(0, most=8) == 1
    assert partitions_for(10**9, most=8) == 8
    assert partitions_for(5_000_000, most=100) == 3
