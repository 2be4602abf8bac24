"""Reading what the report shows from a run directory, once, with column projection.

Everything the report needs about every item is small (ids, flags, actions, declared score and role
columns, text and label); image bytes are read only for the few items the galleries show.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curate.errors import CurateError
from curate.manifest import Manifest, ScoreSpec, StageEntry
from curate.rundir import RunDir
from curate.shards import read_data_shard, read_stage, read_stage_shard

log = logging.getLogger(__name__)

#: Record columns the report reads for every item (never ``image`` or ``meta``).
RECORD_FIELDS = ["id", "source", "text", "label", "width", "height"]
#: Roles whose columns the report reads (embeddings are never read).
READ_ROLES = ("duplicate_group", "representative", "group_size", "suggested_label", "label_confidence",
              "replacement_text", "score")
FLAG_FIELDS = ["id", "flag", "action", "detail"]


@dataclass
class StageData:
    """One finished stage: its manifest entry and, row-aligned with the records, its flag columns plus
    the declared score and role columns."""

    entry: StageEntry
    table: pa.Table

    @property
    def outputs(self):
        return self.entry.outputs

    def column(self, name: str | None) -> list | None:
        if not name or name not in self.table.column_names:
            return None
        return self.table.column(name).to_pylist()

    def flagged_columns(self, *names: str) -> list[list]:
        """The given columns of the flagged rows only (a few of many), as lists."""
        import pyarrow.compute as pc

        t = self.table.filter(pc.is_valid(self.table.column("flag"))).select(list(names))
        return [t.column(n).to_pylist() for n in names]

    def numbers(self, name: str) -> np.ndarray:
        """A numeric column as float64 (NaN for nulls)."""
        col = self.table.column(name)
        return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)

    def group_codes(self, name: str) -> tuple[np.ndarray, list]:
        """A grouping column as integer codes per row (-1 where null) and the group values, vectorised."""
        import pyarrow.compute as pc

        enc = pc.dictionary_encode(self.table.column(name)).combine_chunks()
        codes = np.asarray(pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        return codes, enc.dictionary.to_pylist()

    def clusters(self, name: str) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
        """Groups of two or more rows in column ``name``: (values, sizes, order, starts): the rows of
        cluster ``k`` are ``order[starts[k]:starts[k] + sizes[k]]`` (ascending)."""
        codes, values = self.group_codes(name)
        counts = np.bincount(codes[codes >= 0], minlength=len(values))
        multi = np.flatnonzero(counts > 1)
        keep = codes >= 0
        keep[keep] = counts[codes[keep]] > 1
        rows = np.flatnonzero(keep)
        order = rows[np.argsort(codes[rows], kind="stable")]
        starts = np.concatenate([[0], np.cumsum(counts[multi])[:-1]]).astype(np.int64) if len(multi) else np.zeros(0, np.int64)
        return [values[k] for k in multi.tolist()], counts[multi], order, starts

    def flags(self) -> np.ndarray:
        return np.asarray(self.table.column("flag").to_pylist(), dtype=object)

    def threshold(self, score: ScoreSpec) -> float | None:
        """The threshold behind ``score``: its param's value, else the effective cutoff in the summary."""
        t = score.threshold(self.entry.params)
        if t is not None:
            return t
        s = self.entry.summary or {}
        for key in (f"{score.column}_cutoff", "cutoffs", "cutoff", "threshold"):
            v = s.get(key)
            if isinstance(v, dict):
                v = v.get(score.column, v.get(score.flag))
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
        return None

    def edit_flags(self) -> set[str]:
        return set(self.outputs.edit_flags)


@dataclass
class RunData:
    """What the report knows about a run."""

    run: RunDir
    manifest: Manifest
    records: pa.Table
    shard_starts: np.ndarray
    stages: list[StageData]
    quarantine: pa.Table
    evaluation: dict[str, Any] | None = None
    eval_path: Path | None = None
    texts: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    sources: list = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.records.num_rows

    def locate(self, rows: np.ndarray) -> list[tuple[int, int]]:
        """Global row numbers -> (shard, row in shard)."""
        shards = np.searchsorted(self.shard_starts, rows, side="right") - 1
        return [(int(s), int(r - self.shard_starts[s])) for s, r in zip(shards, rows)]

    def images(self, rows: list[int]) -> dict[int, bytes | None]:
        """Image bytes of the given global rows, reading each needed shard's image column once."""
        out: dict[int, bytes | None] = {}
        if not rows:
            return out
        by_shard: dict[int, list[tuple[int, int]]] = {}
        for g, (s, r) in zip(rows, self.locate(np.asarray(rows, dtype=np.int64))):
            by_shard.setdefault(s, []).append((r, g))
        for s, items in sorted(by_shard.items()):
            t = read_data_shard(self.run, s, ["image"])
            if "image" not in t.column_names:
                continue
            col = t.column("image")
            taken = col.take(pa.array([r for r, _ in items], pa.int64())).to_pylist()
            for (_, g), data in zip(items, taken):
                out[g] = data
        return out


def load_run(run_dir: str | Path) -> RunData:
    """Everything but image bytes, for a finished run (a clear error otherwise)."""
    run = RunDir(run_dir)
    manifest = run.require_finished("build a report")
    shards = run.data_shards()
    if not shards:
        raise CurateError(f"{run.root}: no data shards; rerun 'curate run' on its pipeline")
    tables, sizes = [], []
    for i in range(len(shards)):
        t = read_data_shard(run, i, RECORD_FIELDS)
        for name in RECORD_FIELDS:
            if name not in t.column_names:
                t = t.append_column(name, pa.nulls(t.num_rows, pa.int32() if name in ("width", "height") else pa.string()))
        tables.append(t.select(RECORD_FIELDS))
        sizes.append(t.num_rows)
    records = pa.concat_tables(tables, promote_options="default")
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    stages = []
    for entry in manifest.finished_stages():
        wanted = FLAG_FIELDS + [c.name for c in entry.outputs.columns if c.role in READ_ROLES]
        wanted += [s.column for s in entry.outputs.scores]
        table = read_stage(run, entry.dir, list(dict.fromkeys(wanted)))
        if table.num_rows != records.num_rows:
            raise CurateError(f"{run.stage_dir(entry.dir)}: {table.num_rows} rows for {records.num_rows} records; "
                              f"rerun the stage with 'curate run --from {entry.name}'")
        stages.append(StageData(entry, table))
    quarantine = _read_quarantine(run)
    evaluation, eval_path = _read_eval(run)
    data = RunData(run, manifest, records, starts, stages, quarantine, evaluation, eval_path)
    data.ids = records.column("id").to_pylist()
    data.texts = records.column("text").to_pylist()
    data.labels = records.column("label").to_pylist()
    data.sources = records.column("source").to_pylist()
    return data


def _read_quarantine(run: RunDir) -> pa.Table:
    """Source, reason and detail of every quarantined input (never its bytes)."""
    cols = ["source", "reason", "detail"]
    tables = []
    for p in run.quarantine_shards():
        tables.append(read_stage_shard(p, cols))  # projected: the raw bytes are never read
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in cols})
    return pa.concat_tables(tables, promote_options="default")


def _read_eval(run: RunDir) -> tuple[dict | None, Path | None]:
    path = run.root / "eval" / "eval.json"
    if not path.is_file():
        return None, None
    try:
        return json.loads(path.read_text(encoding="utf-8")), path
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable evaluation results (%s); the report leaves them out", path, exc)
        return None, path
