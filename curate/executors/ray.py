"""The Ray executor: the same per-shard task functions as the local executor, run as Ray tasks.

``executor: ray`` with ``address:`` (e.g. ``ray://head:10001`` or ``auto``) runs on a cluster; without an
address a local Ray instance is started with ``workers`` CPUs. The run directory must be on a filesystem
every node can read and write (NFS, a mounted bucket): tasks read their input shards and write their
output shards there, exactly as local workers do, so both executors produce the same shards. Global
stages' reduce steps run on the driver (see each stage's docstring for its memory per million rows).
"""

from __future__ import annotations

from typing import Any, Callable

from curate.errors import require
from curate.executors.base import Executor


class RayExecutor(Executor):
    """Runs shard tasks as Ray remote functions, with a bounded number in flight."""

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
        self._remote: dict[Callable, Any] = {}

    def _remote_fn(self, fn: Callable):
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(fn)
        return self._remote[fn]

    def serial(self) -> bool:
        return False

    def slots(self) -> int:
        cpus = int(self.ray.cluster_resources().get("CPU", self.workers))
        return max(2, 2 * cpus)

    def submit(self, fn: Callable[[Any], dict], task: Any):
        return self._remote_fn(fn).remote(task)

    def wait(self, handles: set) -> tuple[set, set]:
        done, pending = self.ray.wait(list(handles), num_returns=1)
        return set(done), set(pending)

    def result(self, handle) -> dict:
        return self.ray.get(handle)

    def cancel(self, handles: set) -> None:
        for ref in handles:
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started_here and self.ray.is_initialized():
            self.ray.shutdown()
            self._started_here = False
