"""Running a pipeline: ingest into data shards, then each stage shard by shard, resumably.

Every unit of work is a module-level function over one shard (so any executor can run it) that
writes its output atomically; a shard file that exists is finished. A stage whose fingerprint (its
params, its version and everything upstream) is unchanged is skipped.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import platform
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

import curate
from curate import storage
from curate.config import Pipeline, StageSpec
from curate.distributed import distributed_reduce
from curate.errors import CurateError, InputError
from curate.executors import make_executor
from curate.manifest import InputEntry, Manifest, StageEntry, StageStats
from curate.readers import make_reader
from curate.readers.base import file_fingerprint
from curate.readers.ids import make_ids_unique
from curate.runlock import run_lock
from curate.rundir import RunDir, shard_name, write_table
from curate.shards import ColumnRef, count_rows, read_column, read_shard_columns, read_stage_shard, resolve_column
from curate.stages.base import GlobalStage, Stage, StageContext, get_stage_class

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- ingest -----------------------------------------------------------------------------------------
def input_fingerprint(pipeline: Pipeline) -> str:
    """Identifies the input: the input config and every input file's name, size and mtime."""
    cfg = pipeline.config.input
    reader = make_reader(cfg)
    root = reader.path if reader.path.is_dir() else reader.path.parent
    files = file_fingerprint(reader.fingerprint_paths(), root)
    return _hash({"input": cfg.model_dump(mode="json"), "files": files, "record_version": 1})


def ingest_task(job: tuple) -> dict:
    """Read one planned task into ``data/part-N.parquet`` (+ ``quarantine/part-N.parquet``)."""
    run_root, input_cfg, task = job
    run = RunDir(run_root)
    reader = make_reader(input_cfg)
    result = reader.build(task)
    if result.quarantine.num_rows:
        write_table(result.quarantine, run.quarantine_dir / shard_name(task.index))
    write_table(result.records, run.data_shard(task.index))
    reasons = Counter(result.quarantine.column("reason").to_pylist())
    return {"shard": task.index, "rows": result.records.num_rows + result.quarantine.num_rows,
            "records": result.records.num_rows, "quarantined": dict(reasons)}


def _pending_ingest_tasks(pipeline: Pipeline, run: RunDir, counters: dict):
    cfg = pipeline.config.input
    reader = make_reader(cfg)
    remaining = cfg.limit
    for task in reader.tasks():
        if remaining is not None:
            if remaining <= 0:
                break
            if task.items and task.items > remaining:
                task = reader.limit_task(task, remaining)
            remaining -= task.items or cfg.shard_size
        counters["planned"] += 1
        counters["planned_items"] += task.items
        if run.data_shard(task.index).exists():
            counters["skipped"] += 1
            continue
        yield (str(run.root), cfg, task)


# -- stages ------------------------------------------------------------------------------------------
_WORKER_STAGES: dict[str, Stage] = {}


def _instantiate(spec_name: str, module: str, params_json: dict, ctx: StageContext, key: str) -> Stage:
    """The stage object for this worker process, set up once and reused across the shards of one stage of
    one run (``key`` names both: a stage instance never outlives its run's context)."""
    stage = _WORKER_STAGES.get(key)
    if stage is None:
        importlib.import_module(module)  # registers stages defined outside curate.stages (plugins)
        cls = get_stage_class(spec_name)
        stage = cls(cls.Params.model_validate(params_json), ctx)
        stage.setup()
        _WORKER_STAGES.clear()  # one stage at a time per worker: free the previous model
        _WORKER_STAGES[key] = stage
    return stage


@dataclass
class StageJob:
    run_root: str
    stage_name: str
    stage_module: str
    params: dict
    ctx: StageContext
    key: str
    refs: list[ColumnRef]
    shard: int
    out_path: str
    phase: str  # "map" (a map stage's output) or "global_map" (a global stage's cached map output)


