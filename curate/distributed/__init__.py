"""Global stages' reduce steps as shard tasks: map / shuffle / reduce over files in the run directory.

A distributed scheme splits a reduce into phases; each phase is a list of small tasks that any
executor runs (Ray tasks on a cluster, processes locally), and the tasks exchange data only through
partition files under the stage's ``_map/_dist/`` folder (a shared filesystem or object storage, see
:mod:`curate.storage`). The driver plans the phases and reads a few numbers back per task, plus what
each scheme's docstring lists: the driver's memory does not hold the rows.

Schemes: :mod:`curate.distributed.minhash` (``minhash_dedup``), :mod:`curate.distributed.exact`
(``exact_dedup``), :mod:`curate.distributed.phash` (``image_dedup``), :mod:`curate.distributed.semantic`
(``semantic_dedup``), :mod:`curate.distributed.knn` (``outliers``), :mod:`curate.distributed.neardup`
(``embedding_dedup``), :mod:`curate.distributed.label_noise`
(``label_noise``, but for tfidf features). Other global stages reduce on the driver. A scheme module may
have ``declines(stage) -> str | None``: settings it does not cover reduce on the driver (logged).
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)


def _schemes() -> dict[str, Callable]:
    from curate.distributed import exact, knn, label_noise, minhash, neardup, phash, semantic

    return {"minhash_dedup": minhash.reduce, "exact_dedup": exact.reduce, "image_dedup": phash.reduce,
            "semantic_dedup": semantic.reduce, "outliers": knn.reduce, "label_noise": label_noise.reduce,
            "embedding_dedup": neardup.reduce}


def _declines(stage) -> str | None:
    import importlib

    module = importlib.import_module(_schemes()[stage.name].__module__)
    check = getattr(module, "declines", None)
    return check(stage) if check is not None else None


def has_scheme(stage_name: str) -> bool:
    return stage_name in _schemes()


def distributed_reduce(stage, executor, *, run_root: str, map_dir, stage_dir, n_shards: int, stage_module: str,
                       params: dict, ctx, key: str) -> bool:
    """Run ``stage``'s reduce as shard tasks on ``executor`` when the executor distributes reduces
    (``executor.distributed_reduce``) and the stage has a scheme; returns False (nothing done) otherwise.
    The scheme writes the stage's output shards into ``stage_dir`` and its summary into ``stage.summary``."""
    scheme = _schemes().get(stage.name)
    if scheme is None or not getattr(executor, "distributed_reduce", False):
        return False
    why = _declines(stage)
    if why is not None:
        log.info("%s: reduce on the driver: the distributed scheme does not cover %s", stage.name, why)
        return False
    from curate import storage
    from curate.distributed.shuffle import ReduceJob
    from curate.rundir import shard_name
    from curate.shards import count_rows

    sizes = [count_rows(storage.join(map_dir, shard_name(i))) for i in range(n_shards)]
    offsets = [0, *np.cumsum(sizes).tolist()]
    job = ReduceJob(run_root=run_root, map_dir=str(map_dir), stage_dir=str(stage_dir), n_shards=n_shards,
                    partitions=max(1, n_shards), offsets=offsets, stage_name=stage.name, stage_module=stage_module,
                    params=params, ctx=ctx, key=key)
    log.info("%s: distributed reduce over %d shards (%d rows)", stage.name, n_shards, offsets[-1])
    scheme(stage, job, executor)
    return True
