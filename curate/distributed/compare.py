"""Run one global stage's reduce over ready map shards, on the driver or as a distributed scheme.

For tests and benchmarks that check a scheme against the local reduce at sizes where the map step
(hashing images, embedding) would dominate: the map shards are written directly, then
:func:`reduce_map_shards` runs exactly what the runner runs after the map step
(:meth:`curate.runner.Runner._reduce`, or :func:`curate.distributed.distributed_reduce`).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa

from curate.rundir import shard_name
from curate.stages.base import StageContext, get_stage_class


def write_map_shards(map_dir: Path, tables: list[pa.Table]) -> None:
    """Write ``tables`` as the map shards ``part-00000.parquet ...`` of ``map_dir``."""
    from curate.storage import write_table

    Path(map_dir).mkdir(parents=True, exist_ok=True)
    for i, t in enumerate(tables):
        write_table(t, Path(map_dir) / shard_name(i))


def reduce_map_shards(stage_name: str, params: dict, map_dir: Path, stage_dir: Path, n_shards: int, *,
                      executor=None) -> dict:
    """The stage's reduce over ``map_dir``'s shards, output shards to ``stage_dir``; returns the summary.
    ``executor=None``: the driver reduce (``Runner._reduce``); else the stage's distributed scheme on that
    executor (which must have ``distributed_reduce``)."""
    from curate.distributed import distributed_reduce
    from curate.runner import Runner

    cls = get_stage_class(stage_name)
    parsed = cls.Params.model_validate(params)
    ctx = StageContext(stage_index=0, cache_dir=Path(stage_dir) / "_cache")
    stage = cls(parsed, ctx)
    stage.summary = {}
    Path(stage_dir).mkdir(parents=True, exist_ok=True)
    if executor is None:
        Runner._reduce(None, stage, SimpleNamespace(dirname=stage_name), Path(stage_dir), Path(map_dir), n_shards)
    else:
        done = distributed_reduce(stage, executor, run_root=str(Path(stage_dir).parent), map_dir=Path(map_dir),
                                  stage_dir=Path(stage_dir), n_shards=n_shards, stage_module=cls.__module__,
                                  params=parsed.model_dump(mode="json"), ctx=ctx, key=f"{stage_dir}:{stage_name}")
        if not done:
            raise ValueError(f"{stage_name} has no distributed scheme, or the executor does not distribute reduces")
        from curate import storage

        storage.rmtree(storage.join(Path(map_dir), "_dist"))  # the exchange files (the runner clears the map dir)
    return stage.summary