def finalize(stage: Stage, ids: pa.Array, result: pa.Table) -> pa.Table:
    """Check a stage's result against its declared outputs and add ``id`` and ``action`` around its columns."""
    if result.num_rows != len(ids):
        raise CurateError(f"stage {stage.name!r} returned {result.num_rows} rows for {len(ids)} input rows")
    schema = stage.output_schema()
    extra = [c for c in result.column_names if c not in ("id", "flag", "action", "detail") and c not in schema.names]
    if extra:
        raise CurateError(f"stage {stage.name!r} returned columns it does not declare: {', '.join(extra)} "
                          f"(declared: {', '.join(schema.names) or 'none'}); add them to its OUTPUTS")
    n = len(ids)
    cols = [_conform(result.column(f.name), f.type) if f.name in result.column_names else pa.nulls(n, f.type)
            for f in schema]
    flags = result.column("flag") if "flag" in result.column_names else pa.nulls(n, pa.string())
    details = result.column("detail") if "detail" in result.column_names else pa.nulls(n, pa.string())
    actions = pa.array([stage.params.action_for(f) for f in flags.to_pylist()], pa.string())
    arrays = [ids, *cols, flags.cast(pa.string()), actions, details.cast(pa.string())]
    return pa.Table.from_arrays(arrays, names=["id", *schema.names, "flag", "action", "detail"])


def _conform(column: pa.ChunkedArray | pa.Array, declared: pa.DataType):
    """``column`` as the declared type; a fixed-size list (an embedding of a dimension the declaration cannot
    know) stands for a declared variable-size list of the same values, uncast."""
    if (pa.types.is_fixed_size_list(column.type) and pa.types.is_list(declared)
            and column.type.value_type == declared.value_type):
        return column
    return column.cast(declared) if column.type != declared else column


def empty_output(stage: Stage, ids: pa.Array) -> pa.Table:
    """A shard with no findings, carrying the stage's full declared schema."""
    return finalize(stage, ids, pa.table({"flag": pa.nulls(len(ids), pa.string())}))


def stage_task(job: StageJob) -> dict:
    """Run a map stage (or a global stage's map step) over one shard and write its output.

    Returns the shard's row count and the summary the stage wrote while processing it."""
    run = RunDir(job.run_root)
    batch = read_shard_columns(run, job.shard, job.refs)
    stage = _instantiate(job.stage_name, job.stage_module, job.params, job.ctx, job.key)
    stage.summary = {}
    if batch.num_rows == 0:
        out = empty_output(stage, batch.column("id")) if job.phase == "map" else batch
    elif isinstance(stage, GlobalStage):
        out = stage.map(batch)
        if "id" not in out.column_names:
            out = out.add_column(0, "id", batch.column("id"))
    else:
        out = finalize(stage, batch.column("id"), stage.process(batch))
    write_table(out, storage.location(job.out_path))
    return {"shard": job.shard, "rows": batch.num_rows, "summary": stage.summary}


def stage_fingerprint(previous: str, spec: StageSpec) -> str:
    cls = spec.cls
    return _hash({"prev": previous, "stage": spec.name, "version": cls.version,
                  "params": spec.params.fingerprint_dict()})


def stage_stats(table: pa.Table) -> StageStats:
    """Counts of a stage's flags and actions (``table`` has ``flag`` and ``action``)."""
    flags = table.column("flag").to_pylist()
    act = Counter(table.column("action").to_pylist())
    return StageStats(rows=table.num_rows, flagged=sum(f is not None for f in flags), review=act.get("review", 0),
                      dropped=act.get("drop", 0), reasons=dict(Counter(f for f in flags if f is not None)))


def shards_stats(paths: list) -> StageStats:
    """:func:`stage_stats` summed over shard files read one at a time (the driver never holds a
    column of the whole dataset)."""
    total = StageStats()
    reasons: Counter = Counter()
    for p in paths:
        s = stage_stats(read_stage_shard(p, ["flag", "action"]))
        total = StageStats(rows=total.rows + s.rows, flagged=total.flagged + s.flagged, review=total.review + s.review,
                           dropped=total.dropped + s.dropped)
        reasons.update(s.reasons)
    return total.model_copy(update={"reasons": dict(reasons)})


