"""The local executor: a process pool over shards with a bounded number of tasks in flight."""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator

from curate.executors.base import Executor


class LocalExecutor(Executor):
    """Shards processed in ``workers`` processes (or inline with ``workers: 1``)."""

    def __init__(self, workers: int = 2, quiet: bool = False):
        self.workers = max(1, int(workers))
        self.quiet = quiet
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._warming: threading.Thread | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            return self._get_pool_locked()

    def _get_pool_locked(self) -> ProcessPoolExecutor:
        if self._pool is None:
            method = "forkserver" if sys.platform.startswith("linux") else "spawn"
            ctx = mp.get_context(method)
            if method == "forkserver":
                # workers fork from a server that has already imported the runner (pyarrow, stages)
                ctx.set_forkserver_preload(["curate.executors._preload"])
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    def warm_up(self) -> None:
        """Start the worker processes in the background (the forkserver imports the runner, about half a
        second) while the main process plans the first step."""
        if self.workers > 1 and self._pool is None and self._warming is None:
            def start():
                pool = self._get_pool()
                for _ in range(self.workers):
                    pool.submit(_noop)

            self._warming = threading.Thread(target=start, name="curate-warm-up", daemon=True)
            self._warming.start()

    def map_unordered(self, fn: Callable[[Any], dict], tasks: Iterable[Any], *, desc: str,
                      total_rows: int | None = None, parallel: bool = True) -> Iterator[dict]:
        bar = self.progress(desc, total_rows)
        try:
            if self.workers == 1 or not parallel:
                for task in tasks:
                    result = fn(task)
                    bar.update(result.get("rows", 0))
                    yield result
                return
            pool = self._get_pool()
            in_flight: set[Future] = set()
            task_iter = iter(tasks)
            exhausted = False
            try:
                while True:
                    while not exhausted and len(in_flight) < 2 * self.workers:
                        try:
                            in_flight.add(pool.submit(fn, next(task_iter)))
                        except StopIteration:
                            exhausted = True
                    if not in_flight:
                        break
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for fut in done:
                        result = fut.result()
                        bar.update(result.get("rows", 0))
                        yield result
            except BaseException:
                for fut in in_flight:
                    fut.cancel()
                self.close(cancel=True)
                raise
        finally:
            bar.close()

    def close(self, cancel: bool = False) -> None:
        if self._warming is not None:
            self._warming.join()
            self._warming = None
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=True)
            self._pool = None


def _noop() -> None:
    return None
