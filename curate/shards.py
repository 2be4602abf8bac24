"""Reading the run directory's shards: record columns, stage columns, and combined views.

Shared by the runner, ``status``, ``export``, the report and the review app, so that every consumer
reads annotations the same way (column projection, empty shards, stage order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import CurateError
from curate.record import RECORD_COLUMNS
from curate.rundir import RunDir, shard_name


@dataclass(frozen=True)
class ColumnRef:
    """Where a requested column lives: the data shards (``stage_dir=None``) or a stage's shards."""

    requested: str
    column: str
    stage_dir: str | None = None


def resolve_column(ref: str, earlier: list[dict]) -> ColumnRef:
    """Resolve ``column`` or ``stage.column`` against the record and earlier stages.

    ``earlier`` is the manifest's stage entries before the current stage (each with ``name``, ``dir``
    and ``columns``). A bare name is a record column, else the latest earlier stage that has it.
    """
    if ref in RECORD_COLUMNS:
        return ColumnRef(ref, ref)
    if "." in ref:
        stage, col = ref.split(".", 1)
        for s in reversed(earlier):
            if s["name"] == stage or s["dir"] == stage:
                if col not in s.get("columns", []):
                    raise CurateError(f"column {ref!r}: stage {stage!r} has no column {col!r}; its columns: {', '.join(s.get('columns', []))}")
                return ColumnRef(ref, col, s["dir"])
        names = [s["name"] for s in earlier]
        raise CurateError(f"column {ref!r}: no stage {stage!r} runs before this one (earlier stages: {', '.join(names) or 'none'})")
    for s in reversed(earlier):
        if ref in s.get("columns", []):
            return ColumnRef(ref, ref, s["dir"])
    known = sorted({c for s in earlier for c in s.get("columns", [])} | set(RECORD_COLUMNS))
    raise CurateError(f"column {ref!r} is not a record column and no earlier stage writes it; available: {', '.join(known)}")


def read_shard_columns(run: RunDir, shard: int, refs: list[ColumnRef]) -> pa.Table:
    """Read ``id`` plus the requested columns of one shard, named as requested, row-aligned."""
    data_cols = ["id"] + [r.column for r in refs if r.stage_dir is None and r.column != "id"]
    table = pq.read_table(run.data_shard(shard), columns=list(dict.fromkeys(data_cols)))
    out = {"id": table.column("id")}
    for r in refs:
        if r.stage_dir is None:
            out[r.requested] = table.column(r.column)
    by_stage: dict[str, list[ColumnRef]] = {}
    for r in refs:
        if r.stage_dir is not None:
            by_stage.setdefault(r.stage_dir, []).append(r)
    for stage_dir, rs in by_stage.items():
        path = run.stage_dir(stage_dir) / shard_name(shard)
        st = pq.read_table(path)
        for r in rs:
            if r.column in st.column_names:
                out[r.requested] = st.column(r.column)
            else:  # an empty shard carries only the flag columns
                out[r.requested] = pa.nulls(table.num_rows)
    return pa.table(out)


def read_stage(run: RunDir, stage_dir: str, columns: list[str] | None = None) -> pa.Table:
    """All shards of one stage concatenated in shard order (missing columns of empty shards are null)."""
    paths = sorted(run.stage_dir(stage_dir).glob("part-*.parquet"))
    tables = []
    for p in paths:
        schema = pq.read_schema(p)
        cols = [c for c in columns if c in schema.names] if columns else None
        tables.append(pq.read_table(p, columns=cols))
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in (columns or ["id"])})
    return pa.concat_tables(tables, promote_options="default")


def read_records(run: RunDir, columns: list[str] | None = None) -> pa.Table:
    """All data shards concatenated (projected to ``columns``)."""
    tables = [pq.read_table(p, columns=columns) for p in run.data_shards()]
    if not tables:
        raise CurateError(f"{run.root}: no data shards; run 'curate run' first")
    return pa.concat_tables(tables)


def stage_entries(run: RunDir) -> list[dict]:
    """The manifest's stage entries, in pipeline order."""
    return list(run.load_manifest().get("stages", []))


def annotations(run: RunDir, columns=("flag", "action", "detail")) -> dict[str, pa.Table]:
    """Per stage dir, the ``id`` plus the given columns of every row."""
    out = {}
    for s in stage_entries(run):
        if Path(run.stage_dir(s["dir"])).is_dir():
            out[s["dir"]] = read_stage(run, s["dir"], ["id", *columns])
    return out
