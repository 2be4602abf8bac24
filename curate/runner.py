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
import pyarrow.parquet as pq

import curate
from curate.config import Pipeline, StageSpec
from curate.errors import CurateError, InputError
from curate.executors import make_executor
from curate.readers import build_shard, make_reader
from curate.readers.base import file_fingerprint
from curate.rundir import RunDir, shard_name, write_table
from curate.shards import ColumnRef, read_shard_columns, read_stage, resolve_column
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
    result = build_shard(reader.read(task), max_pixels=input_cfg.max_image_pixels)
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
            if task.items and task.items > remaining and isinstance(task.payload, list):
                task.payload = task.payload[:remaining]
                task.items = remaining
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
    """The stage object for this worker process, set up once and reused across shards."""
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
    """Check a stage's result and add ``id`` and ``action`` around its columns."""
    if result.num_rows != len(ids):
        raise CurateError(f"stage {stage.name!r} returned {result.num_rows} rows for {len(ids)} input rows")
    cols = [c for c in result.column_names if c not in ("id", "flag", "action", "detail")]
    flags = result.column("flag") if "flag" in result.column_names else pa.nulls(len(ids), pa.string())
    details = result.column("detail") if "detail" in result.column_names else pa.nulls(len(ids), pa.string())
    flag_list = flags.to_pylist()
    actions = pa.array([stage.params.action_for(f) for f in flag_list], pa.string())
    arrays = [ids, *[result.column(c) for c in cols], flags.cast(pa.string()), actions, details.cast(pa.string())]
    return pa.Table.from_arrays(arrays, names=["id", *cols, "flag", "action", "detail"])


def _empty_output(n_ids: pa.Array) -> pa.Table:
    return pa.table({"id": n_ids, "flag": pa.nulls(len(n_ids), pa.string()),
                     "action": pa.nulls(len(n_ids), pa.string()), "detail": pa.nulls(len(n_ids), pa.string())})


def stage_task(job: StageJob) -> dict:
    """Run a map stage (or a global stage's map step) over one shard and write its output."""
    run = RunDir(job.run_root)
    batch = read_shard_columns(run, job.shard, job.refs)
    if batch.num_rows == 0:
        out = _empty_output(batch.column("id")) if job.phase == "map" else batch
        write_table(out, Path(job.out_path))
        return {"shard": job.shard, "rows": 0}
    stage = _instantiate(job.stage_name, job.stage_module, job.params, job.ctx, job.key)
    if isinstance(stage, GlobalStage):
        out = stage.map(batch)
        if "id" not in out.column_names:
            out = out.add_column(0, "id", batch.column("id"))
    else:
        out = finalize(stage, batch.column("id"), stage.process(batch))
    write_table(out, Path(job.out_path))
    return {"shard": job.shard, "rows": batch.num_rows}


def stage_fingerprint(previous: str, spec: StageSpec) -> str:
    cls = spec.cls
    return _hash({"prev": previous, "stage": spec.name, "version": cls.version,
                  "params": spec.params.fingerprint_dict()})


def stage_stats(table: pa.Table) -> dict[str, int]:
    flags = table.column("flag").to_pylist() if "flag" in table.column_names else []
    actions = table.column("action").to_pylist() if "action" in table.column_names else []
    act = Counter(actions)
    return {"rows": table.num_rows, "flagged": sum(f is not None for f in flags),
            "review": act.get("review", 0), "dropped": act.get("drop", 0),
            "reasons": dict(Counter(f for f in flags if f is not None))}


