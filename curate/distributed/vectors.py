"""Embedding columns in the distributed schemes: map shards' unit embeddings, and vectors in exchange files."""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import pyarrow as pa

from curate import storage
from curate.distributed.shuffle import ReduceJob
from curate.embeddings.fields import embedding_matrix
from curate.embeddings.neighbors import normalise
from curate.rundir import shard_name


def vector_array(x: np.ndarray) -> pa.Array:
    """Rows of ``x`` as a fixed-size-list float32 column."""
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(x, np.float32).reshape(-1)), x.shape[1])


def matrix(table: pa.Table, column: str) -> np.ndarray:
    """A fixed-size-list column (:func:`vector_array`) back as an ``(N, D)`` matrix."""
    col = table.column(column).combine_chunks()
    d = col.type.list_size
    return col.flatten().to_numpy().reshape(len(col), d) if len(col) else np.zeros((0, d), np.float32)


def read_embeddings(job: ReduceJob, s: int, column: str, extra: list[str] = ()) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Map shard ``s``: the table (``id`` and ``extra`` columns), unit embeddings of the rows that have
    one, and those rows' local indices."""
    t = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=list(dict.fromkeys(["id", column, *extra])))
    x, valid = embedding_matrix(t, column)
    rows = np.flatnonzero(valid)
    x = normalise(x) if x.shape[1] else x
    return t, np.ascontiguousarray(x[rows]), rows


def count_task(arg) -> dict:
    """Rows of map shard ``s`` and how many have an embedding in ``column``."""
    job, s, column = arg
    t = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=[column])
    return {"rows": t.num_rows, "valid": int(embedding_matrix(t, column)[1].sum())}


@contextlib.contextmanager
def _one_thread():
    limits = contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(1)  # BLAS and OpenMP (faiss)
    except ImportError:
        pass
    with limits:
        yield


def one_thread(task):
    """Run a task with one BLAS / OpenMP thread: a task is one CPU slot of its executor (Ray sets
    ``OMP_NUM_THREADS=1`` for its tasks likewise); threads on top of the executor's processes only
    oversubscribe the cores (faiss's OpenMP threads spin: several times slower on a busy machine)."""

    @functools.wraps(task)
    def run(arg):
        with _one_thread():
            return task(arg)

    return run
