"""The Ray executor: the runner's shard tasks as a Ray Dataset, run with ``map_batches``.

``executor: ray`` with ``address:`` (e.g. ``ray://head:10001`` or ``auto``) runs on a cluster; without an
address a local Ray instance is started with ``workers`` CPUs.

Each step of a run (ingest, a map stage, a global stage's map, a distributed reduce phase) is a list
of shard tasks: small picklable descriptions ("read shard 17's text column, run ``text_quality``,
write ``stages/01-text_quality/part-00017.parquet``"). The executor turns the list into a Ray Dataset
of one row per task and runs it with ``map_batches(batch_size=1)``:

* CPU stages run as Ray Data tasks (Ray worker processes are reused, so a stage object is set up
  once per worker process and kept for the following shards);
* model stages (the stages that run in the main process under the local executor, e.g. ``embed``)
  run in a stateful **actor pool**: the model loads once per actor, and each actor gets
  ``num_gpus=1`` when the cluster has GPUs (one actor per GPU); on a CPU-only cluster one actor per
  node, holding the node's CPUs (:func:`model_actors`).

Results (a few numbers per shard) stream back to the driver as tasks finish; the shards themselves
never pass through the driver. A task whose worker dies (node lost, OOM kill) is retried by Ray; the
shard files are written atomically, so a retried task simply writes its shard again.

The run directory must be reachable from every node: a shared filesystem (NFS, a mounted bucket) or
an object-storage URL (``output: s3://bucket/runs/x``, see :mod:`curate.storage`). Global stages that
have a distributed scheme (:mod:`curate.distributed`) run their reduce as further shard tasks; the
others reduce on the driver (see each stage's docstring for its memory per million rows).
"""

from __future__ import annotations

import logging
import pickle
from typing import Any, Callable, Iterable, Iterator

from curate.errors import CurateError, require
from curate.executors.base import Executor

log = logging.getLogger(__name__)

#: Most bytes of pickled tasks the driver holds at once (see :meth:`RayExecutor.map_unordered`).
WINDOW_BYTES = 64 << 20
#: Most tasks in one Ray Dataset: a step of up to this many shards runs as one Dataset execution.
WINDOW_TASKS = 1024


class _RunTasks:
    """The ``map_batches`` callable: unpickle each task, run it, pickle its result.

    Used as a class (an actor pool: set-up once per actor) or through :func:`_run_tasks` (tasks)."""

    def __init__(self, fn: Callable[[Any], dict]):
        self.fn = fn

    def __call__(self, batch):
        import pyarrow as pa

        out = [pickle.dumps(self.fn(pickle.loads(b))) for b in batch.column("task").to_pylist()]
        return pa.table({"result": pa.array(out, pa.binary())})


def _run_tasks(batch, fn):
    return _RunTasks(fn)(batch)


def _unwrap(exc: BaseException) -> BaseException:
    """The user's exception inside Ray's wrappers (so a CurateError keeps its one-line message)."""
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, CurateError):
            return cur
        cur = getattr(cur, "cause", None) or cur.__cause__
    return exc


def model_actors(tasks: int, node_cpus: list[int], gpus: int) -> tuple[int, int, int]:
    """The actor pool of a model stage: ``(actors, CPUs per actor, GPUs per actor)``. With GPUs, one
    actor per GPU (one CPU each, for the hand-off); on CPUs only, one actor per node holding all the
    CPUs of the smallest node (the model's threads and its decode workers use them; a model loads once
    per node, not once per core). Never more actors than tasks."""
    if gpus:
        return max(1, min(tasks, gpus)), 1, 1
    nodes = [c for c in node_cpus if c >= 1] or [1]
    return max(1, min(tasks, len(nodes))), min(nodes), 0


class RayExecutor(Executor):
    """Runs shard tasks as a Ray Dataset (``map_batches``; actor pools for model stages)."""

    #: global stages with a distributed scheme run their reduce as shard tasks here
    distributed_reduce = True

    def __init__(self, address: str | None = None, workers: int = 2, quiet: bool = False):
        self.ray = require("ray", "ray", "The ray executor")
        self.workers = max(1, int(workers))
        self.quiet = quiet
        self._started_here = False
        if not self.ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = self.workers
            self.ray.init(**kwargs)
            self._started_here = True
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # one INFO line per step otherwise
        ctx = self.ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # curate draws its own bar per step
        ctx.print_on_execution_start = False
        if hasattr(ctx, "enable_operator_progress_bars"):
            ctx.enable_operator_progress_bars = False

    def resources(self) -> tuple[int, int]:
        """(CPUs, GPUs) of the cluster."""
        res = self.ray.cluster_resources()
        return max(1, int(res.get("CPU", self.workers))), int(res.get("GPU", 0))

    def node_cpus(self) -> list[int]:
        """The CPU count of each live node of the cluster."""
        return [int(node["Resources"].get("CPU", 0)) for node in self.ray.nodes()
                if node.get("Alive") and node["Resources"].get("CPU", 0) >= 1]

    def map_unordered(self, fn: Callable[[Any], dict], tasks: Iterable[Any], *, desc: str,
                      total_rows: int | None = None, parallel: bool = True) -> Iterator[dict]:
        """Run ``fn`` over ``tasks`` as Ray Datasets; ``parallel=False`` marks a model stage (an actor
        pool, GPUs when there are any).

        Tasks are taken from the (lazy) iterator in windows of at most :data:`WINDOW_TASKS` tasks or
        :data:`WINDOW_BYTES` of pickled tasks, one Dataset per window. Tasks are small descriptions
        (shard numbers and paths; manifest ingest plans row or byte ranges, file readers lists of
        names): the byte bound keeps the driver to one window of tasks whatever their size."""
        bar = self.progress(desc, total_rows)
        try:
            cpus, gpus = self.resources()
            it = iter(tasks)
            while True:
                items, size = [], 0
                for task in it:
                    items.append(pickle.dumps(task))
                    size += len(items[-1])
                    if len(items) >= WINDOW_TASKS or size >= WINDOW_BYTES:
                        break
                if not items:
                    return
                yield from self._run_window(fn, items, parallel, cpus, gpus, bar)
        finally:
            bar.close()

    def _run_window(self, fn, items: list[bytes], parallel: bool, cpus: int, gpus: int, bar) -> Iterator[dict]:
        import pyarrow as pa

        n = len(items)
        # one block per task (no repartition step): tasks spread over the cluster
        ds = self.ray.data.from_arrow([pa.table({"task": pa.array([b], pa.binary())}) for b in items])
        del items[:]  # the Dataset holds them now (in the object store)
        if parallel:
            ds = ds.map_batches(_run_tasks, fn_kwargs={"fn": fn}, batch_size=1, batch_format="pyarrow", num_cpus=1,
                                compute=self.ray.data.TaskPoolStrategy(size=min(n, cpus)))
        else:
            n_actors, actor_cpus, actor_gpus = model_actors(n, self.node_cpus(), gpus)
            ds = ds.map_batches(_RunTasks, fn_constructor_kwargs={"fn": fn}, batch_size=1, batch_format="pyarrow",
                                num_gpus=actor_gpus, num_cpus=actor_cpus,
                                compute=self.ray.data.ActorPoolStrategy(size=n_actors))
        try:
            for row in ds.iter_rows():
                result = pickle.loads(row["result"])
                bar.update(result.get("rows", 0))
                yield result
        except Exception as exc:
            inner = _unwrap(exc)
            if inner is not exc:
                raise inner from None
            raise

    def close(self) -> None:
        if self._started_here and self.ray.is_initialized():
            self.ray.shutdown()
            self._started_here = False