# -- the run ---------------------------------------------------------------------------------------
class Runner:
    """Runs one pipeline into its run directory."""

    def __init__(self, pipeline: Pipeline, *, output: str | None = None, workers: int | None = None,
                 force: bool = False, from_stage: str | None = None, quiet: bool = False):
        self.pipeline = pipeline
        self.run = RunDir(output or pipeline.config.output_dir())
        self.workers = workers or pipeline.config.workers
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

    # manifest helpers
    def _base_manifest(self) -> dict:
        old = self.run.load_manifest()
        return {
            "curate_version": curate.__version__,
            "name": self.pipeline.config.name,
            "pipeline_file": self.pipeline.source_path,
            "created": old.get("created", _now()),
            "updated": _now(),
            "config": self.pipeline.resolved(),
            "versions": {"python": platform.python_version(), "pyarrow": pa.__version__, "curate": curate.__version__},
            "input": old.get("input", {}),
            "stages": old.get("stages", []),
        }

    def execute(self) -> dict:
        """Run (or resume) the pipeline; returns the final manifest."""
        self.run.root.mkdir(parents=True, exist_ok=True)
        manifest = self._base_manifest()
        executor = make_executor(self.pipeline.config.executor, workers=self.workers,
                                 address=self.pipeline.config.address, quiet=self.quiet)
        try:
            executor.warm_up()
            fp = self._ingest(manifest, executor)
            old_stages = {s["index"]: s for s in manifest["stages"] if isinstance(s, dict) and "index" in s}
            new_stages: list[dict] = []
            manifest["stages"] = new_stages
            for spec in self.pipeline.stages:
                fp = stage_fingerprint(fp, spec)
                entry = self._run_stage(spec, fp, old_stages.get(spec.index), new_stages, executor, manifest)
                new_stages.append(entry)
                self._save(manifest)
            self._remove_stale_stage_dirs()
            manifest["status"] = "done"
            self._save(manifest)
        finally:
            executor.close()
        return manifest

    def _save(self, manifest: dict) -> None:
        manifest["updated"] = _now()
        self.run.save_manifest(manifest)

    def _remove_stale_stage_dirs(self) -> None:
        wanted = {s.dirname for s in self.pipeline.stages}
        if self.run.stages_dir.is_dir():
            for d in self.run.stages_dir.iterdir():
                if d.is_dir() and d.name not in wanted:
                    RunDir.clear(d)

    def _ingest(self, manifest: dict, executor) -> str:
        fp = input_fingerprint(self.pipeline)
        old = manifest.get("input") or {}
        if self.force or old.get("fingerprint") != fp:
            if old:
                log.info("input changed or --force: re-ingesting")
            for d in (self.run.data_dir, self.run.quarantine_dir, self.run.stages_dir):
                RunDir.clear(d)
            manifest["stages"] = []
            old = {}
        if old.get("status") == "done" and all(self.run.data_shard(i).exists() for i in range(old.get("shards", 0))):
            self.report.append({"step": "ingest", "status": "up to date", **{k: old.get(k) for k in ("rows", "quarantined", "seconds")}})
            return fp
        cfg = self.pipeline.config.input
        manifest["input"] = {"format": cfg.format, "path": cfg.path, "fingerprint": fp, "status": "running", "started": _now()}
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
        rows, quarantined = 0, Counter()
        for i in range(n_shards):
            rows += pq.ParquetFile(self.run.data_shard(i)).metadata.num_rows
            qp = self.run.quarantine_dir / shard_name(i)
            if qp.exists():
                quarantined.update(pq.read_table(qp, columns=["reason"]).column("reason").to_pylist())
        if rows == 0:
            raise InputError(f"input.path: no readable items in {cfg.path} ({sum(quarantined.values())} quarantined: "
                             f"{dict(quarantined)}); see {self.run.quarantine_dir}")
        manifest["input"].update({"status": "done", "shards": n_shards, "rows": rows,
                                  "quarantined": sum(quarantined.values()), "quarantine_reasons": dict(quarantined),
                                  "seconds": round(seconds, 3), "finished": _now()})
        self.report.append({"step": "ingest", "status": "ran", "rows": rows, "quarantined": sum(quarantined.values()),
                            "seconds": seconds})
        self._save(manifest)
        return fp

    def _run_stage(self, spec: StageSpec, fp: str, old: dict | None, earlier: list[dict], executor, manifest) -> dict:
        sdir = self.run.stage_dir(spec.dirname)
        n_shards = manifest["input"]["shards"]
        forced = self._from_index is not None and spec.index >= self._from_index
        up_to_date = (old is not None and old.get("fingerprint") == fp and old.get("dir") == spec.dirname
                      and old.get("status") == "done"
                      and all((sdir / shard_name(i)).exists() for i in range(n_shards)))
        if up_to_date and not forced:
            self.report.append({"step": spec.dirname, "status": "up to date", **old.get("stats", {}), "seconds": old.get("seconds")})
            return old
        if forced or old is None or old.get("fingerprint") != fp or old.get("dir") != spec.dirname:
            RunDir.clear(sdir)
        cls = get_stage_class(spec.name)
        ctx = StageContext(run_dir=self.run.root, stage_index=spec.index, stage_dir=sdir,
                           cache_dir=self.run.cache_dir, workers=self.workers,
                           available_columns=tuple(f"{s['name']}.{c}" for s in earlier for c in s.get("columns", [])))
        probe = cls(spec.params, ctx)
        refs = [resolve_column(c, earlier) for c in probe.input_columns()]
        entry = {"index": spec.index, "name": spec.name, "dir": spec.dirname, "fingerprint": fp, "kind": cls.kind,
                 "status": "running", "params": spec.params.model_dump(mode="json"), "started": _now()}
        earlier_entry_pos = len(manifest["stages"])
        manifest["stages"].append(entry)
        self._save(manifest)
        manifest["stages"].pop(earlier_entry_pos)
        t0 = time.perf_counter()
        params_json = spec.params.model_dump(mode="json")
        rows_total = manifest["input"]["rows"]
        is_global = issubclass(cls, GlobalStage)
        map_dir = sdir / "_map" if is_global else sdir

        def jobs():
            for i in range(n_shards):
                out = map_dir / shard_name(i)
                if out.exists():
                    continue
                yield StageJob(str(self.run.root), spec.name, cls.__module__, params_json, ctx, fp, refs, i, str(out),
                               "global_map" if is_global else "map")

        desc = f"{spec.dirname}" + (" (map)" if is_global else "")
        for _ in executor.map_unordered(stage_task, jobs(), desc=desc, total_rows=rows_total, parallel=probe.parallel):
            pass
        if is_global:
            self._reduce(probe, spec, sdir, map_dir, n_shards)
        seconds = time.perf_counter() - t0
        table = read_stage(self.run, spec.dirname)
        stats = stage_stats(table)
        columns = [c for c in table.column_names if c not in ("id", "flag", "action", "detail")]
        entry.update({"status": "done", "stats": stats, "columns": columns, "summary": probe.ctx.summary,
                      "seconds": round(seconds, 3), "finished": _now()})
        if is_global:
            RunDir.clear(map_dir)
        self.report.append({"step": spec.dirname, "status": "ran", **stats, "seconds": seconds})
        return entry

    def _reduce(self, stage: GlobalStage, spec: StageSpec, sdir: Path, map_dir: Path, n_shards: int) -> None:
        tables, sizes = [], []
        for i in range(n_shards):
            t = pq.read_table(map_dir / shard_name(i))
            tables.append(t)
            sizes.append(t.num_rows)
        mapped = pa.concat_tables([t for t in tables if t.num_rows], promote_options="default") if any(sizes) else tables[0]
        log.info("%s: reduce over %d rows", spec.dirname, mapped.num_rows)
        result = stage.reduce(mapped) if mapped.num_rows else None
        offset = 0
        for i, n in enumerate(sizes):
            ids = tables[i].column("id")
            if n == 0 or result is None:
                out = _empty_output(ids)
            else:
                out = finalize(stage, ids, result.slice(offset, n))
            write_table(out, sdir / shard_name(i))
            offset += n
