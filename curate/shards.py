"""Reading the run directory's shards: record columns, stage columns, and combined views.

Shared by the runner, ``status``, ``export``, the report and the review app, so that every consumer
reads annotations the same way (column projection, empty shards, stage order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from curate import storage
from curate.errors import CurateError
from curate.manifest import StageEntry
from curate.record import RECORD_COLUMNS
from curate.rundir import RunDir
from curate.storage import Location


@dataclass(frozen=True)
class ColumnRef:
    """Where a requested column lives: the data shards (``stage_dir=None``) or a stage's shards."""

    requested: str
    column: str
    stage_dir: str | None = None


def resolve_column(ref: str, earlier: list[StageEntry]) -> ColumnRef:
    """Resolve ``column`` or ``stage.column`` against the record and earlier stages.

    ``earlier`` is the manifest's stage entries before the current stage. A bare name is a record column,
    else the latest earlier stage that has it.
    """
    if ref in RECORD_COLUMNS:
        return ColumnRef(ref, ref)
    if "." in ref:
        stage, col = ref.split(".", 1)
        for s in reversed(earlier):
            if stage in (s.name, s.dir):
                if col not in s.columns:
                    raise CurateError(f"column {ref!r}: stage {stage!r} has no column {col!r}; its columns: {', '.join(s.columns)}")
                return ColumnRef(ref, col, s.dir)
        names = [s.name for s in earlier]
        raise CurateError(f"column {ref!r}: no stage {stage!r} runs before this one (earlier stages: {', '.join(names) or 'none'})")
    for s in reversed(earlier):
        if ref in s.columns:
            return ColumnRef(ref, ref, s.dir)
    known = sorted({c for s in earlier for c in s.columns} | set(RECORD_COLUMNS))
    raise CurateError(f"column {ref!r} is not a record column and no earlier stage writes it; available: {', '.join(known)}")


def _read(path: Location, columns: list[str] | None) -> pa.Table:
    """One Parquet file (local or on object storage), projected to the ``columns`` it has (missing ones
    are left out)."""
    if columns is None:
        return storage.read_table(path)
    names = set(storage.read_schema(path).names)
    return storage.read_table(path, columns=[c for c in dict.fromkeys(columns) if c in names])


def read_stage_shard(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One shard file (a stage's or a global stage's map output), projected to ``columns``."""
    return _read(storage.location(path), columns)


def read_data_shard(run: RunDir, shard: int, columns: list[str] | None = None) -> pa.Table:
    """One data shard's records, projected to ``columns``."""
    return _read(run.data_shard(shard), columns)


def read_annotation_shard(run: RunDir, stage: StageEntry | str, shard: int,
                          columns: list[str] | None = None) -> pa.Table:
    """One stage's annotation shard for data shard ``shard``, projected to ``columns``."""
    return _read(run.stage_shard(stage, shard), columns)


def read_column(path: Path, column: str) -> list:
    """One column of one Parquet file, as a Python list."""
    return storage.read_table(path, columns=[column]).column(column).to_pylist()


def count_rows(path: Path) -> int:
    """Rows of a Parquet file, from its footer."""
    return storage.parquet_file(path).metadata.num_rows


def read_shard_columns(run: RunDir, shard: int, refs: list[ColumnRef]) -> pa.Table:
    """Read ``id`` plus the requested columns of one shard, named as requested, row-aligned."""
    data_cols = ["id"] + [r.column for r in refs if r.stage_dir is None and r.column != "id"]
    table = read_data_shard(run, shard, data_cols)
    out = {"id": table.column("id")}
    for r in refs:
        if r.stage_dir is None:
            out[r.requested] = table.column(r.column)
    by_stage: dict[str, list[ColumnRef]] = {}
    for r in refs:
        if r.stage_dir is not None:
            by_stage.setdefault(r.stage_dir, []).append(r)
    for stage_dir, rs in by_stage.items():
        st = read_annotation_shard(run, stage_dir, shard, [r.column for r in rs])
        for r in rs:
            if r.column not in st.column_names:
                raise CurateError(f"{run.stage_shard(stage_dir, shard)}: no column {r.column!r}; rerun the stage")
            out[r.requested] = st.column(r.column)
    return pa.table(out)


def read_stage(run: RunDir, stage_dir: str, columns: list[str] | None = None) -> pa.Table:
    """All shards of one stage concatenated in shard order, projected to ``columns``."""
    paths = sorted(run.stage_dir(stage_dir).glob("part-*.parquet"))
    tables = [_read(p, columns) for p in paths]
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in (columns or ["id"])})
    # empty shards carry the declared types, which may be less specific (list vs fixed-size list): skip them
    tables = [t for t in tables if t.num_rows] or tables[:1]
    return pa.concat_tables(tables, promote_options="default")


def read_records(run: RunDir, columns: list[str] | None = None) -> pa.Table:
    """All data shards concatenated (projected to ``columns``)."""
    tables = [_read(p, columns) for p in run.data_shards()]
    if not tables:
        raise CurateError(f"{run.root}: no data shards; run 'curate run' first")
    return pa.concat_tables(tables)
