"""Hash-partitioned exchange of small Parquet files between the phases of a distributed reduce.

Task ``s`` of one phase writes ``<phase>/<p>/from-<s>.parquet`` for every partition ``p`` it has
rows for; task ``p`` of the next phase reads ``<phase>/<p>/*.parquet``. Files are written atomically
(:func:`curate.storage.write_table`), so a retried task rewrites its own files and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from curate import storage
from curate.dedup.hashing import mix64


@dataclass
class ReduceJob:
    """What every task of a distributed reduce needs (picklable, small: no rows)."""

    run_root: str
    map_dir: str
    stage_dir: str
    n_shards: int
    partitions: int
    offsets: list[int]  # first global row of each map shard (n_shards + 1 entries)
    stage_name: str = ""
    stage_module: str = ""
    params: dict = field(default_factory=dict)
    ctx: Any = None
    key: str = ""

    @property
    def work(self):
        return storage.join(self.map_dir, "_dist")

    def shard_of(self, rows: np.ndarray) -> np.ndarray:
        """Map shard of each global row."""
        return np.searchsorted(np.asarray(self.offsets), rows, side="right") - 1


def partition_of(*keys: np.ndarray, partitions: int) -> np.ndarray:
    """Partition of each row from one or more integer key columns (deterministic in any process)."""
    h = np.zeros(len(keys[0]), dtype=np.uint64)
    for k in keys:
        with np.errstate(over="ignore"):
            h = mix64(h * np.uint64(0x100000001B3) ^ np.asarray(k).astype(np.uint64), inplace=True)
    return (h % np.uint64(partitions)).astype(np.int64)


def write_partitions(table: pa.Table, part: np.ndarray, phase_dir, source: int) -> int:
    """Write the rows of ``table`` to ``phase_dir/<p>/from-<source>.parquet`` by partition ``part``."""
    if table.num_rows == 0:
        return 0
    order = np.argsort(part, kind="stable")
    sorted_part = part[order]
    table = table.take(pa.array(order))
    bounds = np.flatnonzero(np.diff(sorted_part)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(order)]])
    for s, e in zip(starts.tolist(), ends.tolist()):
        p = int(sorted_part[s])
        storage.write_table(table.slice(s, e - s), storage.join(phase_dir, f"{p:05d}", f"from-{source:05d}.parquet"),
                            compression="lz4")
    return len(starts)


def read_partition(phase_dir, p: int, columns: list[str] | None = None) -> pa.Table | None:
    """Everything written to partition ``p`` of a phase (``None`` when nothing was)."""
    folder = storage.join(phase_dir, f"{p:05d}")
    files = sorted(folder.glob("from-*.parquet")) if folder.is_dir() else []
    tables = [storage.read_table(f, columns=columns) for f in files]
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else None


def write_cluster_shard(job: ReduceJob, s: int, ids: pa.ChunkedArray, info: pa.Table | None, flag: str,
                        extra: dict[str, pa.Array]) -> dict:
    """Write a dedup stage's output shard ``s``: every row is its own cluster except the rows listed in
    ``info`` (``row`` global, ``cluster_id``, ``cluster_size``, ``is_representative``, ``detail``);
    ``extra`` holds the stage's other columns, full length. Non-representatives get ``flag``."""
    from curate.rundir import shard_name
    from curate.runner import _instantiate, empty_output, finalize

    stage = _instantiate(job.stage_name, job.stage_module, job.params, job.ctx, job.key)
    out_path = storage.join(job.stage_dir, shard_name(s))
    n = len(ids)
    if n == 0:
        storage.write_table(empty_output(stage, ids), out_path)
        return {"rows": 0}
    cluster_id = np.asarray(ids.to_pylist(), dtype=object)
    size = np.ones(n, dtype=np.int32)
    is_rep = np.ones(n, dtype=bool)
    detail = np.full(n, None, dtype=object)
    if info is not None:
        local = info.column("row").to_numpy() - job.offsets[s]
        cluster_id[local] = info.column("cluster_id").to_pylist()
        size[local] = info.column("cluster_size").to_numpy()
        is_rep[local] = info.column("is_representative").to_numpy(zero_copy_only=False)
        detail[local] = info.column("detail").to_pylist()
    columns = {"cluster_id": pa.array(cluster_id.tolist(), pa.string()), "cluster_size": pa.array(size, pa.int32()),
               "is_representative": pa.array(is_rep, pa.bool_()), **extra}
    schema = stage.output_schema()
    arrays = [columns[f.name] for f in schema]
    flags = pa.array([None if r else flag for r in is_rep.tolist()], pa.string())
    result = pa.Table.from_arrays([*arrays, flags, pa.array(detail.tolist(), pa.string())],
                                  names=[*schema.names, "flag", "detail"])
    storage.write_table(finalize(stage, ids, result), out_path)
    return {"rows": n}
