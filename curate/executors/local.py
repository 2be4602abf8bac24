"""The local executor: a process pool over shards with a bounded number of tasks in flight.

Ctrl-C stops it at once: the workers' current shards are interrupted (their temporary files cleaned up as
with any exception) and a worker that was interrupted refuses the shards the pool had already queued to
it, so a run does not finish one more shard per worker before it exits.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
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
            # a run started in the background by a shell ignores SIGINT: so do its workers
            ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_worker_init,
                                             initargs=(ignored,))
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
        return self._get_pool().submit(_run_unless_interrupted, fn, task)

    def wait(self, handles: set) -> tuple[set, set]:
        done, pending = wait(handles, return_when=FIRST_COMPLETED)
        return set(done), set(pending)

    def result(self, handle: Future) -> dict:
        return handle.result()

    def cancel(self, handles: set) -> None:
        for fut in handles:
            fut.cancel()
        self.abort()

    def abort(self) -> None:
        self._interrupt_workers()
        self.close(cancel=True)

    def _interrupt_workers(self) -> None:
        """SIGINT every worker (a no-op for those a Ctrl-C already reached: they ignore a second one), so
        a stop that only the main process saw (an error, ``kill -INT`` of its pid) does not wait for the
        shards in flight either."""
        workers = getattr(self._pool, "_processes", None) or {}  # the pool's own pid -> Process map
        for proc in list(workers.values()):
            try:
                os.kill(proc.pid, signal.SIGINT)
            except (ProcessLookupError, TypeError):  # gone already, or not started (pid None)
                pass

    def close(self, cancel: bool = False) -> None:
        if self._warming is not None:
            self._warming.join()
            self._warming = None
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=True)
            self._pool = None


def _noop() -> None:
    return None


_interrupted = False  # per worker process: set by the first SIGINT it receives
_in_task = False  # per worker process: a shard task is running


def _on_sigint(signum, frame) -> None:
    global _interrupted
    first, _interrupted = not _interrupted, True
    if first and _in_task:  # interrupt the shard once; a later one must not break its clean-up, and an
        raise KeyboardInterrupt  # idle worker just refuses what comes (no traceback from its loop)


def _worker_init(sigint_ignored: bool = False) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN if sigint_ignored else _on_sigint)


def _run_unless_interrupted(fn: Callable[[Any], dict], task: Any) -> dict:
    """Run one shard task in a worker, unless the worker was interrupted (then the run is stopping)."""
    global _in_task
    _in_task = True
    try:
        if _interrupted:  # checked after _in_task is set: a SIGINT in between is not lost
            raise KeyboardInterrupt("the run was interrupted")
        return fn(task)
    finally:
        _in_task = False