# -- the run ---------------------------------------------------------------------------------------
class Runner:
    """Runs one pipeline into its run directory."""

    def __init__(self, pipeline: Pipeline, *, output: str | None = None, workers: int | None = None,
                 force: bool = False, from_stage: str | None = None, quiet: bool = False):
        self.pipeline = pipeline
        self.run = RunDir(output or pipeline.config.output_dir())
        self.workers = workers or pipeline.config.workers
        self.model_cache = self.run.model_cache_for(pipeline.config.cache)
        self.force = force
        self.from_stage = from_stage
        self.quiet = quiet
        self.report: list[dict] = []  # per step, for the end-of-run table
        if from_stage is not None:
            self._from_index = self._stage_index(from_stage)
        else:
            self._from_index = None

    def _stage_index(self, ref: str) -> int:
        for s in self.pipeline.stages:
            if ref in (s.name, s.dirname, str(s.index)):
                return s.index
        names = ", ".join(s.name for s in self.pipeline.stages)
        raise CurateError(f"--from: no stage {ref!r} in this pipeline; its stages: {names}")

    def _base_manifest(self) -> Manifest:
        old = self.run.manifest()
        return Manifest(
            curate_version=curate.__version__, name=self.pipeline.config.name,
            pipeline_file=self.pipeline.source_path, created=old.created or _now(), updated=_now(),
            config=self.pipeline.resolved(),
            versions={"python": platform.python_version(), "pyarrow": pa.__version__, "curate": curate.__version__},
            input=old.input, stages=old.stages)

    def check_extras(self) -> None:
        """Fail before any work when a stage's pip extra is missing (the message names the extra)."""
        for spec in self.pipeline.stages:
            spec.cls(spec.params, None).check_extras()

    def execute(self) -> Manifest:
        """Run (or resume) the pipeline, holding the run-directory lock; returns the final manifest."""
        with run_lock(self.run.root, "curate run", create=True):
            return self._execute()

    def _execute(self) -> Manifest:
        self.check_extras()
        self.run.root.mkdir(parents=True, exist_ok=True)
        storage.remove_temporaries(self.run.root)  # left by writers of a run that was killed
        manifest = self._base_manifest()
        executor = make_executor(self.pipeline.config.executor, workers=self.workers,
                                 address=self.pipeline.config.address, quiet=self.quiet, preload=(__name__,))
        try:
            executor.warm_up()
            fp = self._ingest(manifest, executor)
            old_stages = {s.index: s for s in manifest.stages}
            manifest.stages = []
            for spec in self.pipeline.stages:
                fp = stage_fingerprint(fp, spec)
                entry = self._run_stage(spec, fp, old_stages.get(spec.index), executor, manifest)
                manifest.stages.append(entry)
                self._save(manifest)
            self._remove_stale_stage_dirs()
            manifest.status = "done"
            manifest.steps = [{k: v for k, v in r.items() if k != "reasons"} for r in self.report]
            self._save(manifest)
        except BaseException:  # Ctrl-C or an error: close() alone would wait for the shards in flight
            executor.abort()
            raise
        finally:
            executor.close()
        return manifest

    def _save(self, manifest: Manifest) -> None:
        manifest.updated = _now()
        self.run.save_manifest(manifest)

    def _remove_stale_stage_dirs(self) -> None:
        wanted = {s.dirname for s in self.pipeline.stages}
        if self.run.stages_dir.is_dir():
            for d in self.run.stages_dir.iterdir():
                if d.is_dir() and d.name not in wanted:
                    RunDir.clear(d)

    def _ingest(self, manifest: Manifest, executor) -> str:
        fp = input_fingerprint(self.pipeline)
        old = manifest.input
        if self.force or old is None or old.fingerprint != fp:
            if old is not None:
                log.info("input changed or --force: re-ingesting")
            for d in (self.run.data_dir, self.run.quarantine_dir, self.run.stages_dir):
                RunDir.clear(d)
            manifest.stages = []
            old = None
        if old is not None and old.status == "done" and all(self.run.data_shard(i).exists() for i in range(old.shards)):
            self.report.append({"step": "ingest", "status": "up to date", "rows": old.rows,
                                "quarantined": old.quarantined, "seconds": old.seconds})
            return fp
        cfg = self.pipeline.config.input
        manifest.input = InputEntry(format=cfg.format, path=cfg.path, fingerprint=fp, status="running", started=_now())
        self._save(manifest)
        counters = Counter()
        t0 = time.perf_counter()
        for _ in executor.map_unordered(ingest_task, _pending_ingest_tasks(self.pipeline, self.run, counters),
                                        desc="ingest", total_rows=None):
            pass
        seconds = time.perf_counter() - t0
        if counters["planned"] == 0:
            raise InputError(f"input.path: the dataset at {cfg.path} is empty (no {cfg.format} items found)")
        n_shards = counters["planned"]
        repeated_ids = make_ids_unique([self.run.data_shard(i) for i in range(n_shards)])
        rows, quarantined = 0, Counter()
        for i in range(n_shards):
            rows += count_rows(self.run.data_shard(i))
            qp = self.run.quarantine_dir / shard_name(i)
            if qp.exists():
                quarantined.update(read_column(qp, "reason"))
        if rows == 0:
            raise InputError(f"input.path: no readable items in {cfg.path} ({sum(quarantined.values())} quarantined: "
                             f"{dict(quarantined)}); see {self.run.quarantine_dir}")
        manifest.input = manifest.input.model_copy(update={
            "status": "done", "shards": n_shards, "rows": rows, "quarantined": sum(quarantined.values()),
            "quarantine_reasons": dict(quarantined), "repeated_ids": repeated_ids, "seconds": round(seconds, 3),
            "finished": _now()})
        self.report.append({"step": "ingest", "status": "ran", "rows": rows, "quarantined": sum(quarantined.values()),
                            "seconds": seconds})
        self._save(manifest)
        return fp

    def _run_stage(self, spec: StageSpec, fp: str, old: StageEntry | None, executor, manifest: Manifest) -> StageEntry:
        sdir = self.run.stage_dir(spec.dirname)
        n_shards = manifest.input.shards
        forced = self._from_index is not None and spec.index >= self._from_index
        same = old is not None and old.fingerprint == fp and old.dir == spec.dirname
        up_to_date = (same and old.done and all((sdir / shard_name(i)).exists() for i in range(n_shards)))
        if up_to_date and not forced:
            self.report.append({"step": spec.dirname, "status": "up to date", **old.stats.model_dump(),
                                "seconds": old.seconds})
            return old
        if forced or not same:
            RunDir.clear(sdir)
        cls = get_stage_class(spec.name)
        earlier = list(manifest.stages)
        ctx = StageContext(stage_index=spec.index, cache_dir=self.model_cache, workers=self.workers,
                           upstream=tuple(earlier), quiet=self.quiet)
        stage = cls(spec.params, ctx)
        outputs = stage.declare_outputs().to_manifest()
        refs = [resolve_column(c, earlier) for c in stage.input_columns()]
        entry = StageEntry(index=spec.index, name=spec.name, dir=spec.dirname, fingerprint=fp, kind=cls.kind,
                           status="running", params=spec.params.model_dump(mode="json"), outputs=outputs,
                           title=cls.describe(), started=_now())
        self._save(manifest.model_copy(update={"stages": [*earlier, entry]}))
        t0 = time.perf_counter()
        params_json = spec.params.model_dump(mode="json")
        is_global = issubclass(cls, GlobalStage)
        map_dir = sdir / "_map" if is_global else sdir
        key = f"{self.run.root.resolve()}:{fp}"

        def jobs():
            for i in range(n_shards):
                out = map_dir / shard_name(i)
                if out.exists():
                    continue
                yield StageJob(str(self.run.root), spec.name, cls.__module__, params_json, ctx, key, refs, i, str(out),
                               "global_map" if is_global else "map")

        desc = f"{spec.dirname}" + (" (map)" if is_global else "")
        parts = [r.get("summary") or {} for r in executor.map_unordered(
            stage_task, jobs(), desc=desc, total_rows=manifest.input.rows, parallel=stage.parallel)]
        if is_global:
            stage.summary = {}
            if not distributed_reduce(stage, executor, run_root=str(self.run.root), map_dir=map_dir, stage_dir=sdir,
                                      n_shards=n_shards, stage_module=cls.__module__, params=params_json, ctx=ctx,
                                      key=key):
                self._reduce(stage, spec, sdir, map_dir, n_shards)
            parts.append(stage.summary)
        seconds = time.perf_counter() - t0
        stats = shards_stats([sdir / shard_name(i) for i in range(n_shards)])
        entry = entry.model_copy(update={"status": "done", "stats": stats, "summary": cls.merge_summaries(parts),
                                         "seconds": round(seconds, 3), "finished": _now()})
        if is_global:
            RunDir.clear(map_dir)
        self.report.append({"step": spec.dirname, "status": "ran", **stats.model_dump(), "seconds": seconds})
        return entry

    def _reduce(self, stage: GlobalStage, spec: StageSpec, sdir: Path, map_dir: Path, n_shards: int) -> None:
        tables = [read_stage_shard(map_dir / shard_name(i)) for i in range(n_shards)]
        sizes = [t.num_rows for t in tables]
        mapped = pa.concat_tables([t for t in tables if t.num_rows], promote_options="default") if any(sizes) else tables[0]
        log.info("%s: reduce over %d rows", spec.dirname, mapped.num_rows)
        result = stage.reduce(mapped) if mapped.num_rows else None
        offset = 0
        for i, n in enumerate(sizes):
            ids = tables[i].column("id")
            if n == 0 or result is None:
                out = empty_output(stage, ids)
            else:
                out = finalize(stage, ids, result.slice(offset, n))
            write_table(out, sdir / shard_name(i))
            offset += n
