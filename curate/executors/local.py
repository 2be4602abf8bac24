"""The local executor: a process pool over shards with a bounded number of tasks in flight."""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Callable

from curate.executors.base import Executor


class LocalExecutor(Executor):
    """Shards processed in ``workers`` processes (or inline with ``workers: 1``)."""

    def __init__(self, workers: int = 2, quiet: bool = False, preload: tuple[str, ...] = ()):
        self.workers = max(1, int(workers))
        self.quiet = quiet
        self.preload = tuple(preload)
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
                # workers fork from a server that has already imported what the tasks need (the caller's
                # modules, e.g. the runner) and warmed pyarrow up
                ctx.set_forkserver_preload(["curate.executors._preload", *self.preload])
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

    def submit(self, fn: Callable[[Any], dict], task: Any) -> Future:
        return self._get_pool().submit(fn, task)

    def wait(self, handles: set) -> tuple[set, set]:
        done, pending = wait(handles, return_when=FIRST_COMPLETED)
        return set(done), set(pending)

    def result(self, handle: Future) -> dict:
        return handle.result()

    def cancel(self, handles: set) -> None:
        for fut in handles:
            fut.cancel()
        self.close(cancel=True)

    def close(self, cancel: bool = False) -> None:
        if self._warming is not None:
            self._warming.join()
            self._warming = None
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=True)
            self._pool = None


def _noop() -> None:
    return None
