"""The executor interface: run picklable task functions over shards, report progress."""

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

    def map_unordered(self, fn: Callable[[Any], dict], tasks: Iterable[Any], *, desc: str,
                      total_rows: int | None = None, parallel: bool = True) -> Iterator[dict]:
        raise NotImplementedError

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
