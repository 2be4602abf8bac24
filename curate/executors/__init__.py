"""Executors run shard tasks: ``local`` (a process pool, the default) and ``ray``."""

from __future__ import annotations

from curate.executors.base import Executor
from curate.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "make_executor"]


def make_executor(kind: str, *, workers: int = 2, address: str | None = None, quiet: bool = False) -> Executor:
    """The executor named in the pipeline's ``executor:`` key."""
    if kind == "local":
        return LocalExecutor(workers=workers, quiet=quiet)
    if kind == "ray":
        from curate.errors import CurateError

        raise CurateError("executor: 'ray' is not available in this version of curate yet; use 'executor: local' "
                          "(stages are written as per-shard tasks so that a Ray executor can run them unchanged)")
    raise ValueError(f"executor: unknown executor {kind!r}; allowed: local, ray")
