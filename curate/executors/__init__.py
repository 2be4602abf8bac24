"""Executors run shard tasks: ``local`` (a process pool, the default) and ``ray``."""

from __future__ import annotations

from curate.executors.base import Executor
from curate.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "make_executor"]


def make_executor(kind: str, *, workers: int = 2, address: str | None = None, quiet: bool = False,
                  preload: tuple[str, ...] = ()) -> Executor:
    """The executor named in the pipeline's ``executor:`` key (``preload``: modules the local executor's
    workers import before their first task)."""
    if kind == "local":
        return LocalExecutor(workers=workers, quiet=quiet, preload=preload)
    if kind == "ray":
        from curate.executors.ray import RayExecutor

        return RayExecutor(address=address, workers=workers, quiet=quiet)
    raise ValueError(f"executor: unknown executor {kind!r}; allowed: local, ray")
