"""The executor interface: run picklable task functions over shards, report progress.

The loop lives here, once: the serial path (``workers: 1`` or a stage that must run in the main
process), bounded in-flight submission, results as they finish, and cancelling what is in flight on an
error or Ctrl-C. An executor only says how to submit one task, wait for some, and cancel.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Iterator


class Executor:
    """Runs ``fn(task)`` for many tasks and yields results as they finish.

    ``fn`` must be a module-level function and each task picklable. Every result is a dict; its
    ``"rows"`` entry (if any) advances the progress bar.
    """

    workers: int = 1
    quiet: bool = False

    # -- what an executor provides ---------------------------------------------------------------
    def serial(self) -> bool:
        """True to run every task inline in this process (e.g. one worker)."""
        return self.workers == 1

    def slots(self) -> int:
        """How many tasks may be in flight at once."""
        return 2 * self.workers

    def submit(self, fn: Callable[[Any], dict], task: Any) -> Any:
        """Start ``fn(task)``; return a handle."""
        raise NotImplementedError

    def wait(self, handles: set) -> tuple[set, set]:
        """Block until at least one handle is done; return ``(done, still running)``."""
        raise NotImplementedError

    def result(self, handle: Any) -> dict:
        """The result of a finished handle (raises the task's exception)."""
        raise NotImplementedError

    def cancel(self, handles: set) -> None:
        """Cancel the handles still in flight after an error."""

    def abort(self) -> None:
        """Stop all work at once: the run is failing or was interrupted, wherever the exception was raised
        (inside :meth:`map_unordered`'s loop or in its caller, while the loop waits at a ``yield``)."""
        self.close()

    # -- the one loop --------------------------------------------------------------------------------
    def map_unordered(self, fn: Callable[[Any], dict], tasks: Iterable[Any], *, desc: str,
                      total_rows: int | None = None, parallel: bool = True) -> Iterator[dict]:
        bar = self.progress(desc, total_rows)
        try:
            if self.serial() or not parallel:
                for task in tasks:
                    result = fn(task)
                    bar.update(result.get("rows", 0))
                    yield result
                return
            in_flight: set = set()
            task_iter = iter(tasks)
            exhausted = False
            try:
                while True:
                    while not exhausted and len(in_flight) < self.slots():
                        try:
                            in_flight.add(self.submit(fn, next(task_iter)))
                        except StopIteration:
                            exhausted = True
                    if not in_flight:
                        break
                    done, in_flight = self.wait(in_flight)
                    for handle in done:
                        result = self.result(handle)
                        bar.update(result.get("rows", 0))
                        yield result
            except BaseException:
                self.cancel(in_flight)
                raise
        finally:
            bar.close()

    def warm_up(self) -> None:
        """Start workers ahead of the first task (optional)."""

    def close(self) -> None:
        """Release workers."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def progress(self, desc: str, total: int | None):
        """A tqdm progress bar on stderr (disabled with ``quiet``)."""
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="row", unit_scale=True, file=sys.stderr, disable=self.quiet,
                    dynamic_ncols=True, mininterval=0.5, leave=True)
